// float16 and bfloat16 conversion. Every float32 weight (initializers and Constant nodes, in If
// and Loop bodies too) is stored in half precision; nodes that may compute in float16 (see
// fp16-ops.ts for the policies) read and write float16, and the rest keep float32 with a Cast in
// front. Graph inputs and outputs keep float32 unless `keepIoTypes` is false. Casts are shared per
// value, Cast-of-constant nodes are folded by onnxruntime when it loads the model, and Cast pairs
// that round-trip a value (float16 -> float32 -> float16) are removed at the end.
//
// bfloat16: onnxruntime's CPU provider has no bfloat16 math kernels at all, so `bfloat16` is a
// weights-only format: weights are stored as bfloat16 and cast to float32 where they are read.
import { narrowSqnrDb } from '../../kernels/sqnr.js';
import { attr } from '../../ir/attribute.js';
import { allConstants, isStandardDomain } from '../../ir/constants.js';
import { DataType, dataTypeName } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { nodeOrder, topologicalSort } from '../../ir/toposort.js';
import { tensorTypeOf } from '../../ir/value-info.js';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '../../kernels/float16.js';
import { inferShapes } from '../../optimize/shape-inference/index.js';
import { reachOpset } from './opset-raise.js';
import type { Pass } from '../../pipeline/pass.js';
import { type Progress, silentProgress } from '../../pipeline/progress.js';
import type { DetailedPassResult, NodeDecision, QuantizedTensor } from './details.js';
import { removeRedundantCasts } from './fp16-casts.js';
import { type Float16ComputePolicy, float32Reason, followsInputs, isAnyTypeInput, isFixedTypeInput, isFixedTypeOutput } from './fp16-ops.js';
import { firstMatch, type NodeSelector, nodeSelector } from './node-selector.js';

export interface Float16Options {
  /** Storage format of the weights (default 'float16'); 'bfloat16' is weights-only. */
  format?: 'float16' | 'bfloat16';
  /** Which ops compute in float16: 'ort-cpu' (default), 'all' but the fragile ones, or 'none' (weights only). */
  compute?: Float16ComputePolicy;
  /** Keep float32 graph inputs and outputs, with Casts at the boundary (default true). */
  keepIoTypes?: boolean;
  /** Op types kept in float32 in addition to the policy's own list. */
  blockOps?: readonly string[];
  /** Node-name regexes or op types to leave entirely in float32: compute and the weights only they read. */
  exclude?: readonly string[];
  /** When given, only nodes matching one of these are converted (a precision config's fp16 rules). */
  only?: readonly string[];
  /** Op types or node names forced to float16 whatever the policy says (from a precision config). */
  force?: readonly string[];
  /** Weights beyond the format's range become its largest finite value (default true) instead of infinity. */
  clamp?: boolean;
  /**
   * float32 constants with fewer elements than this stay float32 when only float32 nodes read
   * them (default 16): below that, the Cast in front of them costs more bytes than it saves.
   */
  minElements?: number;
}

/** Measured on the real models: 16 gives the smallest files (a Cast and its names cost ~35 bytes). */
const DEFAULT_MIN_ELEMENTS = 16;

type Demand = 'half' | 'float' | 'exact' | 'any';

/** A float32 constant of the graph being converted, typed only once every reader has spoken. */
interface Flexible {
  tensor: Tensor;
  node?: Node;
  demands: Set<Demand>;
  outOfRange?: number;
}

interface Run {
  progress: Progress;
  storage: DataType;
  opset: number;
  options: Float16Options;
  policy: Float16ComputePolicy;
  exclude: NodeSelector[];
  only: NodeSelector[] | undefined;
  force: NodeSelector[];
  blockOps: Set<string>;
  /** Original element type of every value, per graph, from shape inference. */
  types: Map<Graph, Map<string, { elemType: number }>>;
  /** Values whose element type the pass changed. */
  changed: Map<string, number>;
  tensors: QuantizedTensor[];
  nodes: NodeDecision[];
  stats: Record<string, number>;
  warnings: DetailedPassResult['warnings'];
}

