// Where static int8 puts its QuantizeLinear/DequantizeLinear pairs, so that onnxruntime's QDQ
// transformers fuse them into integer kernels (QLinearConv, QLinearMatMul, QGemm, QLinearAdd,
// QLinearMul, QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool) or drop them around
// ops that work on int8 as is (MaxPool, Resize):
//   - every float activation input of a quantized op gets a Q/DQ pair, its constant weights a DQ;
//   - its output gets a Q/DQ pair too, or, when the output's one reader is Relu or Clip, that
//     activation's output does: the Q's range then starts at 0 (or the Clip bounds), which is
//     what lets onnxruntime remove the Relu/Clip and fuse the op (ReluQuantFusion, ClipQuantFusion);
//   - MaxPool and Resize keep their input's scale, and a Concat's inputs and output share one, so
//     onnxruntime can run them on the codes directly (its DropQDQ rule needs equal parameters).
// Values are planned by name in the main graph; those that share parameters form groups.
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import { weightedOp } from '../../graph-edit/weighted-layers.js';

/** How an op's inputs and output are quantized. */
interface OpRule {
  /**
   * Input positions that are quantized ('all' for Concat). The weight (quantized per channel on
   * request) and the bias (int32, scale input_scale * weight_scale) of a weighted op are where the
   * weighted-layer table says.
   */
  inputs: readonly number[] | 'all';
  /** 'shared': the output uses its input's parameters (one group). */
  output: 'own' | 'shared';
  /** A following Relu/Clip is folded into this op's output range. */
  foldsActivation: boolean;
}

export const QDQ_OP_RULES: Readonly<Record<string, OpRule>> = {
  Conv: { inputs: [0, 1], output: 'own', foldsActivation: true },
  MatMul: { inputs: [0, 1], output: 'own', foldsActivation: true },
  Gemm: { inputs: [0, 1], output: 'own', foldsActivation: true },
  Add: { inputs: [0, 1], output: 'own', foldsActivation: true },
  Mul: { inputs: [0, 1], output: 'own', foldsActivation: false },
  Concat: { inputs: 'all', output: 'shared', foldsActivation: false },
  MaxPool: { inputs: [0], output: 'shared', foldsActivation: false },
  Resize: { inputs: [0], output: 'shared', foldsActivation: false },
  AveragePool: { inputs: [0], output: 'own', foldsActivation: false },
  GlobalAveragePool: { inputs: [0], output: 'own', foldsActivation: false },
};

export const DEFAULT_QDQ_OPS: readonly string[] = Object.keys(QDQ_OP_RULES);

/** A constant input of a planned node and how it is stored. */
export interface PlannedConstant {
  index: number;
  /** 'weight': int8 (per channel on request); 'bias': int32; 'constant': an activation-typed per-tensor constant (Add/Mul/Concat). */
  kind: 'weight' | 'bias' | 'constant';
}

export interface PlannedNode {
  node: Node;
  /** Activation inputs by position (value names). */
  activations: { index: number; value: string }[];
  constants: PlannedConstant[];
  /** The value whose Q/DQ pair follows the op (after a folded Relu/Clip); undefined for a graph output. */
  output?: string;
  /** Relu/Clip nodes folded into the output range. */
  folded: Node[];
}

export interface QdqPlan {
  nodes: PlannedNode[];
  /** Every activation to calibrate and quantize -> its group (values in one group share parameters). */
  groups: Map<string, number>;
  /** Nodes of quantizable types left in float, and why. */
  skipped: { node: Node; reason: string }[];
}

export interface PlanOptions {
  opTypes?: readonly string[];
  exclude?: (node: Node, graph: Graph) => boolean;
  /** Element type of a value when known (shape inference, calibration); undefined when not. */
  elemType: (value: string) => number | undefined;
  /** Fold Relu/Clip only when their range can start at the zero point (asymmetric activations). */
  foldActivations: boolean;
}

/** Plans Q/DQ placement over the main graph of a model (subgraphs stay float). */
export function planQdq(graph: Graph, options: PlanOptions): QdqPlan {
  const ops = new Set(options.opTypes ?? DEFAULT_QDQ_OPS);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const nodes: PlannedNode[] = [];
  const skipped: QdqPlan['skipped'] = [];
  const isFloat = (value: string) => {
    const type = options.elemType(value);
    return type === undefined || type === DataType.FLOAT;
  };
  for (const node of graph.nodes) {
    const rule = QDQ_OP_RULES[node.opType];
    if (rule === undefined || !isStandardDomain(node.domain) || !ops.has(node.opType)) continue;
    if (options.exclude?.(node, graph)) {
      skipped.push({ node, reason: 'excluded' });
      continue;
    }
    const planned = planNode(graph, node, rule, isFloat);
    if (typeof planned === 'string') {
      skipped.push({ node, reason: planned });
      continue;
    }
    const out = options.foldActivations && rule.foldsActivation ? foldedOutput(graph, node.outputs[0], outputs) : { value: node.outputs[0], folded: [] };
    planned.folded = out.folded;
    planned.output = outputs.has(out.value) || !isFloat(out.value) ? undefined : out.value;
    nodes.push(planned);
  }
  return { nodes, groups: groupValues(nodes), skipped };
}

