// .npy/.npz reading and writing, checked two independent ways: against bytes built here by hand
// from the NPY format spec, and against files numpy itself wrote (test/fixtures/npy, made by
// make_fixtures.py there). Also the errors for layouts shrink refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType } from '../src/ir/dtype.js';
import { chunkReader, memoryByteSource } from '../src/eval/byte-source.js';
import { type NpyArray, npyToTensor, parseNpy, readNpyHeader, writeNpy } from '../src/eval/npy.js';
import { listNpz, openNpzEntry, readNpz, writeNpz } from '../src/eval/npz.js';
import { float16ToNumber, tensorNumbers } from '../src/eval/numeric.js';

const FIXTURES = 'test/fixtures/npy';
const fixture = (name: string) => new Uint8Array(fs.readFileSync(path.join(FIXTURES, name)));

/** A .npy file built from the spec: magic, version, LE header length, dict text padded with spaces to a 64-byte boundary, '\n'. */
function handNpy(descr: string, shape: string, data: Uint8Array, options: { version?: 1 | 2 | 3; fortran?: boolean } = {}): Uint8Array {
  const version = options.version ?? 1;
  const dict = `{'descr': '${descr}', 'fortran_order': ${options.fortran ? 'True' : 'False'}, 'shape': ${shape}, }`;
  const fixed = version === 1 ? 10 : 12;
  let text = dict;
  while ((fixed + text.length + 1) % 64 !== 0) text += ' ';
  text += '\n';
  const out = new Uint8Array(fixed + text.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, text.length, true);
  else view.setUint32(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[fixed + i] = text.charCodeAt(i);
  out.set(data, fixed + text.length);
  return out;
}

/** Little-endian bytes of `values` written one by one through a DataView setter. */
function leBytes(width: number, values: (number | bigint)[], set: (v: DataView, at: number, x: never) => void): Uint8Array {
  const out = new Uint8Array(width * values.length);
  const view = new DataView(out.buffer);
  for (const [i, x] of values.entries()) set(view, i * width, x as never);
  return out;
}

test('hand-built .npy files of every supported dtype parse to the right type, dims and values', () => {
  const cases: [string, DataType, number, (number | bigint)[], (v: DataView, at: number, x: never) => void][] = [
    ['<f4', DataType.FLOAT, 4, [1.5, -2, 0.25, 3e6, -0, 7], (v, a, x) => v.setFloat32(a, x, true)],
    ['<f8', DataType.DOUBLE, 8, [1.5, -2, 1e-300, 3e300, -0, Math.PI], (v, a, x) => v.setFloat64(a, x, true)],
    ['|i1', DataType.INT8, 1, [-128, 127, 0, -1, 5, 6], (v, a, x) => v.setInt8(a, x)],
    ['<i2', DataType.INT16, 2, [-32768, 32767, 0, -1, 5, 6], (v, a, x) => v.setInt16(a, x, true)],
    ['<i4', DataType.INT32, 4, [-(2 ** 31), 2 ** 31 - 1, 0, -1, 5, 6], (v, a, x) => v.setInt32(a, x, true)],
    ['<i8', DataType.INT64, 8, [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 5n, 6n], (v, a, x) => v.setBigInt64(a, x, true)],
    ['|u1', DataType.UINT8, 1, [0, 255, 1, 2, 3, 4], (v, a, x) => v.setUint8(a, x)],
    ['<u2', DataType.UINT16, 2, [0, 65535, 1, 2, 3, 4], (v, a, x) => v.setUint16(a, x, true)],
    ['<u4', DataType.UINT32, 4, [0, 2 ** 32 - 1, 1, 2, 3, 4], (v, a, x) => v.setUint32(a, x, true)],
    ['<u8', DataType.UINT64, 8, [0n, 2n ** 64n - 1n, 1n, 2n, 3n, 4n], (v, a, x) => v.setBigUint64(a, x, true)],
    ['|b1', DataType.BOOL, 1, [0, 1, 1, 0, 0, 1], (v, a, x) => v.setUint8(a, x)],
    // float16 bit patterns: 1.0, -2.0, 0.5, 65504 (max), smallest subnormal, +inf
    ['<f2', DataType.FLOAT16, 2, [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00], (v, a, x) => v.setUint16(a, x, true)],
  ];
  for (const [descr, type, width, values, set] of cases) {
    const array = parseNpy(handNpy(descr, '(2, 3)', leBytes(width, values, set)), `${descr}.npy`);
    assert.equal(array.dataType, type, descr);
    assert.deepEqual(array.dims, [2, 3], descr);
    const data = npyToTensor(array, 'x').data();
    assert.deepEqual(Array.from(data as ArrayLike<number | bigint>), values, descr);
  }
  const half = npyToTensor(parseNpy(handNpy('<f2', '(3,)', leBytes(2, [0x3c00, 0x0001, 0x7c00], (v, a, x) => v.setUint16(a, x, true))), 'h'), 'h');
  assert.deepEqual(Array.from(tensorNumbers(half)), [1, 2 ** -24, Infinity]);
});

test('scalar, 1-D, empty, version 2 and 3 headers, and a 1-D array flagged Fortran order', () => {
  const f4 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
  const scalar = parseNpy(handNpy('<f4', '()', f4([2.5])), 's.npy');
  assert.deepEqual([scalar.dims, Array.from(npyToTensor(scalar, 's').data() as Float32Array)], [[], [2.5]]);
  assert.deepEqual(parseNpy(handNpy('<f4', '(3,)', f4([1, 2, 3])), 'v.npy').dims, [3]);
  assert.deepEqual(parseNpy(handNpy('<f4', '(0, 4)', f4([])), 'e.npy').dims, [0, 4]);
  for (const version of [2, 3] as const) {
    const array = parseNpy(handNpy('<f4', '(2,)', f4([7, 8]), { version }), `v${version}.npy`);
    assert.deepEqual(Array.from(npyToTensor(array, 'v').data() as Float32Array), [7, 8]);
  }
  // Fortran and C order are the same bytes when at most one dim exceeds 1.
  assert.deepEqual(parseNpy(handNpy('<f4', '(1, 3)', f4([1, 2, 3]), { fortran: true }), 'f.npy').dims, [1, 3]);
});

test('numpy-written fixtures read back with numpy’s values, and writeNpy reproduces numpy’s bytes exactly', () => {
  const base = [0, 1, -2, 3, -4, 5];
  const expectations: [string, DataType, number[]][] = [
    ['f2', DataType.FLOAT16, base.map((x) => x * 1.5)],
    ['f4', DataType.FLOAT, base.map((x) => x * 1.5)],
    ['f8', DataType.DOUBLE, base.map((x) => x * 1.5)],
    ['i1', DataType.INT8, base],
    ['i2', DataType.INT16, base],
    ['i4', DataType.INT32, base],
    ['i8', DataType.INT64, base],
    ['u1', DataType.UINT8, base.map((x) => Math.abs(x) * 7)],
    ['u2', DataType.UINT16, base.map((x) => Math.abs(x) * 7)],
    ['u4', DataType.UINT32, base.map((x) => Math.abs(x) * 7)],
    ['u8', DataType.UINT64, base.map((x) => Math.abs(x) * 7)],
    ['b1', DataType.BOOL, base.map((x) => (x > 0 ? 1 : 0))],
  ];
  for (const [code, type, values] of expectations) {
    const bytes = fixture(`${code}.npy`);
    const array = parseNpy(bytes, `${code}.npy`);
    assert.equal(array.dataType, type, code);
    assert.deepEqual(array.dims, [2, 3], code);
    assert.deepEqual(Array.from(tensorNumbers(npyToTensor(array, code))), values, code);
    assert.deepEqual(writeNpy(array), bytes, `${code}: writeNpy differs from numpy.save`);
  }
  const i8 = npyToTensor(parseNpy(fixture('i8_extremes.npy'), 'i8'), 'i8').data();
  assert.deepEqual(Array.from(i8 as BigInt64Array), [-(2n ** 63n), 2n ** 53n + 1n, 2n ** 63n - 1n]);
  const u8 = npyToTensor(parseNpy(fixture('u8_extremes.npy'), 'u8'), 'u8').data();
  assert.deepEqual(Array.from(u8 as BigUint64Array), [0n, 2n ** 64n - 1n]);
  const scalar = parseNpy(fixture('scalar_f4.npy'), 'scalar');
  assert.deepEqual([scalar.dims, Array.from(tensorNumbers(npyToTensor(scalar, 's')))], [[], [2.5]]);
  assert.deepEqual(parseNpy(fixture('empty_f4.npy'), 'empty').dims, [0, 3]);
  const rank3 = parseNpy(fixture('rank3_f4.npy'), 'rank3');
  assert.deepEqual(rank3.dims, [2, 3, 4]);
  assert.deepEqual(Array.from(tensorNumbers(npyToTensor(rank3, 'r'))), Array.from({ length: 24 }, (_, i) => i));
  assert.equal(float16ToNumber(0x3e00), 1.5);
});

test('refused layouts and corrupt files give one-line errors naming the file', () => {
  const cases: [Uint8Array, string, RegExp][] = [
    [fixture('fortran_f4.npy'), 'fortran_f4.npy', /^fortran_f4\.npy: array is in Fortran order; save it in C order/],
    [fixture('object.npy'), 'object.npy', /^object\.npy: array holds Python objects \(dtype object\)/],
    [fixture('bigendian_f4.npy'), 'bigendian_f4.npy', /^bigendian_f4\.npy: array is big-endian \('>f4'\); save it little-endian/],
    [fixture('unicode.npy'), 'unicode.npy', /^unicode\.npy: dtype '<U2' is not supported \(supported: f2, f4, f8, i1/],
    [fixture('structured.npy'), 'structured.npy', /^structured\.npy: structured arrays \(record dtypes\) are not supported/],
    [new TextEncoder().encode('PK\x03\x04 not npy at all'), 'zip.npy', /^zip\.npy: not a \.npy file \(bad magic/],
    [fixture('f4.npy').subarray(0, 140), 'short.npy', /^short\.npy: data is truncated: shape \(2, 3\) of float32 needs 24 bytes, file has 12$/],
    [fixture('f4.npy').subarray(0, 50), 'header.npy', /^header\.npy: \.npy header is truncated$/],
    [fixture('f4.npy').subarray(0, 4), 'tiny.npy', /^tiny\.npy: too short for a \.npy file$/],
  ];
  for (const [bytes, name, pattern] of cases) {
    assert.throws(
      () => parseNpy(bytes, name),
      (error: Error) => pattern.test(error.message) && !error.message.includes('\n'),
      name,
    );
  }
});

test('the header reader works on a stream handed out in 3-byte chunks', async () => {
  const bytes = fixture('rank3_f4.npy');
  let at = 0;
  const reader = chunkReader(async () => {
    if (at >= bytes.byteLength) return undefined;
    at += 3;
    return bytes.subarray(at - 3, at);
  }, 'stream.npy');
  const header = await readNpyHeader(reader, 'stream.npy');
  assert.deepEqual([header.dataType, header.dims, header.dataOffset, header.dataLength], [DataType.FLOAT, [2, 3, 4], 128, 96]);
  const data = await reader.read(96);
  assert.deepEqual(Array.from(new Float32Array(data.slice().buffer)), Array.from({ length: 24 }, (_, i) => i));
  await assert.rejects(reader.read(1), /^Error: stream\.npy: data is truncated/);
});

test('.npz archives from numpy.savez and savez_compressed (zip64 local headers) read back', async () => {
  const x = Array.from({ length: 24 }, (_, i) => Math.fround(i / 10));
  for (const name of ['samples_stored.npz', 'samples_deflate.npz']) {
    const arrays = await readNpz(fixture(name), name);
    assert.deepEqual([...arrays.keys()].sort(), ['ids', 'x'], name);
    const xs = arrays.get('x') as NpyArray;
    assert.deepEqual([xs.dataType, xs.dims], [DataType.FLOAT, [4, 2, 3]], name);
    assert.deepEqual(Array.from(tensorNumbers(npyToTensor(xs, 'x'))), x, name);
    const ids = arrays.get('ids') as NpyArray;
    assert.deepEqual([ids.dataType, ids.dims], [DataType.INT64, [4, 2]], name);
    assert.deepEqual(Array.from(tensorNumbers(npyToTensor(ids, 'ids'))), [1, 2, 3, 4, 5, 6, 7, 8], name);
  }
  const entries = await listNpz(memoryByteSource(fixture('samples_deflate.npz')), 'd.npz');
  assert.deepEqual(entries.map((e) => [e.key, e.compression]), [['x', 'deflate'], ['ids', 'deflate']]);
});

test('a deflate member streamed in 100-byte compressed chunks gives the same bytes as a whole read', async () => {
  const bytes = fixture('big_deflate.npz');
  const source = memoryByteSource(bytes);
  const [entry] = await listNpz(source, 'big.npz');
  const whole = writeNpy((await readNpz(bytes, 'big.npz')).get('big') as NpyArray);
  const reader = await openNpzEntry(source, entry, 'big.npz', 100);
  const header = await readNpyHeader(reader, 'big.npz[big]');
  assert.deepEqual(header.dims, [30, 100]);
  const rows: Uint8Array[] = [];
  for (let i = 0; i < 30; i++) rows.push((await reader.read(400)).slice());
  assert.deepEqual(Buffer.concat(rows), Buffer.from(whole.subarray(header.dataOffset)));
  const values = new Float32Array(Buffer.concat(rows).buffer.slice(0));
  assert.equal(values[17], Math.fround(Math.sin(17)));
});

test('writeNpz round-trips stored and compressed archives; a flipped byte fails the CRC check', async () => {
  const arrays: Record<string, NpyArray> = {
    input: { dataType: DataType.FLOAT, dims: [2, 512], data: new Uint8Array(new Float32Array(1024).fill(0.5).buffer) },
    sr: { dataType: DataType.INT64, dims: [], data: new Uint8Array(new BigInt64Array([16000n]).buffer) },
  };
  for (const compress of [false, true]) {
    const bytes = writeNpz(arrays, { compress });
    const back = await readNpz(bytes, 'w.npz');
    for (const [key, array] of Object.entries(arrays)) {
      const read = back.get(key) as NpyArray;
      assert.deepEqual([read.dataType, read.dims, Buffer.from(read.data)], [array.dataType, array.dims, Buffer.from(array.data)], `${key} compress=${compress}`);
    }
    if (!compress) {
      assert.ok(bytes.byteLength > 4096, 'stored archive keeps the raw floats');
      const corrupt = bytes.slice();
      corrupt[300] ^= 0x01; // inside the float data of input.npy
      await assert.rejects(readNpz(corrupt, 'corrupt.npz'), /^Error: corrupt\.npz\[input\]: CRC mismatch; the archive is corrupt$/);
    } else {
      assert.ok(bytes.byteLength < 1024, `compressed archive is small (${bytes.byteLength} bytes)`);
    }
  }
  await assert.rejects(readNpz(fixture('f4.npy'), 'f4.npz'), /^Error: f4\.npz: not an \.npz file \(no zip directory found\)$/);
  const stored = fixture('samples_stored.npz');
  await assert.rejects(readNpz(stored.subarray(0, stored.byteLength - 200), 'cut.npz'), /cut\.npz: /);
});
