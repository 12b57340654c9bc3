// The transformers.js target's naming, planning and config.json rules (src/pipeline/
// transformers-js.ts), and the CLI on single files: base names kept (an encoder and a decoder in
// one folder do not overwrite each other), external data written as `<file>_data` and recorded in
// config.json, and the flags that do not go with --target refused. The end-to-end load through
// transformers.js itself is test/transformers-js.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { mulberry32 } from '../src/kernels/random.js';
import { quantizeGatherRows } from '../src/methods/quantize/gather-int8-rows.js';
import { quantizeBnb4, quantizeMatMulsBnb4 } from '../src/methods/quantize/matmul-bnb4.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import {
  missingConfigDtypes,
  parseTransformersJsDtypes,
  planTransformersJs,
  transformersJsDataFileName,
  transformersJsFileName,
  transformersJsInputs,
  updateTransformersJsConfig,
} from '../src/pipeline/transformers-js.js';
import { REPO_ROOT, spawnShrink } from './helpers/cli.js';

const MLP = join(REPO_ROOT, 'models/fashion-mnist/mlp.onnx');

test('names: the suffixes transformers.js 4.3.2 requests, the base name kept, external data as <file>_data', () => {
  assert.equal(transformersJsFileName('model', 'fp32'), 'model.onnx');
  assert.equal(transformersJsFileName('model', 'q8'), 'model_quantized.onnx');
  assert.equal(transformersJsFileName('decoder_model_merged', 'q4'), 'decoder_model_merged_q4.onnx');
  assert.equal(transformersJsFileName('encoder_model', 'q4f16'), 'encoder_model_q4f16.onnx');
  assert.equal(transformersJsDataFileName('model_q4.onnx'), 'model_q4.onnx_data');
  assert.deepEqual(parseTransformersJsDtypes('fp16, q8,q4,q4f16,q4'), ['fp16', 'q8', 'q4', 'q4f16']);
  assert.throws(() => parseTransformersJsDtypes('q1'), /q1 .* not built/);
  assert.throws(() => parseTransformersJsDtypes('q3'), /unknown transformers.js dtype 'q3'/);
  assert.throws(() => parseTransformersJsDtypes('auto'), /chosen by transformers.js at load time/);
});

test('plan: dtype variants already in a folder are not inputs; every input keeps its name; fp32 in place is left alone', () => {
  const { inputs, variants } = transformersJsInputs(['encoder_model.onnx', 'decoder_model_merged.onnx', 'decoder_model_merged_q4.onnx', 'model_fp16.onnx', 'notes.txt']);
  assert.deepEqual(inputs, ['decoder_model_merged.onnx', 'encoder_model.onnx', 'model_fp16.onnx']);
  assert.deepEqual(variants, [{ file: 'decoder_model_merged_q4.onnx', of: 'decoder_model_merged.onnx', dtype: 'q4' }]);
  const plan = planTransformersJs(['decoder_model_merged.onnx', 'encoder_model.onnx'], ['fp32', 'q4'], { sameFolder: true });
  assert.deepEqual(
    plan.outputs.map((o) => o.output),
    ['decoder_model_merged_q4.onnx', 'encoder_model_q4.onnx'],
  );
  assert.deepEqual(
    plan.unchanged.map((o) => o.output),
    ['decoder_model_merged.onnx', 'encoder_model.onnx'],
  );
  assert.equal(planTransformersJs(['model.onnx'], ['fp32'], { sameFolder: false }).outputs[0].output, 'model.onnx');
});

test('config.json: external data recorded per file; a global setting becomes a map when it would be wrong for a file', () => {
  const plain = { model_type: 'bert' };
  assert.equal(updateTransformersJsConfig(plain, [{ file: 'model_q4.onnx', chunks: 0 }], []), undefined);
  assert.deepEqual(updateTransformersJsConfig(plain, [{ file: 'model_q4.onnx', chunks: 1 }], [])?.['transformers.js_config'], { use_external_data_format: { 'model_q4.onnx': 1 } });
  const global = { 'transformers.js_config': { use_external_data_format: true, dtype: 'q4' } };
  // model_q4.onnx has no entry: transformers.js then fetches no data for it.
  assert.deepEqual(updateTransformersJsConfig(global, [{ file: 'model_q4.onnx', chunks: 0, base: 'model' }], [{ file: 'model.onnx', chunks: 1 }])?.['transformers.js_config'], {
    use_external_data_format: { 'model.onnx': 1 },
    dtype: 'q4',
  });
  // A per-base entry ("model": 1) would make transformers.js fetch data for model_q4.onnx: the file gets its own entry.
  const perBase = { 'transformers.js_config': { use_external_data_format: { model: 1 } } };
  assert.deepEqual(updateTransformersJsConfig(perBase, [{ file: 'model_q4.onnx', chunks: 0, base: 'model' }], [])?.['transformers.js_config'], { use_external_data_format: { model: 1, 'model_q4.onnx': 0 } });
  assert.deepEqual(missingConfigDtypes(global, ['model'], (f) => f === 'model.onnx'), ["transformers.js_config.dtype is 'q4' but the folder has no model_q4.onnx"]);
});

