// Computes only the rows a Gather reads. A classifier on top of an encoder reads one token of the
// last layer (BERT's pooler: hidden[:, 0], a Gather on the sequence axis), yet the exported graph
// runs that layer's feed-forward block, its attention output and its LayerNorms for every token.
// Those ops work on each row of the sequence axis on its own, so a Gather after them can move in
// front of them: the same values, computed for the gathered rows only. Repeated, the Gather climbs
// until it meets an op that mixes rows (the keys and values of attention, a Reshape, a Transpose)
// or a value that something else reads in full; there it stays.
//
// Exact for float ops (onnxruntime may sum in another order for fewer rows: ulp-level changes).
// One exception, by design: com.microsoft DynamicQuantizeMatMul quantizes its input with one scale
// computed from the rows it is given, so after the move that scale covers the gathered rows only
// (as it already covers whatever batch a caller feeds); the outputs change within int8 noise.
// A scalar-index Gather (which drops the axis) becomes a 1-D-index Gather plus a Squeeze, so every
// op it climbs over keeps its rank.
import { attr } from '../ir/attribute.js';
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { TensorType } from '../ir/value-info.js';
import type { Pass } from '../pipeline/pass.js';
import { type Dim, inferShapes } from './shape-inference/index.js';
import { subgraphReaders } from './util/graph-queries.js';
import { dropUnusedConstant } from './util/pattern.js';
import { PassResult } from './util/report.js';
import { addConstant } from './util/write-constant.js';

/** A Gather with constant indices on an activation: what this pass can move. */
interface RowGather {
  node: Node;
  data: string;
  /** Non-negative axis of `data`. */
  axis: number;
  indices: number[];
  /** Scalar indices: the axis is dropped. */
  scalar: boolean;
}

/**
 * Which inputs of a node must be gathered (and on which axis) so that its output comes out
 * gathered on `axis`; undefined when the node mixes rows on that axis (the Gather stays below it).
 */
type RowRule = (node: Node, axis: number, shapeOf: (value: string) => readonly Dim[] | undefined) => { input: number; axis: number }[] | undefined;

// Ops that compute every element from the same element of their first input alone (the other
// inputs, if any, are scalars or attributes such as Clip's bounds).
const UNARY = [
  'Abs', 'Cast', 'Ceil', 'Celu', 'Cos', 'Elu', 'Erf', 'Exp', 'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'Identity',
  'LeakyRelu', 'Log', 'Mish', 'Neg', 'Not', 'Reciprocal', 'Relu', 'Round', 'Selu', 'Sigmoid', 'Sign', 'Sin', 'Softplus',
  'Softsign', 'Sqrt', 'Tanh', 'ThresholdedRelu', 'Clip',
];
// Elementwise with numpy broadcasting over all inputs.
const BROADCAST = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Where', 'Equal', 'Greater', 'Less', 'And', 'Or', 'BitShift', 'Mod', 'PRelu'];
// com.microsoft ops that are elementwise in their first input plus a per-feature bias.
const CONTRIB_UNARY = ['Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu'];

const unary: RowRule = (node, axis, shapeOf) => {
  const rank = shapeOf(node.outputs[0])?.length;
  if (rank === undefined) return undefined;
  // A per-feature bias (FastGelu, BiasGelu) runs along the last axis: rows of that axis do not pass.
  const biased = node.domain === 'com.microsoft' && (node.inputs[1] ?? '') !== '';
  return biased && axis === rank - 1 ? undefined : [{ input: 0, axis }];
};

/** Every input whose aligned dim on `axis` is the output's gets gathered; broadcast ones (1 or missing) stay. */
const broadcast: RowRule = (node, axis, shapeOf) => {
  const out = shapeOf(node.outputs[0]);
  if (out === undefined || out[axis] === 1) return undefined;
  const gathered: { input: number; axis: number }[] = [];
  for (let k = 0; k < node.inputs.length; k++) {
    if (node.inputs[k] === '') continue;
    const shape = shapeOf(node.inputs[k]);
    if (shape === undefined) return undefined;
    const aligned = axis - (out.length - shape.length);
    if (aligned < 0 || shape[aligned] === 1) continue;
    if (shape[aligned] !== out[axis]) return undefined;
    gathered.push({ input: k, axis: aligned });
  }
  return gathered.length === 0 ? undefined : gathered;
};

