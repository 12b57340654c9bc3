// Sample sources feeding real models in onnxruntime-node: ONNX test-data folders (checked against
// their reference outputs), .npy/.npz files, JSON, generated inputs, and the one-line errors for
// data that does not fit the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { type ModelSignature, checkSample, modelSignature } from '../src/eval/match-inputs.js';
import { writeNpy } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { CHUNK_BYTES, type ByteSource, memoryByteSource } from '../src/eval/byte-source.js';
import { npySamples, npzSamples } from '../src/eval/sample-arrays.js';
import { GENERATED_DATA_WARNING, generatedSamples } from '../src/eval/sample-generate.js';
import { type Sample, type SampleSource, checkedSamples, inBatches, jsonSamples, memoryFileTree, sampleFeeds, testDataSamples } from '../src/eval/samples.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { folderFileTree, openSampleFile } from '../src/node/sample-files.js';
import { ModelSession, fromOrtTensor } from '../src/runtime/session.js';
import { allClose } from './helpers/compare.js';
import { CLS, DET, VAD_V5 } from './helpers/real-models.js';

const TEST_ADD = '/usr/share/libonnx-testdata/data/node/test_add';

async function collect(source: AsyncIterable<Sample>): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of source) samples.push(sample);
  return samples;
}

async function runAll(session: ModelSession, source: AsyncIterable<Sample>): Promise<Record<string, Tensor>[]> {
  const results: Record<string, Tensor>[] = [];
  for await (const sample of source) {
    const outputs = await session.run(sampleFeeds(nodeOrt, sample));
    results.push(Object.fromEntries(Object.entries(outputs).map(([name, t]) => [name, fromOrtTensor(t, name)])));
  }
  return results;
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-samples-'));
}

/** The one-line error a promise or function rejects with. */
async function errorOf(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    const message = (error as Error).message;
    assert.ok(!message.includes('\n'), `not one line: ${message}`);
    return message;
  }
  assert.fail('expected an error');
}

const f32Bytes = (values: ArrayLike<number>) => new Uint8Array(Float32Array.from(values).buffer);

test('an ONNX test-data folder feeds test_add in onnxruntime and matches output_0.pb', async () => {
  const model = loadModel(`${TEST_ADD}/model.onnx`);
  const signature = modelSignature(model);
  const source = await openSampleFile(TEST_ADD, signature);
  assert.deepEqual([source.inputs, source.count], [['x', 'y'], 1]);
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  const [sample] = await collect(checkedSamples(source, signature.inputs));
  const sum = fromOrtTensor((await session.run(sampleFeeds(nodeOrt, sample))).sum, 'sum');
  const expected = sample.expected?.sum as Tensor;
  assert.deepEqual(expected.dims, [3, 4, 5]);
  const comparison = allClose(sum, expected);
  assert.ok(comparison.ok, comparison.detail);
  // The reference is x + y, computed here independently of onnxruntime.
  const x = sample.inputs.x.data() as Float32Array;
  const y = sample.inputs.y.data() as Float32Array;
  assert.deepEqual(Array.from(expected.data() as Float32Array), Array.from(x, (v, i) => Math.fround(v + y[i])));
  await session.release();

  // Several data sets come in numeric order (2 before 10), and a lone data-set folder works too.
  const tree = folderFileTree(TEST_ADD);
  const files: Record<string, Uint8Array> = {};
  for (const set of ['test_data_set_10', 'test_data_set_2']) {
    for (const file of ['input_0.pb', 'input_1.pb', 'output_0.pb']) files[`${set}/${file}`] = await tree.read(`test_data_set_0/${file}`);
  }
  const many = await collect(await testDataSamples(memoryFileTree('mem', files), signature));
  assert.deepEqual(many.map((s) => s.where), ['mem/test_data_set_2', 'mem/test_data_set_10']);
  const single = await openSampleFile(`${TEST_ADD}/test_data_set_0`, signature);
  assert.deepEqual(Object.keys((await collect(single))[0].inputs), ['x', 'y']);
});

