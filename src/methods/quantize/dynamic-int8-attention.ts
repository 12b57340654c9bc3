// Self-attention of BERT-style encoders in dynamic int8. onnxruntime's own graph optimizer does not
// fuse attention in these exports (Reshape targets computed from Shape, an additive mask), so the
// projections stay separate integer products and the attention core stays ~10 float ops. Here:
//   1. the optimizer's fuse-attention pass turns the core into MultiHeadAttention(q, k, v, bias);
//   2. each MultiHeadAttention whose q, k and v are MatMul(X, W) [+ constant bias] of one X, and
//      whose attention bias is the usual (1 - mask) * large negative of an integer [B, L] mask
//      (or absent), becomes one of two forms:
//      'flash' (default; dynamic-int8-flash-attention.ts): DynamicQuantizeLinear(X) shared by three
//        MatMulIntegerToFloat, the mask folded into one extra Q/K column per head, and
//        MultiHeadAttention without a mask input, which onnxruntime's CPU runs on its flash path;
//      'qattention': DynamicQuantizeLinear(X) -> QAttention(X_q, [Wq|Wk|Wv] int8, [bq|bk|bv],
//        scales, mask_index = Cast(mask, int32), X_zero_point), with num_heads. QAttention scales
//        the scores by 1/sqrt(head_size); another scale is folded into Wq and bq. One integer GEMM
//        for Q, K and V, but its attention core builds and copies a float mask per head.
// When some attention does not match, the model keeps its exported attention (projections
// quantized like any MatMul) with a warning. ContribOperators.md (QAttention): weight_scale is a scalar or
// [3 * hidden] (per column), weight_zero_point likewise; input_zero_point is a uint8 scalar.
import { attr } from '../../ir/attribute.js';
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { topologicalSort } from '../../ir/toposort.js';
import { tensorTypeOf } from '../../ir/value-info.js';
import { eliminateDeadNodesPass } from '../../optimize/eliminate-dead-nodes.js';
import { fuseAttention } from '../../optimize/fuse-attention.js';
import { allGraphs, isOp } from '../../optimize/util/graph-queries.js';
import { producerOf, scalarConstant } from '../../optimize/util/pattern.js';
import { type ActivationQuantizers, addNamedConstant, dropUnreadChain, nodeNamer, replaceNode } from './dynamic-int8-graph.js';
import { flashAttentionNodes } from './dynamic-int8-flash-attention.js';
import { codeTensor, groupByAxes, type LinearWeightOptions, quantizeLinearWeight } from './dynamic-int8-weights.js';
import { MS_DOMAIN, PerGraphCache, type QuantizedTensorReport } from './weight-tensors.js';

export interface AttentionSettings {
  weights: LinearWeightOptions;
  perChannel: boolean;
  /** 'flash' (default): MatMulIntegerToFloat projections + unmasked MultiHeadAttention; 'qattention': QAttention. */
  form?: AttentionForm;
  /** Nodes the caller keeps in float: an attention whose projection is one of them stays float. */
  exclude?: (node: Node, graph: Graph) => boolean;
}

export type AttentionForm = 'flash' | 'qattention';

export interface AttentionOutcome {
  /** MultiHeadAttention nodes written by the fusion. */
  fused: number;
  /** Of those, the ones now in integer form. */
  quantized: number;
  tensors: Omit<QuantizedTensorReport, 'node'>[];
  /** QAttention / MultiHeadAttention node labels, in order (for the report's tensors). */
  nodes: string[];
  warnings: { code: string; message: string; node?: string }[];
}

/** One projection: MatMul(input, weight) [+ bias]. */
interface Projection {
  matmul: Node;
  add: Node | undefined;
  input: string;
  weight: Tensor;
  bias: Float32Array;
}

/**
 * Fuses the self-attention of `model` and turns it into QAttention, in place, when every attention
 * the fusion finds converts; otherwise the model is left as it was (a float MultiHeadAttention
 * is no faster on CPU than the exported ops) and the warnings say why.
 */
