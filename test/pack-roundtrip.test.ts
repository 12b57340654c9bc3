// The pack gives back the exact ONNX bytes: on a model that puts tensor bytes everywhere they can
// be and exercises every layout, on the real models of REAL_MODELS.md and the Fashion-MNIST MLP,
// and on every model of the ONNX conformance suite; through the whole-file decoder and the
// streaming one fed in uneven chunks. Packs of the real models must be smaller than gzip -9.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'fflate';
import { mulberry32 } from '../src/kernels/random.js';
import { packOnnx } from '../src/methods/pack/pack.js';
import { unpack, unpackStream, unpackStreamToBytes } from '../src/onnx/pack-decode.js';
import { scanTensorPayloads } from '../src/onnx/tensor-payloads.js';
import { codebookLayout, planesLayout, sparseLayout } from '../src/methods/pack/layouts.js';
import { ByteReader, Layout } from '../src/onnx/pack-format.js';
import { readLayout, rebuildPayload, streamLengths } from '../src/onnx/pack-layouts.js';
import { decodeStream } from '../src/onnx/pack-decode.js';
import { LIBONNX_TESTDATA, listTestModels } from './helpers/onnx-test-data.js';
import { externalDataModel, ZOO_EXPECTED, zooModel } from './helpers/pack-models.js';
import { REAL_MODELS } from './helpers/real-models.js';

const MLP = 'models/fashion-mnist/mlp.onnx';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The pack in chunks of 1 to `max` bytes (seeded), as a network delivers it. */
async function* chunked(bytes: Uint8Array, seed: number, max: number): AsyncGenerator<Uint8Array> {
  const next = mulberry32(seed);
  for (let p = 0; p < bytes.length; ) {
    const n = 1 + Math.floor(next() * max);
    yield bytes.slice(p, p + n);
    p += n;
  }
}

test('every place a tensor can sit and every layout: found, coded as expected, byte-identical back', async () => {
  const onnx = zooModel();
  const scan = scanTensorPayloads(onnx, 128);
  assert.deepEqual([...new Set(scan.payloads.map((p) => p.name))].sort(), Object.keys(ZOO_EXPECTED).sort(), 'payloads found (the 16-byte tensor stays in the skeleton)');
  assert.deepEqual(
    Object.fromEntries(scan.payloads.map((p) => [p.name, p.elementBytes])),
    { dense: 4, clustered: 4, pruned: 4, pruned_clustered: 4, float_data: 4, double_data: 8, int8: 1, int64: 8, half: 2, bf16: 2, odd_float_bytes: 1, sparse_init: 4, 'sparse_init.indices': 8, branch_constant: 4 },
  );
  const { pack, report } = packOnnx(onnx);
  assert.equal(report.verified, true);
  // The Constant appears in both If branches: the second is a copy of the first.
  assert.deepEqual(report.perTensor.filter((t) => t.name === 'branch_constant').map((t) => t.layout), ['planes', 'copy']);
  const layouts = Object.fromEntries(report.perTensor.filter((t) => t.layout !== 'copy').map((t) => [t.name, t.layout]));
  assert.deepEqual(layouts, ZOO_EXPECTED);
  const sizes = Object.fromEntries(report.perTensor.map((t) => [t.name, t]));
  // 16 centroids: 4 bits a code at most; 90% zeros: well under a third.
  assert.ok(sizes.clustered.packed < sizes.clustered.bytes / 7, `clustered ${sizes.clustered.packed} of ${sizes.clustered.bytes}`);
  assert.ok(sizes.pruned.packed < sizes.pruned.bytes / 3, `pruned ${sizes.pruned.packed} of ${sizes.pruned.bytes}`);
  assert.ok(sizes.pruned_clustered.packed < sizes.pruned_clustered.bytes / 10, `pruned+clustered ${sizes.pruned_clustered.packed} of ${sizes.pruned_clustered.bytes}`);
  assert.ok(sameBytes(unpack(pack), onnx));
  for (const max of [1, 7, 4096]) assert.ok(sameBytes(await unpackStreamToBytes(chunked(pack, max, max)), onnx), `streamed in chunks of up to ${max} bytes`);
  assert.ok(sameBytes(await unpackStreamToBytes(new Blob([pack as Uint8Array<ArrayBuffer>]).stream()), onnx), 'from a ReadableStream');
});

test('each layout and its inverse, sparse values as planes and as a codebook, float widths 2, 4 and 8', () => {
  const next = mulberry32(11);
  for (const eb of [2, 4, 8]) {
    const count = 3000;
    const bytes = new Uint8Array(count * eb);
    // 95% zeros; the rest one of 5 patterns (codebook) or noise (planes).
    for (const distinct of [5, 0]) {
      for (let i = 0; i < count; i++) {
        if (next() < 0.95) continue;
        const pick = Math.floor(next() * distinct);
        for (let k = 0; k < eb; k++) bytes[i * eb + k] = distinct > 0 ? (pick * 37 + k * 11 + 1) & 0xff : Math.floor(next() * 256);
      }
      for (const layout of [planesLayout(bytes, eb, true), planesLayout(bytes, eb, false), codebookLayout(bytes, eb), sparseLayout(bytes, eb, true)]) {
        if (layout === undefined) {
          assert.equal(distinct, 0, 'a codebook exists for few distinct values');
          continue;
        }
        const reader = new ByteReader(Uint8Array.from(layout.descriptor), 'descriptor');
        const node = readLayout(reader, count, eb);
        assert.ok(reader.done);
        const streams = layout.streams.map((s, j) => decodeStream(s, s.coded, `stream ${j}`));
        assert.deepEqual(streams.map((s) => s.length).filter((_, j) => streamLengths(node, count, eb)[j] >= 0), streamLengths(node, count, eb).filter((n) => n >= 0));
        assert.ok(sameBytes(rebuildPayload(node, streams, count, eb), bytes), `${layout.name} eb ${eb} distinct ${distinct}`);
        if (layout.name === 'sparse') assert.equal(layout.descriptor[layout.descriptor.length - 2], distinct > 0 ? Layout.CODEBOOK : Layout.PLANES, 'sparse values in the smaller nested layout');
      }
      bytes.fill(0);
    }
  }
});