test('generated inputs for PP-OCRv4 det resolve the symbolic dims, run in onnxruntime and repeat by seed', async () => {
  const model = loadModel(DET);
  const signature = modelSignature(model);
  const dims = { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 64, 'p2o.DynamicDimension.2': 96 };
  const source = generatedSamples(signature.inputs, { count: 2, seed: 3, range: [-1, 1], dims });
  assert.equal(source.warning, GENERATED_DATA_WARNING);
  assert.match(source.warning ?? '', /random numbers, a weak stand-in for real data/);
  const samples = await collect(checkedSamples(source, signature.inputs));
  const x = samples[0].inputs.x;
  assert.deepEqual([x.dataType, x.dims], [DataType.FLOAT, [1, 3, 64, 96]]);
  const values = x.data() as Float32Array;
  assert.ok(Math.min(...values) >= -1 && Math.max(...values) < 1 && Math.min(...values) < -0.99 && Math.max(...values) > 0.99);
  const again = await collect(generatedSamples(signature.inputs, { count: 2, seed: 3, range: [-1, 1], dims }));
  assert.deepEqual(Buffer.from(again[1].inputs.x.bytes()), Buffer.from(samples[1].inputs.x.bytes()));
  const other = await collect(generatedSamples(signature.inputs, { count: 1, seed: 4, range: [-1, 1], dims }));
  assert.notDeepEqual(Buffer.from(other[0].inputs.x.bytes()), Buffer.from(samples[0].inputs.x.bytes()));

  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  const [out] = await runAll(session, source);
  const map = out['sigmoid_0.tmp_0'];
  assert.deepEqual(map.dims, [1, 1, 64, 96]);
  const probabilities = map.data() as Float32Array;
  assert.ok(probabilities.every((p) => p >= 0 && p <= 1), 'a probability map');
  await session.release();

  const missing = await errorOf(() => generatedSamples(signature.inputs, { dims: { 'p2o.DynamicDimension.0': 1 } }));
  assert.equal(
    missing,
    `generated samples: input 'x' (float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]) dim 2 has no size; give one with dims {"p2o.DynamicDimension.1": N}`,
  );
});

test('generated inputs for Silero VAD v5: unnamed dims by input[axis], int64 scalar, per-input range', async () => {
  const model = loadModel(VAD_V5);
  const signature = modelSignature(model);
  const source = generatedSamples(signature.inputs, {
    count: 1,
    dims: { 'input[0]': 1, 'input[1]': 512, 'state[1]': 1 },
    ranges: { sr: [16000, 16000], state: [0, 0] },
  });
  const [sample] = await collect(checkedSamples(source, signature.inputs));
  assert.deepEqual(Array.from(sample.inputs.sr.data() as BigInt64Array), [16000n]);
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  const [out] = await runAll(session, [sample] as unknown as AsyncIterable<Sample>);
  assert.deepEqual(out.output.dims, [1, 1]);
  await session.release();
});

test('JSON samples take their types from the model: float inputs for test_add, int64 scalar for Silero', async () => {
  const signature = modelSignature(loadModel(`${TEST_ADD}/model.onnx`));
  const x = Array.from({ length: 60 }, (_, i) => i / 8);
  const json = JSON.stringify([
    { x: { dims: [3, 4, 5], data: x }, y: { dims: [3, 4, 5], data: x.map((v) => -2 * v) } },
    { x: { data: [[[...Array(5).fill(1)], ...Array(3).fill(Array(5).fill(2))], ...Array(2).fill(Array(4).fill(Array(5).fill(3)))] }, y: { dims: [3, 4, 5], data: Array(60).fill(0.5) } },
  ]);
  const source = jsonSamples(json, signature.inputs, 'data.json');
  assert.deepEqual([source.count, source.description], [2, 'data.json (JSON, 2 samples)']);
  const session = await ModelSession.create(nodeOrt, `${TEST_ADD}/model.onnx`, { threads: 1 });
  const outs = await runAll(session, checkedSamples(source, signature.inputs));
  assert.deepEqual(Array.from(outs[0].sum.data() as Float32Array), x.map((v) => Math.fround(v + -2 * v)));
  const second = outs[1].sum.data() as Float32Array;
  assert.deepEqual([second[0], second[5], second[20], second[59]], [1.5, 2.5, 3.5, 3.5]);
  await session.release();

  const vad = modelSignature(loadModel(VAD_V5));
  const [sample] = await collect(
    jsonSamples([{ input: { dims: [1, 512], data: Array(512).fill(0.01) }, state: { dims: [2, 1, 128], data: Array(256).fill(0) }, sr: { dims: [], data: '16000' } }], vad.inputs, 'vad.json'),
  );
  assert.deepEqual([sample.inputs.sr.dataType, sample.inputs.sr.dims, Array.from(sample.inputs.sr.data() as BigInt64Array)], [DataType.INT64, [], [16000n]]);
  checkSample(sample.inputs, vad.inputs, 'vad.json sample 0');
});