export function quantizeAttention(model: Model, settings: AttentionSettings, activations: ActivationQuantizers): AttentionOutcome {
  const outcome: AttentionOutcome = { fused: 0, quantized: 0, tensors: [], nodes: [], warnings: [] };
  if (![...model.graph.allNodes()].some(({ node }) => isOp(node, 'Softmax'))) return outcome;
  // Tried on a copy (weights shared), adopted only when every attention converts.
  const trial = model.clone();
  const fusion = fuseAttention.run(trial, {}, {}) as Awaited<ReturnType<typeof fuseAttention.run>>;
  outcome.fused = Number(fusion.stats?.fused ?? 0);
  if (outcome.fused === 0) return outcome;
  const masks = new PerGraphCache<string>();
  const maskColumns = new PerGraphCache<string>();
  const misses: string[] = [];
  for (const graph of allGraphs(trial.graph)) {
    for (const mha of [...graph.nodes]) {
      if (mha.opType !== 'MultiHeadAttention' || mha.domain !== MS_DOMAIN) continue;
      const why = rewrite(trial, graph, mha, settings, activations, { masks, maskColumns }, outcome);
      if (why !== undefined) misses.push(why);
    }
  }
  if (misses.length > 0) {
    outcome.warnings.push({
      code: 'attention-float',
      message: `self-attention left as exported (${outcome.fused} found, ${misses.length} not convertible to integer attention): ${misses[0]}`,
    });
    return { ...outcome, quantized: 0, tensors: [], nodes: [] };
  }
  // The Expand of the float mask and its shape chain are read by nothing now.
  eliminateDeadNodesPass.run(trial, {}, {});
  for (const graph of allGraphs(trial.graph)) topologicalSort(graph);
  model.graph = trial.graph;
  model.opsetImports = trial.opsetImports;
  return outcome;
}

function rewrite(
  model: Model,
  graph: Graph,
  mha: Node,
  settings: AttentionSettings,
  activations: ActivationQuantizers,
  caches: { masks: PerGraphCache<string>; maskColumns: PerGraphCache<string> },
  outcome: AttentionOutcome,
): string | undefined {
  if (mha.inputs.length > 6 || (mha.inputs[3] ?? '') !== '' || (mha.inputs[4] ?? '') !== '') return `'${mha.label}' has inputs besides query, key, value and attention bias`;
  const projections: Projection[] = [];
  for (const value of mha.inputs.slice(0, 3)) {
    const p = projection(graph, value, mha);
    if (typeof p === 'string') return p;
    projections.push(p);
  }
  const input = projections[0].input;
  if (projections.some((p) => p.input !== input)) return 'query, key and value are not projections of one input';
  const excluded = projections.find((p) => settings.exclude?.(p.matmul, graph));
  if (excluded !== undefined) return `the projection '${excluded.matmul.label}' is excluded`;
  const [K, N] = projections[0].weight.dims;
  if (projections.some((p) => p.weight.dims[0] !== K || p.weight.dims[1] !== N)) return 'query, key and value weights differ in shape';
  const heads = mha.attrInt('num_heads', 0) ?? 0;
  if (heads <= 0 || N % heads !== 0) return `num_heads ${heads} does not divide the hidden size ${N}`;
  let mask: string | undefined;
  const bias = mha.inputs[5] ?? '';
  if (bias !== '') {
    const found = integerMask(graph, bias);
    if (typeof found === 'string') return found;
    mask = found.mask;
  }
  const headSize = N / heads;
  const scale = mha.attrFloat('scale', 0) || 1 / Math.sqrt(headSize);
  let written: { nodes: Node[]; tensor: Omit<QuantizedTensorReport, 'node'> };
  if ((settings.form ?? 'flash') === 'flash') {
    written = flashAttentionNodes(model, graph, mha, projections, { heads, scale, mask }, settings, activations, caches.maskColumns);
  } else {
    const maskIndex = mask === undefined ? '' : caches.masks.get(graph, mask, () => castToInt32(graph, mask, mha)).value;
    written = qAttentionNodes(model, graph, mha, projections, { heads, scale, maskIndex }, settings, activations);
  }
  replaceNode(graph, mha, written.nodes);
  const fused = written.nodes[written.nodes.length - 1];
  // Shape readers of a projection read the same [B, S, hidden] shape from the output now.
  const output = mha.outputs[0];
  for (const p of projections) {
    const value = p.add?.outputs[0] ?? p.matmul.outputs[0];
    for (const n of graph.consumers(value)) if (isOp(n, 'Shape')) n.inputs = n.inputs.map((i) => (i === value ? output : i));
  }
  for (const p of projections) {
    for (const node of [p.add, p.matmul]) if (node !== undefined) graph.removeNode(node);
    for (const value of [...p.matmul.inputs.slice(1), ...(p.add?.inputs ?? [])]) dropUnreadChain(graph, value);
  }
  graph.changed();
  outcome.quantized++;
  outcome.nodes.push(fused.label);
  outcome.tensors.push(written.tensor);
  return undefined;
}

