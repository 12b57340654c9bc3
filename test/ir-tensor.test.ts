// Every TensorProto storage form decodes to the same raw little-endian bytes, the dtype table has
// the layout the ONNX spec gives each type, and malformed tensors fail with their name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import { allDataTypes, byteLengthOf, DataType, dataTypeInfo } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { densifySparse } from '../src/ir/sparse.js';
import { readModel } from '../src/onnx/model-io.js';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  type TensorProto,
  TensorProtoSchema,
} from '../src/onnx/onnx_pb.js';

type TensorInit = Parameters<typeof create<typeof TensorProtoSchema>>[1];

function decode(init: TensorInit): Tensor {
  return Tensor.fromProto(create(TensorProtoSchema, init), `tensor '${init?.name ?? ''}'`);
}

function bytesOf(view: ArrayBufferView): number[] {
  return [...new Uint8Array(view.buffer, view.byteOffset, view.byteLength)];
}

test('raw_data is kept as a zero-copy view and read as float32', () => {
  const values = new Float32Array([1, -2.5, 3.75, 1e-3]);
  const raw = new Uint8Array(values.buffer);
  const t = decode({ name: 'w', dataType: DataType.FLOAT, dims: [2n, 2n], rawData: raw });
  assert.equal(t.bytes(), raw, 'raw_data should not be copied');
  assert.deepEqual([...t.data()], [...values]);
  assert.deepEqual(t.dims, [2, 2]);
  assert.equal(t.byteLength, 16);
});

test('raw_data at an odd offset is copied once into an aligned array', () => {
  const buffer = new Uint8Array(13);
  buffer.set(new Uint8Array(new Float32Array([7, -8, 9]).buffer), 1);
  const t = decode({ name: 'odd', dataType: DataType.FLOAT, dims: [3n], rawData: buffer.subarray(1) });
  const data = t.data();
  assert.equal(data.byteOffset % 4, 0);
  assert.deepEqual([...data], [7, -8, 9]);
  assert.equal(t.data(), data, 'the aligned copy is cached');
});

test('float_data decodes float32 and complex64 (interleaved real, imaginary)', () => {
  const f = decode({ name: 'f', dataType: DataType.FLOAT, dims: [3n], floatData: [1.5, -2, 3.25] });
  assert.deepEqual(bytesOf(f.bytes()), bytesOf(new Float32Array([1.5, -2, 3.25])));
  assert.deepEqual([...f.data()], [1.5, -2, 3.25]);

  const c = decode({ name: 'c', dataType: DataType.COMPLEX64, dims: [2n], floatData: [1, 2, -3, 4] });
  assert.equal(c.byteLength, 16);
  assert.deepEqual([...c.data()], [1, 2, -3, 4]);
});

// int32_data holds one element per entry for 8- and 16-bit types (fp16/bf16 as bit patterns),
// two per entry for 4-bit types and four per entry for 2-bit types (onnx.proto, TensorProto).
const INT32_DATA_CASES: { type: DataType; dims: bigint[]; int32Data: number[]; bytes: number[]; values?: number[] }[] = [
  { type: DataType.INT8, dims: [3n], int32Data: [-1, 127, -128], bytes: [0xff, 0x7f, 0x80], values: [-1, 127, -128] },
  { type: DataType.UINT8, dims: [3n], int32Data: [0, 200, 255], bytes: [0, 200, 255], values: [0, 200, 255] },
  { type: DataType.INT16, dims: [2n], int32Data: [-2, 300], bytes: [0xfe, 0xff, 0x2c, 0x01], values: [-2, 300] },
  { type: DataType.UINT16, dims: [2n], int32Data: [65535, 1], bytes: [0xff, 0xff, 0x01, 0x00], values: [65535, 1] },
  { type: DataType.INT32, dims: [2n], int32Data: [-70000, 5], bytes: bytesOf(new Int32Array([-70000, 5])), values: [-70000, 5] },
  // float16 1.0 = 0x3c00, -2.0 = 0xc000
  { type: DataType.FLOAT16, dims: [2n], int32Data: [0x3c00, 0xc000], bytes: [0x00, 0x3c, 0x00, 0xc0], values: [0x3c00, 0xc000] },
  // bfloat16 1.0 = 0x3f80, -0.5 = 0xbf00
  { type: DataType.BFLOAT16, dims: [2n], int32Data: [0x3f80, 0xbf00], bytes: [0x80, 0x3f, 0x00, 0xbf], values: [0x3f80, 0xbf00] },
  { type: DataType.BOOL, dims: [4n], int32Data: [1, 0, 1, 1], bytes: [1, 0, 1, 1], values: [1, 0, 1, 1] },
  { type: DataType.FLOAT8E4M3FN, dims: [2n], int32Data: [0x38, 0xb8], bytes: [0x38, 0xb8] },
  // int4 [1, -2, 3]: entry 0 packs 1 (low nibble) and -2 = 0xe (high nibble); entry 1 holds 3.
  { type: DataType.INT4, dims: [3n], int32Data: [0xe1, 0x03], bytes: [0xe1, 0x03] },
  { type: DataType.UINT4, dims: [2n, 2n], int32Data: [0x21, 0xf0], bytes: [0x21, 0xf0] },
  // uint2 [1, 2, 3, 0, 3]: four per entry, lowest bits first: 0b00_11_10_01 = 0x39, then 0x03.
  { type: DataType.UINT2, dims: [5n], int32Data: [0x39, 0x03], bytes: [0x39, 0x03] },
  { type: DataType.INT2, dims: [4n], int32Data: [0xe4], bytes: [0xe4] },
];

