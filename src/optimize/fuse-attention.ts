// Fuses self-attention as torch.onnx.export writes it (BERT-style encoders):
//   q, k, v = projections [B,S,hidden] -> Reshape [B,S,H,D] -> Transpose [0,2,1,3] (k: to [B,H,D,L])
//   p = Softmax(MatMul(q, k^T) / sqrt(D) [+ mask]);  y = Reshape(Transpose(MatMul(p, v)), [B,S,hidden])
// into onnxruntime's com.microsoft MultiHeadAttention(query, key, value, ..., attention_bias) with
// num_heads and scale. The projections (MatMul + Add) stay: the fused op takes their outputs.
// MultiHeadAttention runs in onnxruntime-node and -web (wasm, float32; checked in the tests).
// Its attention_bias must be [B or 1, H or 1, S, L]: the usual extended mask [B,1,1,L] is expanded
// over S first; masks of other ranks leave the pattern alone with a warning.
import { attr } from '../ir/attribute.js';
import { constantValue } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import type { Pass } from '../pipeline/pass.js';
import { inferShapesThroughFusions } from './fuse-skip-layernorm.js';
import { allGraphs, isOp, subgraphReaders } from './util/graph-queries.js';
import { ensureOpset, fusedNode, internalValuesPrivate, otherOperand, producerOf, replacePattern, scalarConstant, soleConsumer } from './util/pattern.js';
import { PassResult } from './util/report.js';
import { addConstant } from './util/write-constant.js';

type ShapeOf = (value: string) => readonly Dim[] | undefined;

/** One head split: projection -> Reshape [B,S,H,D] -> Transpose(s). */
interface HeadSplit {
  projection: string;
  heads: number;
  headSize: number;
  nodes: Node[];
}

interface Match {
  nodes: Node[];
  query: string;
  key: string;
  value: string;
  mask?: string;
  heads: number;
  scale: number;
  result: string;
}

/** Ops that compute Reshape targets from Shape in exported graphs (`x.view(b, s, h, d)`). */
const SHAPE_CHAIN_OPS = ['Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Slice', 'Cast', 'Constant', 'Mul', 'Div', 'Add', 'Sub'];

export const fuseAttention: Pass = {
  name: 'fuse-attention',
  description: 'Reshape/Transpose/MatMul/Softmax/MatMul self-attention -> com.microsoft MultiHeadAttention',
  run(model) {
    const result = new PassResult(['fused', 'masked', 'nodesRemoved']);
    const types = inferShapesThroughFusions(model).types;
    for (const graph of allGraphs(model.graph)) {
      const known = types.get(graph);
      const shapeOf: ShapeOf = (v) => known?.get(v)?.shape;
      for (const softmax of [...graph.nodes]) {
        if (!isOp(softmax, 'Softmax') || !graph.nodes.includes(softmax)) continue;
        const core = findCore(graph, softmax);
        if (core === undefined) continue;
        const match = matchAttention(model, graph, softmax, core, shapeOf, known?.get(softmax.inputs[0])?.elemType);
        if (typeof match === 'string') {
          result.warn('not-fused', `attention at Softmax '${softmax.label}' left as is: ${match}`, { node: softmax.label });
          continue;
        }
        fuse(model, graph, match, shapeOf);
        ensureOpset(model, 'com.microsoft', 1);
        result.count('fused');
        if (match.mask !== undefined) result.count('masked');
        result.count('nodesRemoved', match.nodes.length - 1);
      }
    }
    return result.done();
  },
};