export const float16Pass: Pass<Float16Options> = {
  name: 'quantize-fp16',
  description: 'stores float32 weights as float16 (or bfloat16) and computes in float16 where the runtime has kernels',
  run(model, options, ctx): DetailedPassResult {
    const storage = options.format === 'bfloat16' ? DataType.BFLOAT16 : DataType.FLOAT16;
    const before = model.opset('') ?? 1;
    // Cast reads bfloat16 from opset 13: older models are raised or upgraded to it first.
    const reached = storage === DataType.BFLOAT16 && before < 13 ? reachOpset(model, 13, 'bf16') : {};
    if ('refused' in reached) {
      throw new Error(`bfloat16 does not apply to this model: it imports ai.onnx opset ${before}, Cast reads bfloat16 only from opset 13, and the model cannot be upgraded (${reached.refused})`);
    }
    const opset = model.opset('') ?? 1;
    const run: Run = {
      storage,
      opset,
      options,
      policy: storage === DataType.BFLOAT16 ? 'none' : (options.compute ?? 'ort-cpu'),
      exclude: (options.exclude ?? []).map((p) => nodeSelector(p, 'exclude')),
      only: options.only?.map((p) => nodeSelector(p, 'only')),
      force: (options.force ?? []).map((p) => nodeSelector(p, 'force')),
      blockOps: new Set(options.blockOps ?? []),
      types: inferShapes(model).types,
      changed: new Map(),
      tensors: [],
      nodes: [],
      stats: {
        nodesConverted: 0,
        nodesKept: 0,
        tensorsConverted: 0,
        tensorsKeptForRange: 0,
        castsAdded: 0,
        castsRemoved: 0,
        valuesClamped: 0,
        valuesFlushed: 0,
      },
      warnings: reached.warning === undefined ? [] : [reached.warning],
      progress: ctx.progress ?? silentProgress,
    };
    if (options.keepIoTypes === false && storage === DataType.FLOAT16) halveMainInputs(model, run);
    // Parents first: a subgraph sees the final types of the enclosing values it reads.
    const queue: Graph[] = [model.graph];
    let constants = 0;
    for (const { tensor } of allConstants(model.graph)) if (tensor.dataType === DataType.FLOAT) constants++;
    run.progress.start(`${options.format === 'bfloat16' ? 'bf16' : 'fp16'} weights`, constants);
    try {
      while (queue.length > 0) {
        const graph = queue.shift() as Graph;
        convertGraph(model, graph, run);
        for (const node of graph.nodes) queue.push(...node.subgraphs());
      }
    } finally {
      run.progress.done();
    }
    run.stats.castsRemoved = removeRedundantCasts(model.graph, (graph, value) => currentType(run, graph, value));
    topologicalSort(model.graph);
    return {
      stats: run.stats,
      warnings: run.warnings,
      details: { tensors: run.tensors, nodes: run.nodes },
    };
  },
};

function originalType(run: Run, graph: Graph, value: string): number | undefined {
  for (let g: Graph | undefined = graph; g !== undefined; g = g.parent) {
    const found = run.types.get(g)?.get(value);
    if (found !== undefined) return found.elemType;
    if (g.definesLocally(value)) return undefined;
  }
  return undefined;
}

function currentType(run: Run, graph: Graph, value: string): number | undefined {
  return run.changed.get(value) ?? originalType(run, graph, value);
}

function halveMainInputs(model: Model, run: Run): void {
  for (const input of model.graph.inputs) {
    const type = input.type?.value;
    if (type?.case !== 'tensorType' || type.value.elemType !== DataType.FLOAT) continue;
    type.value.elemType = DataType.FLOAT16;
    run.changed.set(input.name, DataType.FLOAT16);
  }
}

