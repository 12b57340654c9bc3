// Transformer encoder fusions: a 2-layer BERT-style encoder (hidden 64, 4 heads, symbolic batch and
// sequence) built node for node the way torch.onnx.export writes it at opset 17 (Linear as MatMul +
// Add(bias, .), view() targets from Shape -> Gather -> Unsqueeze -> Concat, k transposed twice,
// GELU as its Erf pattern, HF's extended mask (1 - m) * finfo.min). Attention becomes
// com.microsoft MultiHeadAttention, residual + LayerNormalization SkipLayerNormalization, and the
// outputs match the unfused model in onnxruntime-node and -web; patterns that differ stay, with a warning.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { validateGraph } from '../src/ir/validate.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt } from '../src/node/ort-web.js';
import { fuseAttention } from '../src/optimize/fuse-attention.js';
import { fuseGelu } from '../src/optimize/fuse-gelu.js';
import { fuseLayerNorm } from '../src/optimize/fuse-layernorm.js';
import { fuseSkipLayerNorm } from '../src/optimize/fuse-skip-layernorm.js';
import { inferShapes } from '../src/optimize/shape-inference/index.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import { type PassReport, runPass } from '../src/pipeline/pass.js';
import type { OrtModule, OrtTensor } from '../src/runtime/ort-types.js';
import { ModelSession } from '../src/runtime/session.js';
import { maxAbsDiff } from './helpers/run-model.js';

const FUSION_TOLERANCE = 1e-5;
const HIDDEN = 64;
const HEADS = 4;
const FFN = 128;
const BATCH = 2;
const SEQ = 7;

type MaskKind = 'none' | 'extended' | 'square';

interface EncoderOptions {
  mask: MaskKind;
  /** Scale the scores per head (a [1,H,1,1] tensor) instead of by 1/sqrt(head_size). */
  perHeadScale?: boolean;
}

