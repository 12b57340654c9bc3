// Fuses decoder self-attention with a KV cache, as optimum and torch.onnx.export write it:
//   q = heads(q_proj);  present_k = Concat(past_k, heads(k_proj), axis 2);  present_v likewise
//   p = Softmax(MatMul(q, Transpose(present_k, [0,1,3,2])) / sqrt(D) + bias);  y = merge(MatMul(p, present_v))
// where heads(x) = Transpose(Reshape(x, [B,S,H,D]), [0,2,1,3]) and present_k/v are graph outputs,
// into one of onnxruntime's com.microsoft fused forms:
//   'mha': MultiHeadAttention(query, key, value, , , attention_bias, past_key, past_value)
//          -> (output, present_key, present_value). Exact: the model's own bias (causal + padding,
//          [B or 1, 1 or H, S, past + S]) is the attention_bias.
//   'gqa': GroupQueryAttention(query, key, value, past_key, past_value, seqlens_k,
//          total_sequence_length) -> (output, present_key, present_value), kv_num_heads = num_heads.
//          GroupQueryAttention is causal by construction and takes no bias: seqlens_k (per row, the
//          index of its last real token) = ReduceSum(attention_mask) - 1 and total_sequence_length =
//          attention_mask's length, so the model's bias is dropped. That equals the unfused model
//          when the bias is the causal mask of attention_mask and padding (if any) is on the right;
//          the pass needs an attention_mask input and says so otherwise.
// The projections stay (the fused ops take their outputs). Opt-in passes: neither runs by default.
import { attr } from '../ir/attribute.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import type { Pass } from '../pipeline/pass.js';
import { findCore, headSplit, privateShapeChains, same, scoreChain, splitScale } from './fuse-attention.js';
import { inferShapesThroughFusions } from './fuse-skip-layernorm.js';
import { isOp, subgraphReaders } from './util/graph-queries.js';
import { ensureOpset, fusedNode, producerOf, replacePattern, soleConsumer } from './util/pattern.js';
import { PassResult } from './util/report.js';
import { addConstant } from './util/write-constant.js';

export type CachedAttentionForm = 'mha' | 'gqa';

type ShapeOf = (value: string) => readonly Dim[] | undefined;

interface CachedMatch {
  nodes: Node[];
  query: string;
  key: string;
  value: string;
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
  bias?: string;
  heads: number;
  scale: number;
  result: string;
}

function cachedAttentionPass(form: CachedAttentionForm): Pass {
  const op = form === 'mha' ? 'MultiHeadAttention' : 'GroupQueryAttention';
  return {
    name: form === 'mha' ? 'fuse-cached-attention' : 'fuse-group-query-attention',
    description: `decoder attention with past/present Concat -> com.microsoft ${op} (KV cache in and out)`,
    run(model) {
      const result = new PassResult(['fused', 'nodesRemoved']);
      const graph = model.graph;
      const types = inferShapesThroughFusions(model).types.get(graph);
      const shapeOf: ShapeOf = (v) => types?.get(v)?.shape;
      let lengths: { seqlensK: string; total: string } | undefined;
      for (const softmax of [...graph.nodes]) {
        if (!isOp(softmax, 'Softmax') || !graph.nodes.includes(softmax)) continue;
        const core = findCore(graph, softmax);
        if (core === undefined) continue;
        const match = matchCached(graph, softmax, core, shapeOf, types?.get(softmax.inputs[0])?.elemType);
        if (typeof match === 'string') {
          result.warn('not-fused', `attention at Softmax '${softmax.label}' left as is: ${match}`, { node: softmax.label });
          continue;
        }
        if (form === 'gqa' && lengths === undefined) {
          const mask = graph.inputs.find((i) => i.name === 'attention_mask');
          if (mask === undefined) throw new Error(`GroupQueryAttention needs the decoder's attention_mask input (for seqlens_k and total_sequence_length); the model has ${graph.inputs.map((i) => i.name).join(', ')}`);
          lengths = sequenceLengths(model, graph, mask.name, softmax);
        }
        fuseCached(graph, match, form, lengths);
        ensureOpset(model, 'com.microsoft', 1);
        result.count('fused');
        result.count('nodesRemoved', match.nodes.length - 1);
      }
      return result.done();
    },
  };
}

