// Graph edits the dynamic int8 rewrites share: reading a weight that reaches its op through
// shape-only ops and leading-axis Slice/Concat (Silero's LSTM weights), adding constants under fresh
// names, one DynamicQuantizeLinear per activation and graph (Q, K and V projections of one input
// share it), dropping the chain that fed a weight once nothing reads it, and the Cast and Mul
// that turn an integer product back into float32.
import { attr } from '../../ir/attribute.js';
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import type { Tensor } from '../../ir/tensor.js';
import { isRead } from '../../optimize/util/graph-queries.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { PerGraphCache, readFloatWeight } from './weight-tensors.js';

/** Ops that change a tensor's shape but not its values in order. */
const SHAPE_ONLY = new Set(['Identity', 'Unsqueeze', 'Squeeze', 'Reshape', 'Flatten']);
/** Ops the weight reader evaluates on constants (leading-axis Slice and Concat only). */
const ROW_OPS = new Set(['Slice', 'Concat']);

interface Rows {
  /** Known dims, or undefined after a shape-only op (row operations then stop). */
  dims: number[] | undefined;
  values: Float32Array;
  tensor: Tensor;
}

/**
 * A float weight read directly, through shape-only ops, or through Slice and Concat along the
 * first axis (PyTorch's LSTM export reorders gates that way: Silero v5/v6). The caller knows the
 * shape its op wants and checks the element count; shape-only ops keep row-major order.
 */
export function readWeightThroughShapeOps(graph: Graph, name: string): { tensor: Tensor; values: Float32Array } | { reason: string } {
  const got = evaluate(graph, name, 0);
  return typeof got === 'string' ? { reason: got } : { tensor: got.tensor, values: got.values };
}

function evaluate(graph: Graph, name: string, depth: number): Rows | string {
  const direct = readFloatWeight(graph, name);
  if (!('reason' in direct))
    return {
      dims: [...direct.tensor.dims],
      values: direct.values,
      tensor: direct.tensor,
    };
  const scope = graph.scopeOf(name) ?? graph;
  const producer = scope.producer(name);
  const notConstant = `'${name}' is computed at run time, not a constant`;
  if (!direct.reason.includes('computed at run time') || depth > 12) return direct.reason;
  if (producer === undefined || !isStandardDomain(producer.domain)) return notConstant;
  if (SHAPE_ONLY.has(producer.opType)) {
    const inner = evaluate(scope, producer.inputs[0], depth + 1);
    return typeof inner === 'string' ? inner : { ...inner, dims: undefined };
  }
  if (producer.opType === 'Concat') {
    const parts = producer.inputs.map((i) => evaluate(scope, i, depth + 1));
    const bad = parts.find((p) => typeof p === 'string');
    if (bad !== undefined) return bad as string;
    const rows = parts as Rows[];
    const dims = rows[0].dims;
    if (dims === undefined || (producer.attrInt('axis', 0) !== 0 && producer.attrInt('axis', 0) !== -dims.length)) return notConstant;
    const inner = dims.slice(1).join(',');
    if (rows.some((r) => r.dims === undefined || r.dims.slice(1).join(',') !== inner)) return notConstant;
    const values = new Float32Array(rows.reduce((n, r) => n + r.values.length, 0));
    let at = 0;
    for (const r of rows) {
      values.set(r.values, at);
      at += r.values.length;
    }
    return {
      dims: [rows.reduce((n, r) => n + (r.dims as number[])[0], 0), ...dims.slice(1)],
      values,
      tensor: rows[0].tensor,
    };
  }
  if (producer.opType === 'Slice') {
    const data = evaluate(scope, producer.inputs[0], depth + 1);
    if (typeof data === 'string') return data;
    if (data.dims === undefined) return notConstant;
    const ints = (i: number, attribute: string): number[] | undefined => {
      if (producer.inputs.length <= 1) return producer.attrInts(attribute)?.map(Number);
      const input = producer.inputs[i] ?? '';
      if (input === '') return undefined;
      const t = constantValue(scope, input);
      if (t === undefined) return [Number.NaN];
      return Array.from(t.data() as BigInt64Array | Int32Array, Number);
    };
    const starts = ints(1, 'starts');
    const ends = ints(2, 'ends');
    const axes = ints(3, 'axes') ?? [0];
    const steps = ints(4, 'steps') ?? [1];
    if (starts?.length !== 1 || ends?.length !== 1 || axes.length !== 1 || (axes[0] !== 0 && axes[0] !== -data.dims.length) || steps[0] !== 1)
      return notConstant;
    const size = data.dims[0];
    const clamp = (v: number) => Math.min(size, Math.max(0, v < 0 ? v + size : v));
    const [from, to] = [clamp(starts[0]), clamp(ends[0])];
    const row = data.values.length / size;
    return {
      dims: [Math.max(0, to - from), ...data.dims.slice(1)],
      values: data.values.slice(from * row, Math.max(from, to) * row),
      tensor: data.tensor,
    };
  }
  return notConstant;
}

/**
 * Removes what produced `name` when nothing reads it any more: a Constant node or initializer, and
 * shape-only ops, Slice and Concat back to their sources (their other inputs too, once unread).
 */