/** Normalizations over the trailing axes from `axis` (default -1): rows before it are independent. */
const normalization: RowRule = (node, axis, shapeOf) => {
  const rank = shapeOf(node.inputs[0])?.length;
  if (rank === undefined) return undefined;
  const from = node.attrInt('axis', -1);
  if (axis >= (from < 0 ? from + rank : from)) return undefined;
  return node.opType === 'SkipLayerNormalization' ? broadcast(node, axis, shapeOf)?.filter((g) => g.input <= 1) : [{ input: 0, axis }];
};

/** A [.., M, K] x [K, N] product: rows of A other than its last axis pass through. */
const product: RowRule = (node, axis, shapeOf) => {
  const a = shapeOf(node.inputs[0]);
  const b = shapeOf(node.inputs[1]);
  if (a === undefined || b === undefined || b.length !== 2 || a.length < 2 || axis >= a.length - 1) return undefined;
  // MatMulIntegerToFloat / MatMulInteger: A's scale and zero point must be per tensor to stay valid for a subset of rows.
  const perTensor = (index: number) => node.inputs[index] === undefined || node.inputs[index] === '' || (shapeOf(node.inputs[index]) ?? [2]).every((d) => d === 1);
  if (node.opType === 'MatMulIntegerToFloat' && !(perTensor(2) && perTensor(4))) return undefined;
  if (node.opType === 'MatMulInteger' && !perTensor(2)) return undefined;
  return [{ input: 0, axis }];
};

/** Softmax over one axis: the rows across the other axes are independent (opset 13+ semantics). */
const softmax: RowRule = (node, axis, shapeOf) => {
  const rank = shapeOf(node.inputs[0])?.length;
  if (rank === undefined) return undefined;
  const over = node.attrInt('axis', -1);
  return axis === (over < 0 ? over + rank : over) ? undefined : [{ input: 0, axis }];
};

/**
 * Attention's query rows are independent: the queries are gathered, keys and values read whole,
 * and an attention bias [batch, heads, queries, keys] loses the same query rows (unless it
 * broadcasts over them). Not with packed QKV (no separate key input) or a KV cache.
 */
const multiHeadAttention: RowRule = (node, axis, shapeOf) => {
  const query = shapeOf(node.inputs[0]);
  const key = shapeOf(node.inputs[1] ?? '');
  if (query?.length !== 3 || key?.length !== 3 || axis !== 1) return undefined;
  if ((node.inputs[6] ?? '') !== '' || (node.inputs[7] ?? '') !== '') return undefined;
  const gathered = [{ input: 0, axis }];
  if ((node.inputs[5] ?? '') !== '') {
    const bias = shapeOf(node.inputs[5]);
    if (bias?.length !== 4 || (bias[2] !== 1 && bias[2] !== query[1])) return undefined;
    if (bias[2] !== 1) gathered.push({ input: 5, axis: 2 });
  }
  return gathered;
};

const STANDARD_RULES: Record<string, RowRule> = {
  ...Object.fromEntries(UNARY.map((op) => [op, unary])),
  ...Object.fromEntries(BROADCAST.map((op) => [op, broadcast])),
  LayerNormalization: normalization,
  MatMul: product,
  MatMulInteger: product,
};
const CONTRIB_RULES: Record<string, RowRule> = {
  ...Object.fromEntries(CONTRIB_UNARY.map((op) => [op, unary])),
  LayerNormalization: normalization,
  SimplifiedLayerNormalization: normalization,
  SkipLayerNormalization: normalization,
  MatMulIntegerToFloat: product,
  DynamicQuantizeMatMul: product,
  MultiHeadAttention: multiHeadAttention,
};