/** Decoder attention with past/present Concat -> MultiHeadAttention (exact: the model's bias goes in as attention_bias). */
export const fuseCachedAttention = cachedAttentionPass('mha');
/** Decoder attention with past/present Concat -> GroupQueryAttention (causal; seqlens from attention_mask). */
export const fuseGroupQueryAttention = cachedAttentionPass('gqa');

function matchCached(graph: Graph, softmax: Node, core: { qk: Node; pv: Node }, shapeOf: ShapeOf, elemType: number | undefined): CachedMatch | string {
  if (elemType !== DataType.FLOAT) return 'the scores are not float32';
  const axis = softmax.attrInt('axis', -1);
  if (axis !== -1 && axis !== 3) return `Softmax normalizes axis ${axis}, not the key axis`;
  const scores = scoreChain(graph, softmax, core);
  if (typeof scores === 'string') return scores;
  const { nodes } = scores;
  let scale = scores.scale;

  const q = headSplit(graph, core.qk.inputs[0], [[0, 2, 1, 3]], shapeOf);
  if (q === undefined || typeof q === 'string') return `query: ${q ?? 'not a head split'}`;
  const keyT = producerOf(graph, core.qk.inputs[1], 'Transpose');
  if (keyT === undefined || keyT.attrInts('perm')?.join() !== '0,1,3,2') return 'the key is not Transpose [0,1,3,2] of a cache Concat';
  const key = cacheConcat(graph, keyT.inputs[0], shapeOf);
  const value = cacheConcat(graph, core.pv.inputs[1], shapeOf);
  if (typeof key === 'string') return `key: ${key}`;
  if (typeof value === 'string') return `value: ${value}`;
  nodes.push(keyT, key.concat, value.concat);
  for (const split of [q, key.split, value.split]) {
    nodes.push(...split.nodes);
    scale *= splitScale(graph, split);
  }
  const splits = [q, key.split, value.split];
  if (splits.some((s) => s.heads !== q.heads || s.headSize !== q.headSize)) return 'query, key and value differ in heads or head size';
  const qs = shapeOf(q.projection) as readonly Dim[];

  const back = soleConsumer(graph, core.pv.outputs[0], 'Transpose');
  if (back === undefined || back.attrInts('perm')?.join() !== '0,2,1,3') return 'the attention output is not transposed back to [B,S,H,D]';
  const merge = graph.consumers(back.outputs[0]).find((n) => isOp(n, 'Reshape') && n.inputs[0] === back.outputs[0]);
  const merged = merge === undefined ? undefined : shapeOf(merge.outputs[0]);
  if (merge === undefined || merged === undefined || merged.length !== 3 || merged[2] !== q.heads * q.headSize || !same(merged[1], qs[1])) {
    return 'the heads are not merged back into [B,S,hidden] by one Reshape';
  }
  nodes.push(back, merge);
  if (scores.mask !== undefined) {
    const mask = shapeOf(scores.mask);
    const fits = (d: Dim, full: Dim) => d === 1 || same(d, full) || typeof d !== 'number';
    if (mask === undefined || mask.length !== 4 || !fits(mask[1], q.heads) || mask[2] === 1) {
      return `mask '${scores.mask}' is ${mask === undefined ? 'of unknown shape' : `[${mask.join(',')}]`}, not [B or 1, heads or 1, S, past + S]`;
    }
  }
  nodes.push(...privateShapeChains(graph, nodes, merge.outputs[0]));
  // The presents are graph outputs (the fused op returns them); every other value stays inside.
  const presents = new Set([key.concat.outputs[0], value.concat.outputs[0]]);
  const inside = new Set(nodes);
  for (const node of nodes) {
    for (const out of node.outputs) {
      if (out === '' || out === merge.outputs[0]) continue;
      if ((!presents.has(out) && graph.isGraphOutput(out)) || subgraphReaders(graph, out).length > 0) return `'${out}' is read outside the pattern`;
      if (graph.consumers(out).some((reader) => !inside.has(reader))) return `'${out}' is read outside the pattern`;
    }
  }
  return {
    nodes,
    query: q.projection,
    key: key.split.projection,
    value: value.split.projection,
    pastKey: key.past,
    pastValue: value.past,
    presentKey: key.concat.outputs[0],
    presentValue: value.concat.outputs[0],
    bias: scores.mask,
    heads: q.heads,
    scale,
    result: merge.outputs[0],
  };
}