/** QAttention (packed int8 Q/K/V weights, mask_index) in place of `mha`. */
function qAttentionNodes(
  model: Model,
  graph: Graph,
  mha: Node,
  projections: Projection[],
  attention: { heads: number; scale: number; maskIndex: string },
  settings: AttentionSettings,
  activations: ActivationQuantizers,
): { nodes: Node[]; tensor: Omit<QuantizedTensorReport, 'node'> } {
  const { heads, scale, maskIndex } = attention;
  const [K, N] = projections[0].weight.dims;
  // QAttention scales the scores by 1/sqrt(head_size); any other scale goes into Wq and bq.
  const headSize = N / heads;
  const factor = scale * Math.sqrt(headSize);
  const packed = new Float32Array(K * 3 * N);
  const packedBias = new Float32Array(3 * N);
  projections.forEach((p, which) => {
    const w = p.weight.data() as Float32Array;
    const f = which === 0 ? factor : 1;
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) packed[k * 3 * N + which * N + n] = w[k * N + n] * f;
    for (let n = 0; n < N; n++) packedBias[which * N + n] = p.bias[n] * f;
  });
  const { weights, perChannel } = settings;
  const q = quantizeLinearWeight(packed, groupByAxes([K, 3 * N], perChannel ? [1] : []), weights);
  const scaleDims = perChannel ? [3 * N] : [];
  const base = projections[0].weight.name;
  const codes = addNamedConstant(model, graph, codeTensor('', weights.type, [K, 3 * N], q.codes), `${base}_qkv_quantized`, mha);
  const scales = addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, q.scales), `${base}_qkv_scale`, mha);
  const biasName = addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, [3 * N], packedBias), `${base}_qkv_bias`, mha);
  const zeroPoint = q.zeroPoints.some((z) => z !== 0)
    ? addNamedConstant(model, graph, codeTensor('', weights.type, scaleDims, q.zeroPoints), `${base}_qkv_zero_point`, mha)
    : '';
  const x = activations.of(graph, projections[0].input);
  const name = nodeNamer(graph, mha);
  const inputs = [x.q, codes, biasName, x.scale, scales, maskIndex, x.zeroPoint, zeroPoint];
  while (inputs[inputs.length - 1] === '') inputs.pop();
  const node = new Node({
    opType: 'QAttention',
    domain: MS_DOMAIN,
    inputs,
    outputs: [mha.outputs[0]],
    name: name('QAttention'),
    attributes: [attr.int('num_heads', heads)],
  });
  return {
    nodes: [node],
    tensor: {
      name: projections.map((p) => p.weight.name).join('+'),
      op: 'QAttention',
      bytesBefore: 3 * K * N * 4,
      bytesAfter: 3 * K * N + q.scales.length * 4 + (zeroPoint === '' ? 0 : q.zeroPoints.length),
      sqnrDb: q.sqnrDb,
    },
  };
}