for (const c of INT32_DATA_CASES) {
  const name = dataTypeInfo(c.type).name;
  test(`int32_data decodes ${name}`, () => {
    const t = decode({ name: `t_${name}`, dataType: c.type, dims: c.dims, int32Data: c.int32Data });
    assert.deepEqual([...t.bytes()], c.bytes);
    assert.equal(t.byteLength, c.bytes.length);
    if (c.values !== undefined) assert.deepEqual([...t.data()].map(Number), c.values);
  });
}

test('int64_data decodes int64, beyond 2^53 exactly', () => {
  const big = 2n ** 62n + 1n;
  const t = decode({ name: 'i64', dataType: DataType.INT64, dims: [3n], int64Data: [-5n, big, 0n] });
  assert.deepEqual([...t.data()], [-5n, big, 0n]);
  assert.deepEqual(bytesOf(t.bytes()), bytesOf(new BigInt64Array([-5n, big, 0n])));
});

test('uint64_data decodes uint32 (4 bytes each) and uint64 (8 bytes each)', () => {
  const u32 = decode({ name: 'u32', dataType: DataType.UINT32, dims: [2n], uint64Data: [4294967295n, 7n] });
  assert.equal(u32.byteLength, 8);
  assert.deepEqual([...u32.data()], [4294967295, 7]);
  const max = 2n ** 64n - 1n;
  const u64 = decode({ name: 'u64', dataType: DataType.UINT64, dims: [2n], uint64Data: [max, 3n] });
  assert.equal(u64.byteLength, 16);
  assert.deepEqual([...u64.data()], [max, 3n]);
});

test('double_data decodes float64 and complex128', () => {
  const d = decode({ name: 'd', dataType: DataType.DOUBLE, dims: [2n], doubleData: [0.1, -1e300] });
  assert.deepEqual([...d.data()], [0.1, -1e300]);
  assert.deepEqual(bytesOf(d.bytes()), bytesOf(new Float64Array([0.1, -1e300])));
  const c = decode({ name: 'c128', dataType: DataType.COMPLEX128, dims: [1n], doubleData: [2.5, -0.25] });
  assert.equal(c.byteLength, 16);
  assert.deepEqual([...c.data()], [2.5, -0.25]);
});

test('string_data decodes strings and has no raw bytes', () => {
  const utf8 = new TextEncoder();
  const t = decode({ name: 's', dataType: DataType.STRING, dims: [2n], stringData: [utf8.encode('héllo'), utf8.encode('')] });
  assert.deepEqual(
    t.strings().map((s) => new TextDecoder().decode(s)),
    ['héllo', ''],
  );
  assert.equal(t.byteLength, 6);
  assert.throws(() => t.bytes(), /tensor 's'.*no raw bytes/);
});