function planNode(graph: Graph, node: Node, rule: OpRule, isFloat: (v: string) => boolean): PlannedNode | string {
  const positions = rule.inputs === 'all' ? node.inputs.map((_, i) => i) : rule.inputs.filter((i) => i < node.inputs.length);
  const layer = weightedOp(node);
  const activations: PlannedNode['activations'] = [];
  const constants: PlannedConstant[] = [];
  if (!isFloat(node.outputs[0])) return `output '${node.outputs[0]}' is not float32`;
  for (const index of positions) {
    const value = node.inputs[index];
    if (value === '') continue;
    const constant = constantValue(graph, value);
    if (constant !== undefined) {
      if (constant.dataType !== DataType.FLOAT) return `input '${value}' is a ${constant.dataType === DataType.FLOAT16 ? 'float16' : 'non-float'} constant`;
      const kind = index === layer?.weight ? 'weight' : 'constant';
      // One 8-bit scale for a whole vector of biases or gains rounds the small entries away
      // (PP-OCRv4 rec's MatMul biases: 91.7% of lines kept with them quantized, 95.0% without).
      // A scalar is exact on its own grid, so scalar operands (x + 3, s * x) are still quantized.
      if (kind === 'constant' && (node.opType === 'Add' || node.opType === 'Mul') && constant.elementCount > 1) {
        return `constant '${value}' holds ${constant.elementCount} values: one 8-bit scale for all would round the small ones away`;
      }
      constants.push({ index, kind });
    } else {
      if (!isFloat(value)) return `input '${value}' is not float32`;
      activations.push({ index, value });
    }
  }
  if (activations.length === 0) return 'no activation input (all constant)';
  const biasAt = layer?.bias;
  if (biasAt !== undefined && node.inputs[biasAt] !== undefined && node.inputs[biasAt] !== '') {
    const bias = constantValue(graph, node.inputs[biasAt]);
    // A bias computed at run time, or a Gemm C that is not one value per output, stays float.
    if (bias !== undefined && bias.dataType === DataType.FLOAT && bias.dims.length === 1 && constants.some((c) => c.kind === 'weight') && gemmBiasOk(node)) {
      constants.push({ index: biasAt, kind: 'bias' });
    }
  }
  return { node, activations, constants, folded: [] };
}

/** Gemm's C folds into an int32 bias only when alpha and beta are 1 (the bias scale is a_scale * b_scale). */
function gemmBiasOk(node: Node): boolean {
  return node.opType !== 'Gemm' || (node.attrFloat('alpha', 1) === 1 && node.attrFloat('beta', 1) === 1);
}

/** Follows a chain of single-reader Relu/Clip after `value`; returns the value to quantize. */
function foldedOutput(graph: Graph, value: string, outputs: ReadonlySet<string>): { value: string; folded: Node[] } {
  const folded: Node[] = [];
  let current = value;
  for (;;) {
    if (outputs.has(current)) break;
    const readers = graph.consumers(current);
    if (readers.length !== 1) break;
    const next = readers[0];
    if (!isStandardDomain(next.domain) || (next.opType !== 'Relu' && next.opType !== 'Clip') || next.inputs[0] !== current) break;
    if (next.opType === 'Clip' && !clipBoundsConstant(graph, next)) break;
    folded.push(next);
    current = next.outputs[0];
  }
  return { value: current, folded };
}

function clipBoundsConstant(graph: Graph, clip: Node): boolean {
  return clip.inputs.slice(1).every((name) => name === '' || constantValue(graph, name) !== undefined);
}

/** Union-find over planned values: MaxPool/Resize input with output, a Concat's inputs with its output. */
function groupValues(nodes: readonly PlannedNode[]): Map<string, number> {
  const parent = new Map<string, string>();
  const find = (v: string): string => {
    let root = v;
    while (parent.get(root) !== root) root = parent.get(root) as string;
    parent.set(v, root);
    return root;
  };
  const add = (v: string) => {
    if (!parent.has(v)) parent.set(v, v);
  };
  const union = (a: string, b: string) => parent.set(find(a), find(b));
  for (const planned of nodes) {
    for (const a of planned.activations) add(a.value);
    if (planned.output !== undefined) add(planned.output);
    if (QDQ_OP_RULES[planned.node.opType].output !== 'shared' || planned.output === undefined) continue;
    for (const a of planned.activations) union(a.value, planned.output);
  }
  const ids = new Map<string, number>();
  const groups = new Map<string, number>();
  for (const v of parent.keys()) {
    const root = find(v);
    if (!ids.has(root)) ids.set(root, ids.size);
    groups.set(v, ids.get(root) as number);
  }
  return groups;
}