function convertGraph(model: Model, graph: Graph, run: Run): void {
  const flexible = collectFlexible(graph);
  const edits: { node: Node; index: number; need: number }[] = [];
  const { order, blocked } = nodeOrder(graph);
  for (const node of [...order, ...blocked]) {
    if (node.opType === 'Constant' && flexible.has(node.outputs[0])) continue;
    for (const sub of node.subgraphs()) for (const read of sub.outerReads()) flexible.get(read)?.demands.add('any');
    const decision = decide(run, graph, node, flexible);
    if (decision === undefined) continue;
    const { half, excluded } = decision;
    node.inputs.forEach((value, index) => {
      if (value === '' || originalType(run, graph, value) !== DataType.FLOAT) return;
      const constant = flexible.get(value);
      if (isAnyTypeInput(node, index)) {
        constant?.demands.add('any');
        return;
      }
      const need = half && !isFixedTypeInput(node, index) ? DataType.FLOAT16 : DataType.FLOAT;
      if (constant !== undefined) constant.demands.add(need === DataType.FLOAT16 ? 'half' : excluded ? 'exact' : 'float');
      edits.push({ node, index, need });
    });
    if (half) halveNode(run, graph, node);
  }
  for (const output of graph.outputs) flexible.get(output.name)?.demands.add('float');
  for (const [name, constant] of flexible) {
    materialize(run, graph, name, constant);
    run.progress.tick();
  }

  const casts = new Map<string, string>();
  const castOf = (value: string, to: number): string => {
    const key = `${value}\u0000${to}`;
    let name = casts.get(key);
    if (name === undefined) {
      name = graph.uniqueName(`${value}_${to === DataType.FLOAT16 ? 'fp16' : 'fp32'}`);
      // Short generated node names ("Cast_12"): a model may need hundreds of these Casts.
      graph.addNode(
        new Node({
          opType: 'Cast',
          inputs: [value],
          outputs: [name],
          attributes: [attr.int('to', to)],
        }),
      );
      run.changed.set(name, to);
      run.stats.castsAdded++;
      casts.set(key, name);
    }
    return name;
  };
  for (const { node, index, need } of edits) {
    const value = node.inputs[index];
    if (currentType(run, graph, value) !== need) node.inputs[index] = castOf(value, need);
  }
  fixOutputs(model, graph, run, castOf);
  for (const info of graph.valueInfo) {
    const type = info.type?.value;
    const now = run.changed.get(info.name);
    if (type?.case === 'tensorType' && now !== undefined) type.value.elemType = now;
  }
  graph.changed();
}

/** float32 initializers (not graph inputs) and Constant nodes of `graph`, by value name. */
function collectFlexible(graph: Graph): Map<string, Flexible> {
  const flexible = new Map<string, Flexible>();
  for (const tensor of graph.initializers) {
    if (tensor.dataType === DataType.FLOAT && !graph.isGraphInput(tensor.name)) flexible.set(tensor.name, { tensor, demands: new Set() });
  }
  for (const node of graph.nodes) {
    if (node.opType !== 'Constant' || !isStandardDomain(node.domain) || node.outputs.length !== 1) continue;
    const a = node.attributes.find((x) => x.name === 'value' || x.name === 'value_float' || x.name === 'value_floats');
    let tensor: Tensor | undefined;
    if (a?.kind === 'tensor' && a.value.dataType === DataType.FLOAT) tensor = a.value;
    else if (a?.kind === 'float') tensor = Tensor.fromArray(node.outputs[0], DataType.FLOAT, [], new Float32Array([a.value]));
    else if (a?.kind === 'floats') tensor = Tensor.fromArray(node.outputs[0], DataType.FLOAT, [a.value.length], new Float32Array(a.value));
    if (tensor !== undefined) flexible.set(node.outputs[0], { tensor, node, demands: new Set() });
  }
  return flexible;
}