test('sparse tensors densify from linear [NNZ] and coordinate [NNZ, rank] indices', () => {
  const values = create(TensorProtoSchema, { dataType: DataType.FLOAT, dims: [2n], floatData: [5, 7] });
  const linear = create(SparseTensorProtoSchema, {
    dims: [2n, 3n],
    values,
    indices: create(TensorProtoSchema, { dataType: DataType.INT64, dims: [2n], int64Data: [1n, 5n] }),
  });
  const coordinate = create(SparseTensorProtoSchema, {
    dims: [2n, 3n],
    values,
    indices: create(TensorProtoSchema, { dataType: DataType.INT64, dims: [2n, 2n], int64Data: [0n, 1n, 1n, 2n] }),
  });
  for (const sparse of [linear, coordinate]) {
    const dense = densifySparse(sparse, 'sparse', 'dense');
    assert.equal(dense.name, 'dense');
    assert.deepEqual(dense.dims, [2, 3]);
    assert.deepEqual([...dense.data()], [0, 5, 0, 0, 0, 7]);
  }
  const outside = create(SparseTensorProtoSchema, {
    dims: [2n, 3n],
    values,
    indices: create(TensorProtoSchema, { dataType: DataType.INT64, dims: [2n], int64Data: [1n, 6n] }),
  });
  assert.throws(() => densifySparse(outside, "Constant node 'k'", 'k'), /Constant node 'k': sparse index 6 is outside dims \[2,3\]/);
});

// The dtype table, one row per ONNX type: name, bits per element, bytes of raw_data per element
// (fractions for packed types), and the typed field that holds it when raw_data is absent.
const LAYOUT: [DataType, string, number, string][] = [
  [DataType.FLOAT, 'float32', 32, 'float_data'],
  [DataType.UINT8, 'uint8', 8, 'int32_data'],
  [DataType.INT8, 'int8', 8, 'int32_data'],
  [DataType.UINT16, 'uint16', 16, 'int32_data'],
  [DataType.INT16, 'int16', 16, 'int32_data'],
  [DataType.INT32, 'int32', 32, 'int32_data'],
  [DataType.INT64, 'int64', 64, 'int64_data'],
  [DataType.STRING, 'string', 0, 'string_data'],
  [DataType.BOOL, 'bool', 8, 'int32_data'],
  [DataType.FLOAT16, 'float16', 16, 'int32_data'],
  [DataType.DOUBLE, 'float64', 64, 'double_data'],
  [DataType.UINT32, 'uint32', 32, 'uint64_data'],
  [DataType.UINT64, 'uint64', 64, 'uint64_data'],
  [DataType.COMPLEX64, 'complex64', 64, 'float_data'],
  [DataType.COMPLEX128, 'complex128', 128, 'double_data'],
  [DataType.BFLOAT16, 'bfloat16', 16, 'int32_data'],
  [DataType.FLOAT8E4M3FN, 'float8e4m3fn', 8, 'int32_data'],
  [DataType.FLOAT8E4M3FNUZ, 'float8e4m3fnuz', 8, 'int32_data'],
  [DataType.FLOAT8E5M2, 'float8e5m2', 8, 'int32_data'],
  [DataType.FLOAT8E5M2FNUZ, 'float8e5m2fnuz', 8, 'int32_data'],
  [DataType.UINT4, 'uint4', 4, 'int32_data'],
  [DataType.INT4, 'int4', 4, 'int32_data'],
  [DataType.FLOAT4E2M1, 'float4e2m1', 4, 'int32_data'],
  [DataType.FLOAT8E8M0, 'float8e8m0', 8, 'int32_data'],
  [DataType.UINT2, 'uint2', 2, 'int32_data'],
  [DataType.INT2, 'int2', 2, 'int32_data'],
];

test('dtype table: every ONNX type has the spec layout', () => {
  assert.equal(allDataTypes().length, LAYOUT.length, 'the table has a row for each of the 26 types');
  for (const [type, name, bits, field] of LAYOUT) {
    const info = dataTypeInfo(type);
    assert.equal(info.name, name, `type ${type}`);
    assert.equal(info.bits, bits, name);
    assert.equal(info.protoField, field, name);
    if (bits >= 8) {
      assert.equal(byteLengthOf(type, 1), bits / 8, `${name}: bytes per element`);
      assert.equal(byteLengthOf(type, 10), (10 * bits) / 8, `${name}: bytes per 10 elements`);
      // The typed array's element width divides the element size (complex types hold pairs).
      assert.equal((bits / 8) % (info.array?.BYTES_PER_ELEMENT ?? 1), 0, `${name}: typed array width`);
    } else if (bits > 0) {
      assert.equal(info.array, Uint8Array, `${name}: packed bytes`);
      assert.equal(byteLengthOf(type, 8 / bits), 1, `${name}: ${8 / bits} elements per byte`);
    }
  }
});