/** MatMul(q, k^T) feeding the Softmax (through scaling and a mask) and MatMul(p, v) reading it. */
export function findCore(graph: Graph, softmax: Node): { qk: Node; pv: Node } | undefined {
  const pv = soleConsumer(graph, softmax.outputs[0], 'MatMul');
  if (pv === undefined || pv.inputs[0] !== softmax.outputs[0]) return undefined;
  // Depth-first through Add/Div/Mul: the mask side (often (1 - m) * min) holds no MatMul.
  const search = (value: string, depth: number): Node | undefined => {
    const node = producerOf(graph, value, 'MatMul', 'Add', 'Div', 'Mul');
    if (node === undefined) return undefined;
    if (node.opType === 'MatMul') return node;
    if (depth === 0) return undefined;
    for (const input of node.inputs) {
      const found = search(input, depth - 1);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  const qk = search(softmax.inputs[0], 3);
  return qk === undefined ? undefined : { qk, pv };
}

function matchAttention(model: Model, graph: Graph, softmax: Node, core: { qk: Node; pv: Node }, shapeOf: ShapeOf, elemType: number | undefined): Match | string {
  if (elemType !== DataType.FLOAT) return 'the scores are not float32 (the type onnxruntime-web runs MultiHeadAttention in)';
  const opset = model.opset('') ?? 1;
  const axis = softmax.attrInt('axis', opset >= 13 ? -1 : 1);
  if (axis !== -1 && axis !== 3) return `Softmax normalizes axis ${axis}, not the key axis`;

  const scores = scoreChain(graph, softmax, core);
  if (typeof scores === 'string') return scores;
  const nodes = scores.nodes;
  let scale = scores.scale;
  const mask = scores.mask;

  const q = headSplit(graph, core.qk.inputs[0], [[0, 2, 1, 3]], shapeOf);
  // k^T as one Transpose [0,2,3,1] (merged) or as exported: [0,2,1,3] then [0,1,3,2].
  const k = headSplit(graph, core.qk.inputs[1], [[0, 2, 1, 3], [0, 1, 3, 2]], shapeOf) ?? headSplit(graph, core.qk.inputs[1], [[0, 2, 3, 1]], shapeOf);
  const v = headSplit(graph, core.pv.inputs[1], [[0, 2, 1, 3]], shapeOf);
  if (q === undefined || typeof q === 'string') return `query: ${q ?? 'not a head split'}`;
  if (k === undefined || typeof k === 'string') return `key: ${k ?? 'not a head split'}`;
  if (v === undefined || typeof v === 'string') return `value: ${v ?? 'not a head split'}`;
  for (const split of [q, k, v]) {
    nodes.push(...split.nodes);
    scale *= splitScale(graph, split);
  }
  if (q.heads !== k.heads || q.heads !== v.heads) return `query, key and value have ${q.heads}, ${k.heads} and ${v.heads} heads`;
  if (q.headSize !== k.headSize || q.headSize !== v.headSize) return `head sizes differ (${q.headSize}, ${k.headSize}, ${v.headSize})`;
  const [qs, ks, vs] = [q, k, v].map((s) => shapeOf(s.projection) as readonly Dim[]);
  if (!same(qs[0], ks[0]) || !same(qs[0], vs[0]) || !same(ks[1], vs[1])) return 'query, key and value disagree on batch or key length';

  // Back to [B,S,hidden]: Transpose [0,2,1,3] then Reshape.
  const back = soleConsumer(graph, core.pv.outputs[0], 'Transpose');
  if (back === undefined || back.attrInts('perm')?.join() !== '0,2,1,3') return 'the attention output is not transposed back to [B,S,H,D]';
  const merge = graph.consumers(back.outputs[0]).find((n) => isOp(n, 'Reshape') && n.inputs[0] === back.outputs[0]);
  const merged = merge === undefined ? undefined : shapeOf(merge.outputs[0]);
  if (merge === undefined || merged === undefined || merged.length !== 3 || !same(merged[0], qs[0]) || !same(merged[1], qs[1]) || merged[2] !== q.heads * q.headSize) {
    return 'the heads are not merged back into [B,S,hidden] by one Reshape';
  }
  nodes.push(back, merge);

  if (mask !== undefined) {
    const problem = maskProblem(shapeOf(mask), qs, ks[1], q.heads);
    if (problem !== undefined) return `mask '${mask}' ${problem}`;
  }
  // Shape -> Gather -> Concat chains computing the Reshape targets go with the pattern when only it reads them.
  nodes.push(...privateShapeChains(graph, nodes, merge.outputs[0]));
  if (!internalValuesPrivate(graph, nodes, merge.outputs[0])) return 'an intermediate value (scores, probabilities, heads) is read outside the pattern';
  return { nodes, query: q.projection, key: k.projection, value: v.projection, mask, heads: q.heads, scale, result: merge.outputs[0] };
}

/** Softmax, the two MatMuls and what lies between MatMul(q, k^T) and the Softmax: scalar scalings and at most one mask Add. */
export function scoreChain(graph: Graph, softmax: Node, core: { qk: Node; pv: Node }): { nodes: Node[]; scale: number; mask?: string } | string {
  // Softmax input back to MatMul(q, k^T): an optional mask Add, then scalar scalings.
  const nodes: Node[] = [softmax, core.qk, core.pv];
  let scale = 1;
  let mask: string | undefined;
  let value = softmax.inputs[0];
  while (value !== core.qk.outputs[0]) {
    const node = graph.producer(value) as Node;
    nodes.push(node);
    const fromScores = node.inputs.find((v) => v !== '' && reaches(graph, v, core.qk.outputs[0]));
    const other = fromScores === undefined ? undefined : otherOperand(node, fromScores);
    if (fromScores === undefined || other === undefined) return `'${node.label}' is not a scaling or mask of the scores`;
    if (node.opType === 'Add') {
      if (mask !== undefined || scale !== 1) return `'${node.label}' adds a second term or adds before scaling`;
      mask = other;
    } else {
      const factor = scalarConstant(graph, other);
      if (factor === undefined || factor === 0) return `'${node.label}' scales the scores by something other than a scalar constant`;
      if (node.opType === 'Div' && node.inputs[0] !== fromScores) return `'${node.label}' divides by the scores`;
      scale *= node.opType === 'Div' ? 1 / factor : factor;
    }
    value = fromScores;
  }
  return { nodes, scale, mask };
}

/**
 * `value` as Transpose(s) with the given perms (applied in order, the last one nearest `value`) of
 * Reshape(projection) to [B,S,H,D], optionally scaled by a scalar Mul after the transposes.
 */
export function headSplit(graph: Graph, value: string, perms: number[][], shapeOf: ShapeOf): HeadSplit | string | undefined {
  const nodes: Node[] = [];
  const scaled = producerOf(graph, value, 'Mul');
  if (scaled !== undefined && scaled.inputs.some((v) => scalarConstant(graph, v) !== undefined)) {
    nodes.push(scaled);
    value = scaled.inputs.find((v) => scalarConstant(graph, v) === undefined) ?? '';
  }
  for (const perm of [...perms].reverse()) {
    const transpose = producerOf(graph, value, 'Transpose');
    if (transpose === undefined || transpose.attrInts('perm')?.join() !== perm.join()) return perms.length > 1 ? undefined : `not a Transpose [${perm.join(',')}] of the heads`;
    nodes.push(transpose);
    value = transpose.inputs[0];
  }
  const reshape = producerOf(graph, value, 'Reshape');
  if (reshape === undefined) return 'not a Reshape into heads';
  nodes.push(reshape);
  const projection = reshape.inputs[0];
  const from = shapeOf(projection);
  const to = shapeOf(reshape.outputs[0]);
  if (from === undefined || to === undefined) return `the shapes around Reshape '${reshape.label}' are unknown`;
  if (from.length !== 3 || to.length !== 4 || !same(from[0], to[0]) || !same(from[1], to[1])) {
    return `Reshape '${reshape.label}' maps [${from.join(',')}] to [${to.join(',')}], not [B,S,hidden] to [B,S,heads,head_size]`;
  }
  const [heads, headSize] = [to[2], to[3]];
  if (typeof heads !== 'number' || typeof headSize !== 'number' || typeof from[2] !== 'number' || heads * headSize !== from[2]) {
    return `Reshape '${reshape.label}' does not split the hidden size ${from[2]} into heads x head_size ([${to.join(',')}])`;
  }
  return { projection, heads, headSize, nodes };
}

/** The factor a scalar Mul in a head split applies (1 without one). */
export function splitScale(graph: Graph, split: HeadSplit): number {
  const mul = split.nodes.find((n) => n.opType === 'Mul');
  if (mul === undefined) return 1;
  return mul.inputs.map((v) => scalarConstant(graph, v)).find((s) => s !== undefined) ?? 1;
}

/** Why `mask` cannot be MultiHeadAttention's attention_bias, or undefined when it can. */
function maskProblem(mask: readonly Dim[] | undefined, query: readonly Dim[], keyLength: Dim, heads: number): string | undefined {
  if (mask === undefined) return 'has an unknown shape';
  const shape = `[${mask.join(',')}]`;
  // attention_bias is [B or 1, H or 1, S, L]; S = 1 is expanded below.
  if (mask.length !== 4) return `has shape ${shape}; attention_bias needs rank 4 [B or 1, heads or 1, S or 1, L]`;
  const ok = (d: Dim, full: Dim) => d === 1 || same(d, full);
  if (!ok(mask[0], query[0]) || !ok(mask[1], heads) || !ok(mask[2], query[1]) || !same(mask[3], keyLength)) return `has shape ${shape}, not [B or 1, ${heads} or 1, S or 1, L]`;
  return undefined;
}

/** Equal known dims (numbers or the same symbol). */
export function same(a: Dim | undefined, b: Dim | undefined): boolean {
  return a !== undefined && a !== null && a === b;
}

/** True if `value` is computed from `target` within a few elementwise steps (the score chain). */
export function reaches(graph: Graph, value: string, target: string, depth = 4): boolean {
  if (value === target) return true;
  const node = producerOf(graph, value, 'Add', 'Div', 'Mul');
  return depth > 0 && node !== undefined && node.inputs.some((v) => reaches(graph, v, target, depth - 1));
}

/**
 * The nodes computing the pattern's Reshape targets that nothing outside the pattern reads
 * (shrunk to a fixpoint: a node stays only if all its readers are in the pattern or stay).
 */
export function privateShapeChains(graph: Graph, pattern: Node[], result: string): Node[] {
  const chain = new Set<Node>();
  const visit = (value: string) => {
    const node = graph.producer(value);
    if (node === undefined || chain.has(node) || !isOp(node, ...SHAPE_CHAIN_OPS) || pattern.includes(node)) return;
    chain.add(node);
    // Shape reads data (a projection, the heads): the chain ends there.
    if (node.opType !== 'Shape') node.inputs.forEach(visit);
  };
  for (const node of pattern) if (isOp(node, 'Reshape')) visit(node.inputs[1]);
  let changed = true;
  while (changed) {
    changed = false;
    for (const node of chain) {
      const inside = (reader: Node) => chain.has(reader) || pattern.includes(reader);
      const leaks = node.outputs.some((o) => o === result || graph.isGraphOutput(o) || subgraphReaders(graph, o).length > 0 || !graph.consumers(o).every(inside));
      if (leaks) {
        chain.delete(node);
        changed = true;
      }
    }
  }
  return [...chain];
}

/** Writes MultiHeadAttention (after an Expand of a [.,.,1,L] mask over S when needed). */
function fuse(model: Model, graph: Graph, match: Match, shapeOf: ShapeOf): void {
  const anchor = match.nodes[0];
  const chain: Node[] = [];
  let bias = match.mask;
  const maskShape = match.mask === undefined ? undefined : shapeOf(match.mask);
  const sequence = shapeOf(match.query)?.[1];
  if (match.mask !== undefined && maskShape?.[2] === 1 && sequence !== 1) {
    // Expand(mask, [1, 1, S, 1]) with S read from the query at run time.
    const constant = (name: string, values: bigint[]): string => {
      const tensor = Tensor.fromArray(graph.uniqueName(name), DataType.INT64, [values.length], BigInt64Array.from(values));
      addConstant(model, graph, tensor, anchor);
      return tensor.name;
    };
    const shape = fusedNode(graph, 'Shape', [match.query]);
    shape.outputs = [graph.uniqueName(`${match.query}_shape`)];
    const length = fusedNode(graph, 'Gather', [shape.outputs[0], constant('attention_seq_axis', [1n])], [attr.int('axis', 0)]);
    length.outputs = [graph.uniqueName(`${match.query}_seq_len`)];
    const target = fusedNode(graph, 'Concat', [constant('attention_ones2', [1n, 1n]), length.outputs[0], constant('attention_one', [1n])], [attr.int('axis', 0)]);
    target.outputs = [graph.uniqueName('attention_bias_shape')];
    const expand = fusedNode(graph, 'Expand', [match.mask, target.outputs[0]]);
    expand.outputs = [graph.uniqueName(`${match.mask}_expanded`)];
    chain.push(shape, length, target, expand);
    bias = expand.outputs[0];
  }
  const inputs = [match.query, match.key, match.value, ...(bias === undefined ? [] : ['', '', bias])];
  chain.push(fusedNode(graph, 'MultiHeadAttention', inputs, [attr.int('num_heads', match.heads), attr.float('scale', match.scale)], 'com.microsoft'));
  replacePattern(graph, match.nodes, chain, match.result);
}