test('packs held in Node Buffers at odd offsets (as readFileSync and file streams give them) decode byte-identical', async () => {
  // A Buffer's slice() is a view, not a copy: a decoder that copied with it to align a codebook
  // read the whole file's memory instead (PP-OCRv4 rec's pack failed in `shrink unpack`).
  const onnx = zooModel();
  const { pack } = packOnnx(onnx);
  for (const shift of [1, 2, 3]) {
    const held = Buffer.alloc(pack.length + shift + 1);
    held.set(pack, shift);
    const inBuffer = held.subarray(shift, shift + pack.length);
    assert.ok(sameBytes(unpack(inBuffer), onnx), `whole file at offset ${shift}`);
    async function* buffers(): AsyncGenerator<Uint8Array> {
      for (let p = 0; p < pack.length; p += 777) yield inBuffer.subarray(p, p + 777);
    }
    assert.ok(sameBytes(await unpackStreamToBytes(buffers()), onnx), `streamed Buffers at offset ${shift}`);
  }
  // The encoder reads tensors out of Buffers too.
  const file = Buffer.alloc(onnx.length + 1);
  file.set(onnx, 1);
  const again = packOnnx(file.subarray(1));
  assert.ok(sameBytes(unpack(again.pack), onnx), 'packed from a Buffer at an odd offset');
});

test('the streaming decoder emits a tensor as soon as its bytes are in, before the pack has arrived', async () => {
  const onnx = zooModel();
  const { pack } = packOnnx(onnx);
  let delivered = 0;
  async function* slowly(): AsyncGenerator<Uint8Array> {
    for (let p = 0; p < pack.length; p += 1000) {
      delivered = Math.min(pack.length, p + 1000);
      yield pack.subarray(p, p + 1000);
    }
  }
  const firstOutputAt: number[] = [];
  for await (const chunk of unpackStream(slowly())) if (chunk.length > 0 && firstOutputAt.length < 3) firstOutputAt.push(delivered);
  assert.ok(firstOutputAt[0] < pack.length / 2, `first output after ${firstOutputAt[0]} of ${pack.length} bytes`);
});

test('a model with external data is refused in one line that says why', () => {
  assert.throws(() => packOnnx(externalDataModel(), { source: 'm.onnx' }), /^Error: m\.onnx: 1 tensor\(s\) keep their data in external files \(first: 'w'\); a pack holds self-contained models only/);
});

test('real models and the Fashion-MNIST MLP: byte-identical, smaller than gzip -9', async (t) => {
  for (const file of [...REAL_MODELS.map((m) => m.file), MLP]) {
    const onnx = new Uint8Array(readFileSync(file));
    const { pack, report } = packOnnx(onnx, { source: file });
    assert.ok(sameBytes(unpack(pack), onnx), `${file}: unpack`);
    assert.ok(sameBytes(await unpackStreamToBytes(chunked(pack, 3, 65536)), onnx), `${file}: streamed`);
    const gzip = gzipSync(onnx, { level: 9 }).length;
    assert.ok(pack.length < gzip, `${file}: pack ${pack.length} B vs gzip -9 ${gzip} B`);
    const exponents = report.kinds.float_exponents!;
    assert.ok(exponents.packed < exponents.bytes / 2.5, `${file}: exponent planes ${exponents.packed} of ${exponents.bytes}`);
    t.diagnostic(`${file}: ${onnx.length} -> ${pack.length} B (${(onnx.length / pack.length).toFixed(3)}x; gzip -9 ${(onnx.length / gzip).toFixed(3)}x), ${report.tensors} tensors`);
  }
});

test('every model of the ONNX conformance suite unpacks byte-identical', { skip: listTestModels(LIBONNX_TESTDATA, ['node']).length === 0 && 'libonnx-testdata is not installed' }, (t) => {
  const started = performance.now();
  const cases = listTestModels(LIBONNX_TESTDATA, ['node', 'pytorch-converted', 'pytorch-operator', 'simple']);
  assert.ok(cases.length > 1000, `${cases.length} models found`);
  let tensors = 0;
  for (const c of cases) {
    const onnx = new Uint8Array(readFileSync(c.modelFile));
    // A low threshold cuts out many small tensors too, so the suite exercises the tensor records.
    const { pack, report } = packOnnx(onnx, { source: c.id, minTensorBytes: 16 });
    tensors += report.tensors;
    assert.ok(sameBytes(unpack(pack), onnx), c.id);
  }
  assert.ok(tensors > 50, `${tensors} tensors coded`);
  t.diagnostic(`${cases.length} models, ${tensors} tensors, ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