test('byteLengthOf rounds sub-byte types up to whole bytes', () => {
  assert.equal(byteLengthOf(DataType.INT4, 0), 0);
  assert.equal(byteLengthOf(DataType.INT4, 1), 1);
  assert.equal(byteLengthOf(DataType.UINT4, 3), 2);
  assert.equal(byteLengthOf(DataType.FLOAT4E2M1, 5), 3);
  assert.equal(byteLengthOf(DataType.UINT2, 1), 1);
  assert.equal(byteLengthOf(DataType.INT2, 5), 2);
  assert.equal(byteLengthOf(DataType.INT2, 8), 2);
  assert.equal(byteLengthOf(DataType.INT2, 9), 3);
});

test('data length not matching dims names the tensor', () => {
  assert.throws(
    () => decode({ name: 'short', dataType: DataType.FLOAT, dims: [2n, 2n], floatData: [1, 2, 3] }),
    /tensor 'short': float_data holds 3 values, dims need 4/,
  );
  assert.throws(
    () => decode({ name: 'rawshort', dataType: DataType.FLOAT, dims: [3n], rawData: new Uint8Array(8) }),
    /tensor 'rawshort': holds 8 bytes, dims \[3\] of float32 need 12/,
  );
  assert.throws(
    () => decode({ name: 'nibbles', dataType: DataType.INT4, dims: [5n], int32Data: [1, 2] }),
    /tensor 'nibbles': int32_data holds 2 values, dims need 3/,
  );
  assert.throws(
    () => decode({ name: 'strs', dataType: DataType.STRING, dims: [3n], stringData: [new Uint8Array(1)] }),
    /tensor 'strs': string_data holds 1 strings, dims need 3/,
  );
});

test('an unknown data type names the tensor', () => {
  assert.throws(() => decode({ name: 'odd', dataType: 99, dims: [1n], rawData: new Uint8Array(4) }), /tensor 'odd': unknown tensor data type 99/);
});

test('dims over 2^53 elements fail with a clear message', () => {
  const huge = 2n ** 30n;
  assert.throws(
    () => decode({ name: 'huge', dataType: DataType.FLOAT, dims: [huge, huge, huge] }),
    /tensor 'huge': dims \[1073741824,1073741824,1073741824\] describe 1\.24e\+27 elements, more than any model can hold/,
  );
  assert.throws(() => decode({ name: 'neg', dataType: DataType.FLOAT, dims: [-1n] }), /tensor 'neg': dim -1 is out of range/);
  assert.throws(() => decode({ name: 'wide', dataType: DataType.FLOAT, dims: [2n ** 60n] }), /tensor 'wide': dim 1152921504606846976 is out of range/);
});

test('a malformed initializer in a model file names the file and the initializer', () => {
  const bad: TensorProto = create(TensorProtoSchema, { name: 'conv.weight', dataType: DataType.FLOAT, dims: [4n], floatData: [1, 2] });
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })],
    graph: create(GraphProtoSchema, { name: 'g', initializer: [bad] }),
  });
  assert.throws(
    () => readModel(toBinary(ModelProtoSchema, model), { source: 'net.onnx' }),
    /net\.onnx: initializer 'conv\.weight': float_data holds 2 values, dims need 4/,
  );
});

test('tensors made in code write raw_data and decode back to the same values', () => {
  const t = Tensor.fromArray('made', DataType.INT16, [2, 2], new Int16Array([1, -1, 300, -300]));
  const proto = t.toProto();
  assert.equal(proto.name, 'made');
  assert.deepEqual(proto.dims, [2n, 2n]);
  const back = Tensor.fromProto(proto, 'made');
  assert.deepEqual([...back.data()], [1, -1, 300, -300]);
  assert.throws(() => Tensor.fromArray('bad', DataType.FLOAT, [3], new Float32Array(2)), /tensor 'bad': got 8 bytes, dims \[3\] of float32 need 12/);
});