/** `value` as Concat(past graph input, heads(projection)) on the sequence axis, its output a graph output (present). */
function cacheConcat(graph: Graph, value: string, shapeOf: ShapeOf) {
  const concat = producerOf(graph, value, 'Concat');
  if (concat === undefined || concat.inputs.length !== 2) return 'not a Concat of the past and the new heads';
  const axis = concat.attrInt('axis', 0);
  if (axis !== 2 && axis !== -2) return `Concat '${concat.label}' joins axis ${axis}, not the sequence axis 2`;
  const [past, fresh] = concat.inputs;
  if (!graph.isGraphInput(past)) return `Concat '${concat.label}' does not read a past input first`;
  if (!graph.isGraphOutput(concat.outputs[0])) return `Concat '${concat.label}' output is not a graph output (present)`;
  const split = headSplit(graph, fresh, [[0, 2, 1, 3]], shapeOf);
  if (split === undefined || typeof split === 'string') return split ?? 'the new keys/values are not a head split';
  return { concat, past, split };
}

/** seqlens_k (int32 [B]: ReduceSum(attention_mask) - 1) and total_sequence_length (int32 scalar), once per graph. */
function sequenceLengths(model: Model, graph: Graph, mask: string, anchor: Node): { seqlensK: string; total: string } {
  const constant = (name: string, dataType: DataType, dims: number[], values: BigInt64Array | Int32Array): string => {
    const tensor = Tensor.fromArray(graph.uniqueName(name), dataType, dims, values);
    addConstant(model, graph, tensor, anchor);
    return tensor.name;
  };
  const named = (node: Node, name: string): Node => {
    node.outputs = [graph.uniqueName(name)];
    return node;
  };
  const opset = model.opset('') ?? 13;
  const sum = opset >= 13
    ? fusedNode(graph, 'ReduceSum', [mask, constant('attention_mask_axis', DataType.INT64, [1], BigInt64Array.from([1n]))], [attr.int('keepdims', 0)])
    : fusedNode(graph, 'ReduceSum', [mask], [attr.ints('axes', [1]), attr.int('keepdims', 0)]);
  named(sum, 'attention_mask_length');
  const sum32 = named(fusedNode(graph, 'Cast', [sum.outputs[0]], [attr.int('to', DataType.INT32)]), 'attention_mask_length_int32');
  const seqlens = named(fusedNode(graph, 'Sub', [sum32.outputs[0], constant('one_int32', DataType.INT32, [], Int32Array.from([1]))]), 'seqlens_k');
  const shape = named(fusedNode(graph, 'Shape', [mask]), 'attention_mask_shape');
  const length = named(fusedNode(graph, 'Gather', [shape.outputs[0], constant('attention_mask_length_axis', DataType.INT64, [], BigInt64Array.from([1n]))], [attr.int('axis', 0)]), 'attention_mask_total');
  const total = named(fusedNode(graph, 'Cast', [length.outputs[0]], [attr.int('to', DataType.INT32)]), 'total_sequence_length');
  // Before the first attention: every input here is a graph input or a constant.
  const at = graph.nodes.indexOf(anchor);
  graph.nodes.splice(Math.max(0, at), 0, sum, sum32, seqlens, shape, length, total);
  graph.changed();
  return { seqlensK: seqlens.outputs[0], total: total.outputs[0] };
}

function fuseCached(graph: Graph, match: CachedMatch, form: CachedAttentionForm, lengths?: { seqlensK: string; total: string }): void {
  const fused =
    form === 'mha'
      ? fusedNode(graph, 'MultiHeadAttention', [match.query, match.key, match.value, '', '', match.bias ?? '', match.pastKey, match.pastValue], [attr.int('num_heads', match.heads), attr.float('scale', match.scale)], 'com.microsoft')
      : fusedNode(
          graph,
          'GroupQueryAttention',
          [match.query, match.key, match.value, match.pastKey, match.pastValue, (lengths as { seqlensK: string }).seqlensK, (lengths as { total: string }).total],
          [attr.int('num_heads', match.heads), attr.int('kv_num_heads', match.heads), attr.float('scale', match.scale)],
          'com.microsoft',
        );
  replacePattern(graph, match.nodes, fused, match.result);
  fused.outputs = [match.result, match.presentKey, match.presentValue];
  graph.changed();
}