/** The encoder as torch.onnx.export writes BertModel-like layers at opset 17. */
function encoder(options: EncoderOptions): Model {
  const b = new GraphBuilder();
  const next = mulberry32(42);
  const weight = (name: string, dims: number[], scale: number) =>
    b.initializer(name, DataType.FLOAT, dims, Float32Array.from({ length: dims.reduce((x, y) => x * y, 1) }, () => (next() * 2 - 1) * scale));
  const ints = (name: string, values: number[]) => b.constant(Tensor.fromArray(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  const scalarInt = (name: string, v: number) => b.constant(Tensor.fromArray(name, DataType.INT64, [], new BigInt64Array([BigInt(v)])));
  const scalar = (name: string, v: number) => b.constant(Tensor.fromArray(name, DataType.FLOAT, [], new Float32Array([v])));
  const dim = (x: string, i: number) => b.node('Unsqueeze', [b.node('Gather', [b.node('Shape', [x]), scalarInt('idx', i)], [attr.int('axis', 0)]), ints('axes', [0])]);
  const linear = (x: string, prefix: string, inF: number, outF: number) => b.node('Add', [weight(`${prefix}.bias`, [outF], 0.1), b.node('MatMul', [x, weight(`${prefix}.weight`, [inF, outF], 1 / Math.sqrt(inF))])]);
  const layerNorm = (x: string, prefix: string) =>
    b.node('LayerNormalization', [x, weight(`${prefix}.weight`, [HIDDEN], 1), weight(`${prefix}.bias`, [HIDDEN], 0.1)], [attr.int('axis', -1), attr.float('epsilon', 1e-12)]);

  let x = b.input('hidden_states', DataType.FLOAT, ['batch', 'sequence', HIDDEN]);
  let mask: string | undefined;
  if (options.mask === 'extended') {
    const m = b.input('attention_mask', DataType.INT64, ['batch', 'sequence']);
    const extended = b.node('Cast', [b.node('Unsqueeze', [b.node('Unsqueeze', [m, ints('axes', [1])]), ints('axes', [2])])], [attr.int('to', DataType.FLOAT)]);
    mask = b.node('Mul', [b.node('Sub', [scalar('one', 1), extended]), scalar('finfo_min', -3.4028234663852886e38)]);
  } else if (options.mask === 'square') {
    mask = b.input('scores_bias', DataType.FLOAT, ['sequence', 'sequence']);
  }
  const headSize = HIDDEN / HEADS;
  for (let layer = 0; layer < 2; layer++) {
    const p = `encoder.layer.${layer}`;
    const heads = (projection: string) => {
      const target = b.node('Concat', [dim(projection, 0), dim(projection, 1), ints('heads', [HEADS]), ints('head_size', [headSize])], [attr.int('axis', 0)]);
      return b.node('Reshape', [projection, target]);
    };
    const q = b.node('Transpose', [heads(linear(x, `${p}.attention.self.query`, HIDDEN, HIDDEN))], [attr.ints('perm', [0n, 2n, 1n, 3n])]);
    const k = b.node('Transpose', [heads(linear(x, `${p}.attention.self.key`, HIDDEN, HIDDEN))], [attr.ints('perm', [0n, 2n, 1n, 3n])]);
    const v = b.node('Transpose', [heads(linear(x, `${p}.attention.self.value`, HIDDEN, HIDDEN))], [attr.ints('perm', [0n, 2n, 1n, 3n])]);
    let scores = b.node('MatMul', [q, b.node('Transpose', [k], [attr.ints('perm', [0n, 1n, 3n, 2n])])]);
    scores = options.perHeadScale === true ? b.node('Mul', [scores, weight(`${p}.head_scale`, [1, HEADS, 1, 1], 0.5)]) : b.node('Div', [scores, scalar('sqrt_head_size', Math.sqrt(headSize))]);
    if (mask !== undefined) scores = b.node('Add', [scores, mask]);
    const probabilities = b.node('Softmax', [scores], [attr.int('axis', -1)]);
    const context = b.node('Transpose', [b.node('MatMul', [probabilities, v])], [attr.ints('perm', [0n, 2n, 1n, 3n])]);
    const merged = b.node('Reshape', [context, b.node('Concat', [dim(context, 0), dim(context, 1), ints('all_head_size', [HIDDEN])], [attr.int('axis', 0)])]);
    const attended = layerNorm(b.node('Add', [linear(merged, `${p}.attention.output.dense`, HIDDEN, HIDDEN), x]), `${p}.attention.output.LayerNorm`);
    const h = linear(attended, `${p}.intermediate.dense`, HIDDEN, FFN);
    const gelu = b.node('Mul', [b.node('Mul', [h, b.node('Add', [b.node('Erf', [b.node('Div', [h, scalar('sqrt2', Math.SQRT2)])]), scalar('one', 1)])]), scalar('half', 0.5)]);
    x = layerNorm(b.node('Add', [linear(gelu, `${p}.output.dense`, FFN, HIDDEN), attended]), `${p}.output.LayerNorm`);
  }
  b.output(b.node('Identity', [x], [], { outputs: ['last_hidden_state'] })[0], DataType.FLOAT, ['batch', 'sequence', HIDDEN]);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

function feedsFor(kind: MaskKind): (ort: OrtModule) => Record<string, OrtTensor> {
  const next = mulberry32(7);
  const hidden = Float32Array.from({ length: BATCH * SEQ * HIDDEN }, () => next() * 2 - 1);
  // Second sequence padded: its last three tokens are masked out.
  const mask = BigInt64Array.from({ length: BATCH * SEQ }, (_, i) => (i >= SEQ && i % SEQ >= SEQ - 3 ? 0n : 1n));
  const square = Float32Array.from({ length: SEQ * SEQ }, (_, i) => (i % SEQ > Math.floor(i / SEQ) ? -1e4 : 0));
  return (ort) => ({
    hidden_states: new ort.Tensor('float32', hidden, [BATCH, SEQ, HIDDEN]),
    ...(kind === 'extended' ? { attention_mask: new ort.Tensor('int64', mask, [BATCH, SEQ]) } : {}),
    ...(kind === 'square' ? { scores_bias: new ort.Tensor('float32', square, [SEQ, SEQ]) } : {}),
  });
}

async function run(ort: OrtModule, model: Model, kind: MaskKind): Promise<Float32Array> {
  const session = await ModelSession.create(ort, model, { threads: 1, ...(ort === nodeOrt ? {} : { executionProviders: ['wasm'] }) });
  try {
    return (await session.run(feedsFor(kind)(ort))).last_hidden_state.data as Float32Array;
  } finally {
    await session.release();
  }
}

async function fuseAll(model: Model): Promise<Record<string, PassReport>> {
  const reports: Record<string, PassReport> = {};
  for (const pass of [fuseLayerNorm, fuseAttention, fuseSkipLayerNorm, fuseGelu] as const) {
    reports[pass.name] = await runPass(pass as typeof fuseAttention, model, {}, { ort: nodeOrt });
    const errors = validateGraph(model).filter((i) => i.severity === 'error');
    assert.deepEqual(errors, [], `${pass.name} left an invalid graph`);
  }
  return reports;
}

function count(model: Model, opType: string): number {
  return model.graph.nodes.filter((n) => n.opType === opType).length;
}

for (const kind of ['none', 'extended'] as const) {
  test(`transformer encoder (mask: ${kind}): MultiHeadAttention, SkipLayerNormalization and Gelu fused, outputs within 1e-5 in node and web`, async () => {
    const before = await run(nodeOrt, encoder({ mask: kind }), kind);
    const model = encoder({ mask: kind });
    const nodesBefore = totalNodes(model.graph);
    const reports = await fuseAll(model);
    assert.equal(reports['fuse-attention'].stats.fused, 2);
    assert.equal(reports['fuse-attention'].stats.masked, kind === 'none' ? 0 : 2);
    assert.equal(reports['fuse-skip-layernorm'].stats.fused, 4);
    assert.equal(reports['fuse-skip-layernorm'].stats.withBias, 4, 'every residual folds its output projection bias');
    assert.equal(count(model, 'MultiHeadAttention'), 2);
    assert.equal(count(model, 'SkipLayerNormalization'), 4);
    assert.equal(count(model, 'Gelu'), 2);
    for (const gone of ['Softmax', 'Transpose', 'Reshape', 'LayerNormalization', 'Erf']) assert.equal(count(model, gone), 0, `${gone} left`);
    // The Q/K/V projections stay MatMul + Add; a [B,1,1,L] mask is expanded over S per layer.
    assert.equal(count(model, 'Expand'), kind === 'none' ? 0 : 2);
    const attention = model.graph.nodes.find((n) => n.opType === 'MultiHeadAttention');
    assert.equal(attention?.attrInt('num_heads'), HEADS);
    assert.ok(Math.abs((attention?.attrFloat('scale') ?? 0) - 0.25) < 1e-7);
    assert.equal(reports['fuse-attention'].warnings.length, 0, JSON.stringify(reports['fuse-attention'].warnings));
    // Shape inference follows the contrib ops: attention and skip-norm outputs have the hidden
    // states' shape, Gelu the feed-forward width.
    const inferred = inferShapes(model, { inputShapes: { hidden_states: [BATCH, SEQ, HIDDEN], ...(kind === 'extended' ? { attention_mask: [BATCH, SEQ] } : {}) } });
    assert.deepEqual(inferred.unknown, []);
    for (const node of model.graph.nodes.filter((n) => n.domain === 'com.microsoft')) {
      assert.deepEqual(inferred.main.get(node.outputs[0])?.shape, [BATCH, SEQ, node.opType === 'Gelu' ? FFN : HIDDEN], `${node.opType} '${node.name}'`);
    }
    assert.deepEqual(inferred.main.get('last_hidden_state')?.shape, [BATCH, SEQ, HIDDEN]);
    const nodeDiff = maxAbsDiff(before, await run(nodeOrt, model, kind));
    const webDiff = maxAbsDiff(before, await run(await loadWebOrt(), model, kind));
    assert.ok(nodeDiff <= FUSION_TOLERANCE, `onnxruntime-node: max abs diff ${nodeDiff}`);
    assert.ok(webDiff <= FUSION_TOLERANCE, `onnxruntime-web: max abs diff ${webDiff}`);
    console.log(`encoder (mask ${kind}): ${nodesBefore} -> ${totalNodes(model.graph)} nodes; diff node ${nodeDiff.toExponential(2)}, web ${webDiff.toExponential(2)}`);
  });
}

test('transformer encoder: a [S,S] mask and a per-head scale are left alone with a warning', async () => {
  for (const [options, why] of [
    [{ mask: 'square' }, /mask 'scores_bias' has shape \[sequence,sequence\]; attention_bias needs rank 4/],
    [{ mask: 'none', perHeadScale: true }, /scales the scores by something other than a scalar constant/],
  ] as const) {
    const before = await run(nodeOrt, encoder(options), options.mask);
    const model = encoder(options);
    const reports = await fuseAll(model);
    assert.equal(reports['fuse-attention'].stats.fused, 0);
    assert.equal(count(model, 'Softmax'), 2);
    const warnings = reports['fuse-attention'].warnings;
    assert.equal(warnings.length, 2, JSON.stringify(warnings));
    assert.ok(warnings.every((w) => w.code === 'not-fused' && why.test(w.message)), JSON.stringify(warnings));
    // The rest of the encoder still fuses, and still computes the same.
    assert.equal(count(model, 'SkipLayerNormalization'), 4);
    const diff = maxAbsDiff(before, await run(nodeOrt, model, options.mask));
    assert.ok(diff <= FUSION_TOLERANCE, `max abs diff ${diff}`);
  }
});