export function dropUnreadChain(graph: Graph, name: string): void {
  for (let g: Graph | undefined = graph; g !== undefined; g = g.parent) {
    if (!g.definesLocally(name)) continue;
    if (isRead(g, name) || g.isGraphInput(name)) return;
    const producer = g.producer(name);
    if (
      producer !== undefined &&
      isStandardDomain(producer.domain) &&
      (producer.opType === 'Constant' || SHAPE_ONLY.has(producer.opType) || ROW_OPS.has(producer.opType))
    ) {
      g.removeNode(producer);
      for (const input of producer.inputs) if (input !== '') dropUnreadChain(g, input);
    } else if (producer === undefined && g.initializer(name) !== undefined) {
      g.removeInitializer(name);
    }
    return;
  }
}

/** Adds `tensor` as a constant of `graph` under a fresh name based on `base`; returns the name. */
export function addNamedConstant(model: Model, graph: Graph, tensor: Tensor, base: string, before: Node): string {
  tensor.name = graph.uniqueName(base);
  addConstant(model, graph, tensor, before);
  return tensor.name;
}

/** DynamicQuantizeLinear's three outputs for one activation. */
export interface QuantizedActivation {
  q: string;
  scale: string;
  zeroPoint: string;
}

/**
 * The uint8 codes, scale and zero point of `input` (DynamicQuantizeLinear, ai.onnx 11), made once
 * per graph and activation. The node goes right after the activation's producer, so it precedes
 * every reader in a sorted graph.
 */
export class ActivationQuantizers {
  private readonly made = new PerGraphCache<QuantizedActivation>();

  of(graph: Graph, input: string): QuantizedActivation {
    return this.made.get(graph, input, () => this.make(graph, input)).value;
  }

  private make(graph: Graph, input: string): QuantizedActivation {
    const base = input.replace(/[^A-Za-z0-9_./-]/g, '_');
    const outputs: QuantizedActivation = {
      q: graph.uniqueName(`${base}_quantized`),
      scale: graph.uniqueName(`${base}_scale`),
      zeroPoint: graph.uniqueName(`${base}_zero_point`),
    };
    const producer = graph.producer(input);
    const at = producer === undefined ? 0 : graph.nodes.indexOf(producer) + 1;
    graph.addNode(
      new Node({
        opType: 'DynamicQuantizeLinear',
        inputs: [input],
        outputs: [outputs.q, outputs.scale, outputs.zeroPoint],
        name: graph.uniqueName(`${base}_DynamicQuantizeLinear`),
      }),
      at,
    );
    return outputs;
  }
}

/** Puts `nodes` where `node` was, in order. */
export function replaceNode(graph: Graph, node: Node, nodes: Node[]): void {
  const at = graph.nodes.indexOf(node);
  if (at < 0) throw new Error(`node '${node.label}' is not in graph '${graph.name}'`);
  graph.nodes.splice(at, 1, ...nodes);
  graph.changed();
}

/** The element type names dynamic int8 accepts for activations and float weights. */
export function isFloat32(type: DataType | undefined): boolean {
  return type === DataType.FLOAT;
}

/** Fresh value and node names for what replaces `node`, prefixed by its label (made name-safe). */
export function nodeNamer(graph: Graph, node: Node): (base: string) => string {
  const label = node.label.replace(/[^A-Za-z0-9_./-]/g, '_');
  return (base) => graph.uniqueName(`${label}_${base}`);
}

/** A constant float32 weight of a node dynamic int8 rewrites, or why it stays in float. */
export function readFloat32Weight(
  graph: Graph,
  weightName: string,
  notFloat32Reason: string,
): { tensor: Tensor; values: Float32Array } | { done: false; code: string; reason: string } {
  const weight = readFloatWeight(graph, weightName);
  if ('reason' in weight) return { done: false, code: 'weight-not-constant-float', reason: weight.reason };
  if (weight.tensor.dataType !== DataType.FLOAT) return { done: false, code: 'weight-not-float32', reason: notFloat32Reason };
  return weight;
}

/** The names an integer product (MatMulInteger, ConvInteger) is turned back into float32 with. */
export interface IntegerRescale {
  /** The integer op's int32 output. */
  integer: string;
  /** Its Cast to float32. */
  asFloat: string;
  /** activationScale * weightScale. */
  scaleProduct: string;
  activationScale: string;
  weightScale: string;
  /** asFloat * scaleProduct. */
  output: string;
}

/**
 * Cast(integer) -> Mul by (activation scale * weight scale): the float32 result of an integer op
 * whose operands had their zero points subtracted, as onnxruntime's quantize_dynamic lays it out.
 */
export function rescaleIntegerProduct(names: IntegerRescale, name: (base: string) => string): Node[] {
  return [
    new Node({
      opType: 'Cast',
      inputs: [names.integer],
      outputs: [names.asFloat],
      name: name('Cast'),
      attributes: [attr.int('to', DataType.FLOAT)],
    }),
    new Node({
      opType: 'Mul',
      inputs: [names.activationScale, names.weightScale],
      outputs: [names.scaleProduct],
      name: name('scale_Mul'),
    }),
    new Node({
      opType: 'Mul',
      inputs: [names.asFloat, names.scaleProduct],
      outputs: [names.output],
      name: name('Mul'),
    }),
  ];
}