function rowRule(node: Node): RowRule | undefined {
  if (node.subgraphs().length > 0) return undefined;
  if (isStandardDomain(node.domain)) return node.opType === 'Softmax' || node.opType === 'LogSoftmax' ? softmax : STANDARD_RULES[node.opType];
  return node.domain === 'com.microsoft' ? CONTRIB_RULES[node.opType] : undefined;
}

export const pushRowGathersPass: Pass = {
  name: 'push-row-gathers',
  description: 'moves a Gather of rows (a classifier reading one token) above the per-row ops that make them, so only those rows are computed',
  run(model) {
    const result = new PassResult(['gathersMoved', 'gathersMerged']);
    const graph = model.graph;
    // Shape inference only when there is a Gather of constant rows of an activation to move.
    const any = graph.nodes.some((n) => n.opType === 'Gather' && isStandardDomain(n.domain) && graph.producer(n.inputs[0]) !== undefined && constantValue(graph, n.inputs[1]) !== undefined);
    if (!any) return result.done();
    const types = inferShapes(model, { nameUnknownInputDims: true }).main;
    const shapeOf = (value: string): readonly Dim[] | undefined => {
      const constant = constantValue(graph, value);
      return constant !== undefined ? constant.dims : (types.get(value) as TensorType | undefined)?.shape;
    };
    const changedValues = new Set<string>();
    let moved = true;
    while (moved) {
      moved = false;
      for (const node of [...graph.nodes]) {
        if (!graph.nodes.includes(node)) continue;
        const gather = rowGather(graph, node, shapeOf);
        if (gather === undefined) continue;
        result.count('gathersMerged', mergeTwins(graph, gather, shapeOf));
        const producer = climbable(graph, gather);
        const plan = producer === undefined ? undefined : rowRule(producer)?.(producer, gather.axis, shapeOf);
        if (producer === undefined || plan === undefined) continue;
        const kept = gather.scalar ? keepAxis(model, graph, gather) : gather;
        for (const { input, axis } of plan) {
          const indices = addIndices(model, graph, kept.indices, kept.node, producer);
          const value = graph.uniqueName(`${producer.inputs[input]}_rows`);
          graph.addNode(new Node({ opType: 'Gather', inputs: [producer.inputs[input], indices], outputs: [value], name: graph.uniqueName(`${producer.name || producer.opType}_rows_Gather`), attributes: [attr.int('axis', axis)] }), graph.nodes.indexOf(producer));
          producer.inputs[input] = value;
        }
        // The producer now makes the gathered rows under its old output name (or, when the Gather's
        // output is a graph output, under that name, so the model's interface stays); the Gather goes.
        const out = kept.node.outputs[0];
        removeGather(graph, kept.node);
        if (graph.isGraphOutput(out)) producer.outputs[0] = out;
        else graph.replaceAllUses(out, kept.data);
        changedValues.add(kept.data);
        result.count('gathersMoved');
        moved = true;
      }
    }
    // The values that now hold fewer rows keep their names: their declared shapes no longer hold.
    graph.valueInfo = graph.valueInfo.filter((v) => !changedValues.has(v.name));
    graph.changed();
    return result.done();
  },
};

/** `node` as a Gather of constant rows of an activation (scalar or 1-D int indices), else undefined. */
function rowGather(graph: Graph, node: Node, shapeOf: (value: string) => readonly Dim[] | undefined): RowGather | undefined {
  if (node.opType !== 'Gather' || !isStandardDomain(node.domain) || graph.producer(node.inputs[0]) === undefined) return undefined;
  const indices = constantValue(graph, node.inputs[1]);
  const rank = shapeOf(node.inputs[0])?.length;
  if (indices === undefined || indices.dims.length > 1 || rank === undefined) return undefined;
  if (indices.dataType !== DataType.INT64 && indices.dataType !== DataType.INT32) return undefined;
  const values = Array.from(indices.data() as BigInt64Array | Int32Array, Number);
  const raw = node.attrInt('axis', 0);
  return { node, data: node.inputs[0], axis: raw < 0 ? raw + rank : raw, indices: values, scalar: indices.dims.length === 0 };
}