test('an .npz of stacked Silero states and a .npy batch for the OCR classifier stream samples into onnxruntime', async () => {
  const dir = tempDir();
  try {
    const model = loadModel(VAD_V5);
    const signature = modelSignature(model);
    const frames = 3;
    const audio = Float32Array.from({ length: frames * 512 }, (_, i) => 0.3 * Math.sin(i / 9));
    const npz = path.join(dir, 'vad.npz');
    fs.writeFileSync(
      npz,
      writeNpz(
        {
          input: { dataType: DataType.FLOAT, dims: [frames, 1, 512], data: f32Bytes(audio) },
          state: { dataType: DataType.FLOAT, dims: [frames, 2, 1, 128], data: f32Bytes(new Float32Array(frames * 256)) },
          sr: { dataType: DataType.INT64, dims: [], data: new Uint8Array(new BigInt64Array([16000n]).buffer) },
        },
        { compress: true },
      ),
    );
    const source = await openSampleFile(npz, signature);
    assert.deepEqual([source.count, [...source.inputs].sort()], [3, ['input', 'sr', 'state']]);
    const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
    const outs = await runAll(session, checkedSamples(source, signature.inputs));
    // Each sample gives what the frame fed by hand gives.
    for (let i = 0; i < frames; i++) {
      const inputs = {
        input: Tensor.fromArray('input', DataType.FLOAT, [1, 512], audio.slice(i * 512, (i + 1) * 512)),
        state: Tensor.fromArray('state', DataType.FLOAT, [2, 1, 128], new Float32Array(256)),
        sr: Tensor.fromArray('sr', DataType.INT64, [], new BigInt64Array([16000n])),
      };
      const [direct] = await runAll(session, [{ index: i, where: 'direct', inputs }] as unknown as AsyncIterable<Sample>);
      assert.equal((outs[i].output.data() as Float32Array)[0], (direct.output.data() as Float32Array)[0]);
    }
    const probabilities = outs.map((o) => (o.output.data() as Float32Array)[0]);
    assert.ok(probabilities.every((p) => p >= 0 && p <= 1), `speech probabilities ${probabilities}`);
    const frame1 = (await collect(source))[1].inputs.input;
    assert.deepEqual([frame1.dims, (frame1.data() as Float32Array)[0]], [[1, 512], audio[512]]);
    const batches = await collect((async function* () {
      for await (const batch of inBatches(source, 2)) yield { index: batch.length, where: '', inputs: {} } as Sample;
    })());
    assert.deepEqual(batches.map((b) => b.index), [2, 1]);
    await session.release();
    await source.close?.();

    // A .npy whose rank equals the input's: axis 0 is the model's batch axis, one row per sample.
    const cls = loadModel(CLS);
    const clsSignature = modelSignature(cls);
    const npy = path.join(dir, 'crops.npy');
    const image = Float32Array.from({ length: 2 * 3 * 48 * 192 }, (_, i) => ((i * 7919) % 255) / 255);
    fs.writeFileSync(npy, writeNpy({ dataType: DataType.FLOAT, dims: [2, 3, 48, 192], data: f32Bytes(image) }));
    const crops = await openSampleFile(npy, clsSignature);
    const clsSession = await ModelSession.create(nodeOrt, cls, { threads: 1 });
    const results = await runAll(clsSession, checkedSamples(crops, clsSignature.inputs));
    assert.equal(results.length, 2);
    for (const result of results) {
      const p = result['softmax_0.tmp_0'];
      assert.deepEqual(p.dims, [1, 2]);
      const [a, b] = p.data() as Float32Array;
      assert.ok(Math.abs(a + b - 1) < 1e-5, `softmax sums to ${a + b}`);
    }
    await clsSession.release();
    await crops.close?.();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('data that does not fit the model: one-line errors naming the input, what was expected and what came', async () => {
  const dir = tempDir();
  try {
    const cls: ModelSignature = modelSignature(loadModel(CLS));
    const vad: ModelSignature = modelSignature(loadModel(VAD_V5));
    const first = async (source: SampleSource, signature: ModelSignature) => collect(checkedSamples(source, signature.inputs));
    const write = (name: string, bytes: Uint8Array) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes);
      return file;
    };

    const f64 = write('f64.npy', writeNpy({ dataType: DataType.DOUBLE, dims: [1, 3, 48, 192], data: new Uint8Array(8 * 3 * 48 * 192) }));
    assert.equal(
      await errorOf(async () => first(await openSampleFile(f64, cls), cls)),
      `${f64} sample 0: input 'x' has the wrong type: expected float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2], got float64[1,3,48,192]`,
    );
    const channels = write('c.npy', writeNpy({ dataType: DataType.FLOAT, dims: [1, 1, 48, 192], data: new Uint8Array(4 * 48 * 192) }));
    assert.equal(
      await errorOf(async () => first(await openSampleFile(channels, cls), cls)),
      `${channels} sample 0: input 'x' dim 1 is 1, expected 3: expected float32[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2], got float32[1,1,48,192]`,
    );
    const flat = write('flat.npy', writeNpy({ dataType: DataType.FLOAT, dims: [2, 8], data: new Uint8Array(64) }));
    assert.match(await errorOf(() => openSampleFile(flat, cls)), /flat\.npy: array of shape \(2, 8\) fits neither input 'x' \(float32\[p2o\.DynamicDimension\.0,3,/);
    assert.match(
      await errorOf(() => first(jsonSamples([{ x: { dims: [3, 48, 192], data: Array(3 * 48 * 192).fill(0) } }], cls.inputs, 'r.json'), cls)),
      /^r\.json sample 0: input 'x' has rank 3, expected rank 4: expected float32\[.*\], got float32\[3,48,192\]$/,
    );

    // Missing inputs: in an archive (caught when it is opened) and in a JSON sample.
    const partial = write('partial.npz', writeNpz({ input: { dataType: DataType.FLOAT, dims: [1, 1, 512], data: new Uint8Array(2048) } }));
    assert.equal(
      await errorOf(() => openSampleFile(partial, vad)),
      `${partial}: no array for input 'state' (model expects float32[2,?,128]); the archive holds 'input'`,
    );
    assert.equal(
      await errorOf(() => first(jsonSamples([{ input: { dims: [1, 512], data: Array(512).fill(0) }, sr: { data: 16000 } }], vad.inputs, 'v.json'), vad)),
      `v.json sample 0: input 'state' is missing (model expects float32[2,?,128]; the sample has 'input', 'sr')`,
    );
    assert.equal(
      await errorOf(() => first(jsonSamples([{ img: { data: [1] } }], cls.inputs, 'n.json'), cls)),
      `n.json sample 0: 'img' is not an input of the model (inputs: 'x')`,
    );
    assert.equal(await errorOf(() => openSampleFile(f64, vad)), `${f64}: a .npy file holds one array, but the model has 3 inputs ('input', 'state', 'sr'); use an .npz with one array per input`);
    const uneven = write('uneven.npz', writeNpz({
      input: { dataType: DataType.FLOAT, dims: [2, 1, 512], data: new Uint8Array(4096) },
      state: { dataType: DataType.FLOAT, dims: [3, 2, 1, 128], data: new Uint8Array(3 * 1024) },
      sr: { dataType: DataType.INT64, dims: [], data: new Uint8Array(8) },
    }));
    assert.equal(await errorOf(() => openSampleFile(uneven, vad)), `${uneven}: arrays disagree on the number of samples: 'input' has 2, 'state' has 3`);

    // Corrupt files.
    const good = writeNpy({ dataType: DataType.FLOAT, dims: [1, 3, 48, 192], data: new Uint8Array(4 * 3 * 48 * 192) });
    const cut = write('cut.npy', good.subarray(0, good.byteLength - 100));
    assert.equal(await errorOf(() => openSampleFile(cut, cls)), `${cut}: data is truncated: shape (1, 3, 48, 192) of float32 needs 110592 bytes, file has 110492`);
    const junk = write('junk.npy', new TextEncoder().encode('not a numpy file, just text'));
    assert.equal(await errorOf(() => openSampleFile(junk, cls)), `${junk}: not a .npy file (bad magic; expected "\\x93NUMPY")`);
    assert.match(await errorOf(() => jsonSamples('[{"x": ', cls.inputs, 'bad.json')), /^bad\.json: not valid JSON/);
    assert.match(
      await errorOf(() => first(jsonSamples([{ sr: { dims: [], data: 1.5 } }], vad.inputs, 'sr.json'), vad)),
      /^sr\.json sample 0 input 'sr': element 0 \(1\.5\) is not an integer for int64$/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('array files stream: reads stay within one chunk, and a corrupt .npz member fails its CRC at the end', async () => {
  const cls = modelSignature(loadModel(CLS));
  const perSample = 3 * 48 * 192;
  const count = 12; // 12 x 110,592 bytes: 1.3 MB, more than one read chunk
  const values = Float32Array.from({ length: count * perSample }, (_, i) => (i % 1000) / 1000);
  const file = writeNpy({ dataType: DataType.FLOAT, dims: [count, 1, 3, 48, 192], data: f32Bytes(values) });
  let largestRead = 0;
  let bytesRead = 0;
  const memory = memoryByteSource(file);
  const counting: ByteSource = {
    size: memory.size,
    read: async (offset, length) => {
      largestRead = Math.max(largestRead, length);
      bytesRead += length;
      return memory.read(offset, length);
    },
  };
  const source = await npySamples(counting, 'big.npy', cls.inputs);
  bytesRead = 0;
  let index = 0;
  for await (const sample of checkedSamples(source, cls.inputs)) {
    const x = sample.inputs.x.data() as Float32Array;
    assert.deepEqual([x.length, x[0], x[perSample - 1]], [perSample, values[index * perSample], values[(index + 1) * perSample - 1]]);
    index++;
  }
  assert.equal(index, count);
  assert.ok(largestRead <= CHUNK_BYTES, `largest read ${largestRead}`);
  assert.equal(bytesRead, file.byteLength, 'each byte read once per pass');

  const vad = modelSignature(loadModel(VAD_V5));
  const archive = writeNpz({
    input: { dataType: DataType.FLOAT, dims: [2, 1, 512], data: f32Bytes(new Float32Array(1024).fill(0.25)) },
    state: { dataType: DataType.FLOAT, dims: [2, 2, 1, 128], data: new Uint8Array(2 * 1024) },
    sr: { dataType: DataType.INT64, dims: [], data: new Uint8Array(new BigInt64Array([16000n]).buffer) },
  });
  archive[300] ^= 0x40; // inside input.npy's float data (stored, not compressed)
  const corrupt = await npzSamples(memoryByteSource(archive), 'corrupt.npz', vad.inputs);
  assert.equal(await errorOf(() => collect(corrupt)), 'corrupt.npz[input]: CRC mismatch; the archive is corrupt');
});