/** Whether `node` computes in float16, or undefined when it touches no float32 value. */
function decide(run: Run, graph: Graph, node: Node, flexible: Map<string, Flexible>): { half: boolean; excluded: boolean } | undefined {
  const inTypes = node.inputs.map((v) => (v === '' ? null : originalType(run, graph, v)));
  const outTypes = node.outputs.map((v) => (v === '' ? null : originalType(run, graph, v)));
  const touchesFloat = [...inTypes, ...outTypes].includes(DataType.FLOAT);
  if (!touchesFloat) return undefined;
  const label = { node: node.label, op: node.opType, graph: graph.name };
  const keep = (reason: string, excluded = false) => {
    run.nodes.push({
      ...label,
      precision: 'float32',
      quantized: false,
      reason,
    });
    run.stats.nodesKept++;
    return { half: false, excluded };
  };
  const excluded = firstMatch(run.exclude, node);
  if (excluded !== undefined) return keep(`excluded by '${excluded.text}'`, true);
  if (run.only !== undefined && firstMatch(run.only, node) === undefined) return keep('not selected for this precision', true);
  if ([...inTypes, ...outTypes].includes(undefined)) return keep('element types unknown (shape inference could not follow it)');
  const forced = firstMatch(run.force, node) !== undefined && run.policy !== 'none';
  if (!forced) {
    if (run.blockOps.has(node.opType)) return keep(`${node.opType} is on the block list`);
    const wide = node.inputs.find((v) => flexible.has(v) && outOfRange(flexible.get(v) as Flexible, run.storage) > 0);
    if (wide !== undefined) return keep(`weight '${wide}' has values beyond the float16 range`);
    const reason = float32Reason(node, run.policy, run.opset);
    if (reason !== undefined) return keep(reason);
    if (followsInputs(node, run.policy)) {
      const computed = node.inputs.filter((v, i) => inTypes[i] === DataType.FLOAT && !flexible.has(v) && !isFixedTypeInput(node, i));
      if (computed.length > 0 && computed.every((v) => currentType(run, graph, v) === DataType.FLOAT)) {
        return keep('its float32 inputs stay float32 (converting would only add Casts)');
      }
    }
  }
  run.nodes.push({ ...label, precision: 'float16', quantized: true });
  run.stats.nodesConverted++;
  return { half: true, excluded: false };
}

/** How many finite values of a float32 constant the narrow format cannot hold (cached). */
function outOfRange(constant: Flexible, storage: DataType): number {
  if (constant.outOfRange === undefined) {
    const limit = storage === DataType.FLOAT16 ? 65520 : Number.POSITIVE_INFINITY;
    let count = 0;
    for (const x of constant.tensor.data() as Float32Array) if (Math.abs(x) >= limit && Number.isFinite(x)) count++;
    constant.outOfRange = count;
  }
  return constant.outOfRange;
}

/** Makes a float16 node produce float16: output types, Cast targets, ConstantOfShape values. */
function halveNode(run: Run, graph: Graph, node: Node): void {
  node.outputs.forEach((value, index) => {
    if (value !== '' && !isFixedTypeOutput(node, index) && originalType(run, graph, value) === DataType.FLOAT) run.changed.set(value, DataType.FLOAT16);
  });
  if (node.opType === 'Cast' && node.attrInt('to') === DataType.FLOAT) node.setAttribute(attr.int('to', DataType.FLOAT16));
  if (node.opType === 'ConstantOfShape') {
    const value = node.attrTensor('value');
    if (value === undefined || value.dataType === DataType.FLOAT) {
      const source = value === undefined ? new Float32Array(1) : (value.data() as Float32Array);
      node.setAttribute(attr.tensor('value', Tensor.fromArray(value?.name ?? '', DataType.FLOAT16, [1], float32ToFloat16(source).bits)));
    }
  }
}