/** Readers of `gather.data` that gather the same rows become one; returns how many were dropped. */
function mergeTwins(graph: Graph, gather: RowGather, shapeOf: (value: string) => readonly Dim[] | undefined): number {
  let merged = 0;
  for (const other of [...graph.consumers(gather.data)]) {
    if (other === gather.node || graph.isGraphOutput(other.outputs[0])) continue;
    const twin = rowGather(graph, other, shapeOf);
    if (twin === undefined || twin.axis !== gather.axis || twin.scalar !== gather.scalar || twin.indices.join() !== gather.indices.join()) continue;
    graph.replaceAllUses(other.outputs[0], gather.node.outputs[0]);
    removeGather(graph, other);
    merged++;
  }
  return merged;
}

/** The producer a Gather can climb over: the gather is its output's only reader, and its other outputs are unread. */
function climbable(graph: Graph, gather: RowGather): Node | undefined {
  const producer = graph.producer(gather.data);
  if (producer === undefined || graph.isGraphOutput(gather.data)) return undefined;
  if (graph.consumers(gather.data).length !== 1 || subgraphReaders(graph, gather.data).length > 0) return undefined;
  if (producer.outputs[0] !== gather.data) return undefined;
  for (const other of producer.outputs.slice(1)) if (other !== '' && (graph.consumers(other).length > 0 || graph.isGraphOutput(other))) return undefined;
  return producer;
}

/** Turns a scalar-index Gather into a 1-D-index Gather (the axis kept, size 1) and a Squeeze of that axis. */
function keepAxis(model: Model, graph: Graph, gather: RowGather): RowGather {
  const rows = graph.uniqueName(`${gather.node.outputs[0]}_rows`);
  const opset = model.opset('') ?? 1;
  const squeezeInputs = [rows];
  const attributes = [];
  if (opset >= 13) {
    const axes = Tensor.fromArray(graph.uniqueName(`${gather.node.outputs[0]}_axes`), DataType.INT64, [1], BigInt64Array.from([BigInt(gather.axis)]));
    addConstant(model, graph, axes, gather.node);
    squeezeInputs.push(axes.name);
  } else {
    attributes.push(attr.ints('axes', [gather.axis]));
  }
  graph.addNode(new Node({ opType: 'Squeeze', inputs: squeezeInputs, outputs: [gather.node.outputs[0]], name: graph.uniqueName(`${gather.node.name || 'Gather'}_Squeeze`), attributes }), graph.nodes.indexOf(gather.node) + 1);
  const indices = addIndices(model, graph, gather.indices, gather.node, gather.node);
  const node = new Node({ opType: 'Gather', inputs: [gather.data, indices], outputs: [rows], name: graph.uniqueName(`${gather.node.name || 'Gather'}_rows`), attributes: [attr.int('axis', gather.axis)] });
  // In the old Gather's place: after the constants just added before it, before the Squeeze.
  const at = graph.nodes.indexOf(gather.node);
  graph.addNode(node, at);
  removeGather(graph, gather.node);
  return { node, data: gather.data, axis: gather.axis, indices: gather.indices, scalar: false };
}

/** A 1-D int64 constant of the gathered row indices, placed before `before`. */
function addIndices(model: Model, graph: Graph, indices: readonly number[], from: Node, before: Node): string {
  const tensor = Tensor.fromArray(graph.uniqueName(`${from.name || 'Gather'}_rows_indices`), DataType.INT64, [indices.length], BigInt64Array.from(indices, (i) => BigInt(i)));
  addConstant(model, graph, tensor, before);
  return tensor.name;
}

/** Removes a Gather and its indices constant once nothing else reads it. */
function removeGather(graph: Graph, node: Node): void {
  graph.removeNode(node);
  dropUnusedConstant(graph, node.inputs[1]);
}