test('CLI, one file at a time: encoder and decoder keep their names in one folder; --external-data writes <file>_data and config.json records it; wrong flags refused', async () => {
  const work = mkdtempSync(join(tmpdir(), 'shrink-tjs-target-'));
  try {
    const onnx = join(work, 'onnx');
    mkdirSync(onnx);
    copyFileSync(MLP, join(onnx, 'encoder_model.onnx'));
    copyFileSync(MLP, join(onnx, 'decoder_model_merged.onnx'));
    writeFileSync(join(work, 'config.json'), JSON.stringify({ model_type: 'test' }));
    const run = (file: string, ...extra: string[]) =>
      spawnShrink(['quantize', join(onnx, file), '-o', `${onnx}/`, '--target', 'transformers.js', '--dtype', 'q4', '--samples', '2', '--dims', 'N=1', '--json', ...extra]);
    const encoder = run('encoder_model.onnx');
    assert.equal(encoder.status, 0, encoder.stderr);
    const decoder = run('decoder_model_merged.onnx', '--external-data');
    assert.equal(decoder.status, 0, decoder.stderr);
    assert.ok(existsSync(join(onnx, 'encoder_model_q4.onnx')));
    assert.ok(!existsSync(join(onnx, 'encoder_model_q4.onnx_data')));
    assert.ok(existsSync(join(onnx, 'decoder_model_merged_q4.onnx')));
    assert.ok(existsSync(join(onnx, 'decoder_model_merged_q4.onnx_data')));
    assert.ok(!existsSync(join(onnx, 'model_q4.onnx')));
    const report = JSON.parse(decoder.stdout) as { outputs: { data_file: string }[]; config: string };
    assert.equal(report.outputs[0].data_file, join(onnx, 'decoder_model_merged_q4.onnx_data'));
    assert.equal(report.config, join(work, 'config.json'));
    assert.deepEqual(JSON.parse(readFileSync(join(work, 'config.json'), 'utf8')), {
      model_type: 'test',
      'transformers.js_config': { use_external_data_format: { 'decoder_model_merged_q4.onnx': 1 } },
    });
    // The data file is the one the model names, and onnxruntime loads the pair.
    const model = loadModel(join(onnx, 'decoder_model_merged_q4.onnx'));
    const locations = new Set(model.graph.initializers.filter((t) => t.isExternal).map((t) => t.external?.location));
    assert.deepEqual([...locations], ['decoder_model_merged_q4.onnx_data']);
    const session = await ModelSession.create(nodeOrt, join(onnx, 'decoder_model_merged_q4.onnx'), { graphOptimization: 'basic' });
    await session.release();

    // Written again without --external-data: inline, the old data file gone, config.json says so.
    const again = run('decoder_model_merged.onnx');
    assert.equal(again.status, 0, again.stderr);
    assert.ok(!existsSync(join(onnx, 'decoder_model_merged_q4.onnx_data')));
    assert.deepEqual(JSON.parse(readFileSync(join(work, 'config.json'), 'utf8'))['transformers.js_config'], { use_external_data_format: { 'decoder_model_merged_q4.onnx': 0 } });

    const refused = (args: string[], pattern: RegExp) => {
      const result = spawnShrink(['quantize', join(onnx, 'encoder_model.onnx'), ...args]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr.trim(), pattern);
    };
    refused(['-o', `${onnx}/`, '--target', 'transformers.js', '--method', 'int4'], /--method does not go with --target transformers.js/);
    refused(['-o', `${onnx}/`, '--target', 'transformers.js', '--dtype', 'q1f16'], /--dtype: q1f16 .* not built/);
    refused(['-o', join(onnx, 'x.onnx'), '--target', 'transformers.js'], /writes several files into a folder/);
    refused(['-o', `${onnx}/`, '--dtype', 'q4'], /--dtype goes with --target transformers.js/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('int8-weight into a folder keeps the input name and is not named as a transformers.js dtype', () => {
  const work = mkdtempSync(join(tmpdir(), 'shrink-w8-'));
  try {
    const result = spawnShrink(['quantize', MLP, '-o', `${work}/`, '--method', 'int8-weight', '--samples', '1', '--dims', 'N=1', '--json']);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).output, join(work, 'mlp_int8-weight.onnx'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** Y = A @ W with W [K, N] an initializer, A [M, K]. */
function matmulModel(w: Float32Array, K: number, N: number, M: number): Model {
  const b = new GraphBuilder();
  const a = b.input('A', DataType.FLOAT, [M, K]);
  const weight = b.tensor(Tensor.fromArray('W', DataType.FLOAT, [K, N], w));
  b.node('MatMul', [a, weight], [], { outputs: ['Y'], name: 'mm' });
  b.output('Y', DataType.FLOAT, [M, N]);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

async function runY(model: Model, a: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  try {
    const out = await session.run({ A: new nodeOrt.Tensor('float32', a, dims) });
    return out.Y.data as Float32Array;
  } finally {
    await session.release();
  }
}

test('bnb4: MatMulBnb4 in onnxruntime computes A @ the NF4 weights shrink decodes (layout: [N, K] flattened, first code in the high nibble)', async () => {
  const [K, N, M] = [96, 24, 3];
  const random = mulberry32(5);
  const w = Float32Array.from({ length: K * N }, () => (random() - 0.5) * 0.2);
  const a = Float32Array.from({ length: M * K }, () => random() - 0.5);
  const model = matmulModel(w, K, N, M);
  const report = quantizeMatMulsBnb4(model, { blockSize: 64 });
  assert.equal(report.stats.quantized, 1);
  assert.deepEqual(model.graph.nodes.map((n) => `${n.domain}:${n.opType}`), ['com.microsoft:MatMulBnb4']);
  const { decoded } = quantizeBnb4(w, K, N, 64);
  const expected = new Float32Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) expected[m * N + n] += a[m * K + k] * decoded[k * N + n];
  const actual = await runY(model, a, [M, K]);
  let error = 0;
  for (let i = 0; i < expected.length; i++) error = Math.max(error, Math.abs(actual[i] - expected[i]));
  assert.ok(error < 1e-4, `onnxruntime vs decoded NF4: max abs ${error}`);
  assert.ok(report.tensors[0].sqnrDb > 15, `NF4 SQNR ${report.tensors[0].sqnrDb}`);
});

test('embeddings as int8 rows: Gather, Cast, Mul in standard ops, within half a step of the table', async () => {
  const [V, D] = [50, 32];
  const random = mulberry32(9);
  const table = Float32Array.from({ length: V * D }, () => random() - 0.5);
  const b = new GraphBuilder();
  const ids = b.input('ids', DataType.INT64, [4]);
  b.node('Gather', [b.tensor(Tensor.fromArray('E', DataType.FLOAT, [V, D], table)), ids], [], { outputs: ['Y'], name: 'embed' });
  b.output('Y', DataType.FLOAT, [4, D]);
  const model = buildModel(b.graph, [{ domain: '', version: 17 }]);
  const report = quantizeGatherRows(model);
  assert.equal(report.stats.quantized, 1);
  assert.deepEqual(model.graph.nodes.map((n) => n.opType).sort(), ['Cast', 'Gather', 'Gather', 'Mul']);
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  const picked = [0n, 7n, 49n, 7n];
  const out = (await session.run({ ids: new nodeOrt.Tensor('int64', BigInt64Array.from(picked), [4]) })).Y.data as Float32Array;
  await session.release();
  for (const [row, id] of picked.entries()) {
    const values = table.subarray(Number(id) * D, (Number(id) + 1) * D);
    const step = Math.max(...values.map(Math.abs)) / 127;
    for (let j = 0; j < D; j++) assert.ok(Math.abs(out[row * D + j] - values[j]) <= step / 2 + 1e-7, `row ${id}, ${j}`);
  }
});