/** Stores a float32 constant in the narrow format when a reader wants it or it is big enough to matter. */
function materialize(run: Run, graph: Graph, name: string, constant: Flexible): void {
  const { tensor, demands } = constant;
  const narrow = demands.has('half') || (!demands.has('exact') && tensor.elementCount >= (run.options.minElements ?? DEFAULT_MIN_ELEMENTS));
  if (!narrow) return;
  const values = tensor.data() as Float32Array;
  const clamp = run.options.clamp !== false;
  const converted = run.storage === DataType.FLOAT16 ? float32ToFloat16(values, { clamp }) : float32ToBfloat16(values, { clamp });
  const { overflow, underflow } = converted.stats;
  if (overflow > 0 && !demands.has('half')) {
    // Only float32 nodes read it, so nothing forces the narrow type, and clamping a value like a
    // BatchNormalization variance of 1e6 to 65504 would wreck the output: keep it, say so.
    run.tensors.push({
      name,
      graph: graph.name,
      from: 'float32',
      to: 'float32',
      elements: tensor.elementCount,
      bytesBefore: tensor.byteLength,
      bytesAfter: tensor.byteLength,
      sqnrDb: Number.POSITIVE_INFINITY,
      overflow,
      underflow: 0,
      note: `kept float32: ${overflow} values beyond the ${dataTypeName(run.storage)} range and only float32 nodes read it`,
    });
    run.stats.tensorsKeptForRange++;
    return;
  }
  const narrowed = Tensor.fromArray(name, run.storage, tensor.dims, converted.bits);
  if (constant.node !== undefined) {
    // An initializer costs a name and the bytes; a Constant node adds about 45 bytes of wrapping,
    // which across hundreds of small weights is what keeps a model from halving.
    graph.removeNode(constant.node);
    graph.addInitializer(narrowed);
  } else {
    graph.replaceInitializer(graph.initializers.indexOf(tensor), narrowed);
  }
  run.changed.set(name, run.storage);
  run.tensors.push({
    name,
    graph: graph.name,
    from: 'float32',
    to: dataTypeName(run.storage),
    elements: tensor.elementCount,
    bytesBefore: tensor.byteLength,
    bytesAfter: narrowed.byteLength,
    sqnrDb: narrowSqnrDb(values, converted.bits, run.storage === DataType.FLOAT16 ? float16ToFloat32 : bfloat16ToFloat32),
    overflow,
    underflow,
  });
  run.stats.tensorsConverted++;
  run.stats.valuesClamped += overflow;
  run.stats.valuesFlushed += underflow;
  if (overflow > 0) {
    const what = clamp ? 'clamped to the largest finite value' : 'turned into infinities';
    run.warnings.push({
      code: 'out-of-range',
      message: `tensor '${name}': ${overflow} values beyond the ${dataTypeName(run.storage)} range were ${what}`,
      tensor: name,
    });
  }
}

/** Graph outputs keep their declared type (main-graph outputs follow the values when keepIoTypes is false). */
function fixOutputs(model: Model, graph: Graph, run: Run, castOf: (value: string, to: number) => string): void {
  const isMain = graph === model.graph;
  for (const output of graph.outputs) {
    const name = output.name;
    const now = currentType(run, graph, name);
    const declared = tensorTypeOf(output)?.elemType ?? originalType(run, graph, name);
    if (now === undefined || declared === undefined || now === declared) continue;
    if (isMain && run.options.keepIoTypes === false) {
      const type = output.type?.value;
      if (type?.case === 'tensorType') type.value.elemType = now;
      continue;
    }
    const producer = graph.producer(name);
    const initializer = graph.initializer(name);
    if (producer === undefined && initializer === undefined) {
      // An input or an enclosing value: a subgraph output may take the Cast's name instead.
      output.name = castOf(name, declared);
      continue;
    }
    // The producer now writes a new name, and a Cast writes the output under its own name.
    const inner = graph.uniqueName(`${name}_${now === DataType.FLOAT16 ? 'fp16' : dataTypeName(now)}`);
    graph.replaceAllUses(name, inner);
    for (const out of graph.outputs) if (out.name === inner) out.name = name;
    if (producer !== undefined) producer.outputs = producer.outputs.map((o) => (o === name ? inner : o));
    if (initializer !== undefined) initializer.name = inner;
    graph.changed();
    run.changed.set(inner, now);
    run.changed.set(name, declared);
    graph.addNode(
      new Node({
        opType: 'Cast',
        name: graph.uniqueName(`Cast_${name}`),
        inputs: [inner],
        outputs: [name],
        attributes: [attr.int('to', declared)],
      }),
    );
    run.stats.castsAdded++;
  }
}