/** `value` (read by `reader` alone) as MatMul(X, constant float32 [K, N]) [+ constant [N] bias]. */
function projection(graph: Graph, value: string, reader: Node): Projection | string {
  // Shape readers are the fusion's own (the mask's Expand target); they are moved to the output.
  if (graph.consumers(value).some((n) => n !== reader && !isOp(n, 'Shape')) || graph.isGraphOutput(value)) return `'${value}' is read elsewhere too`;
  let add = producerOf(graph, value, 'Add');
  let product = value;
  let bias: Float32Array | undefined;
  if (add !== undefined) {
    const at = add.inputs.findIndex((v) => constantValue(graph, v) !== undefined);
    const constant = at < 0 ? undefined : constantValue(graph, add.inputs[at]);
    if (constant === undefined || constant.dataType !== DataType.FLOAT || constant.dims.length !== 1) return `'${add.label}' does not add a constant bias vector`;
    bias = constant.data() as Float32Array;
    product = add.inputs[1 - at];
    if (graph.consumers(product).length !== 1 || graph.isGraphOutput(product)) return `'${product}' is read elsewhere too`;
  } else {
    add = undefined;
  }
  const matmul = producerOf(graph, product, 'MatMul');
  if (matmul === undefined) return `'${value}' is not a MatMul projection`;
  const weight = constantValue(graph, matmul.inputs[1]);
  if (weight === undefined || weight.dataType !== DataType.FLOAT || weight.dims.length !== 2) return `'${matmul.label}' has no constant float32 2-D weight`;
  const N = weight.dims[1];
  if (bias !== undefined && bias.length !== N) return `'${add?.label}' adds ${bias.length} values to ${N} columns`;
  return { matmul, add, input: matmul.inputs[0], weight, bias: bias ?? new Float32Array(N) };
}

/**
 * The integer [B, L] mask an additive attention bias is made from: Expand? of
 * Mul(Sub(1, Cast(Unsqueeze...(mask))), c) with c a scalar <= -10000 (or the Mul's operands
 * swapped). QAttention applies such a mask itself (mask_index 0 -> a large negative score).
 */
function integerMask(graph: Graph, value: string): { mask: string } | string {
  const miss = (why: string) => `the attention bias is not (1 - mask) * large negative of an integer mask: ${why}`;
  let v = value;
  const expand = producerOf(graph, v, 'Expand');
  if (expand !== undefined) v = expand.inputs[0];
  const mul = producerOf(graph, v, 'Mul');
  if (mul === undefined) return miss(`'${v}' is not a Mul`);
  const c = mul.inputs.map((i) => scalarConstant(graph, i));
  const at = c.findIndex((x) => x !== undefined && x <= -1e4);
  if (at < 0) return miss(`'${mul.label}' does not scale by a large negative constant`);
  const sub = producerOf(graph, mul.inputs[1 - at], 'Sub');
  if (sub === undefined || scalarConstant(graph, sub.inputs[0]) !== 1) return miss(`'${mul.inputs[1 - at]}' is not 1 - mask`);
  let m = sub.inputs[1];
  const cast = producerOf(graph, m, 'Cast');
  if (cast !== undefined) m = cast.inputs[0];
  for (let depth = 0; depth < 3; depth++) {
    const unsqueeze = producerOf(graph, m, 'Unsqueeze');
    if (unsqueeze === undefined) break;
    m = unsqueeze.inputs[0];
  }
  if (!graph.isGraphInput(m)) return miss(`'${m}' is not a graph input`);
  const type = tensorTypeOf(graph.inputs.find((i) => i.name === m));
  const elem = type?.elemType;
  const shape = type?.shape;
  if (elem !== DataType.INT64 && elem !== DataType.INT32) return miss(`'${m}' is not int64 or int32`);
  if (shape !== undefined && shape.length !== 2) return miss(`'${m}' is not [batch, length]`);
  return { mask: m };
}

/** Cast(mask, int32), placed before `before`. */
function castToInt32(graph: Graph, mask: string, before: Node): string {
  const output = graph.uniqueName(`${mask}_int32`);
  const at = graph.nodes.indexOf(before);
  graph.addNode(new Node({ opType: 'Cast', inputs: [mask], outputs: [output], name: graph.uniqueName(`${mask}_Cast_int32`), attributes: [attr.int('to', DataType.INT32)] }), at);
  return output;
}
