// A model over 2 GiB with external data, written straight as protobuf and raw bytes (no shrink
// code writes it), with a float64 reference for its outputs. For the CLI tests of eval and bench
// on such models (test/large-model-eval-bench.test.ts).
//
//   h1 = x · W1      x [1, K], W1 [K, K]   \  W1 and W2 (2.15 GB) live in big.onnx.data,
//   h  = h1 · W2     W2 [K, K]             /  4096-aligned
//   z  = h · V       V [K, J], inline in the .onnx file; outputs h and z
//
// W_i[r][c] = a_i(r) · b_i(c) with a, b in {1/8 ... 8/8}: every weight is exact in float32, a row is
// one of 8 scaled copies of b_i (so 2 GB are written at memory speed), and the reference is closed
// form: h = (x·a1)(b1·a2) b2. The candidate is the same model with one element of V changed by
// DELTA; it shares big.onnx.data, so it costs one small file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { writeNpy } from '../../src/eval/npy.js';
import { DataType } from '../../src/ir/dtype.js';
import { makeValueInfo } from '../../src/ir/value-info.js';
import { ModelProtoSchema, type TensorProto, TensorProto_DataLocation, TensorProtoSchema } from '../../src/onnx/onnx_pb.js';

/** Rows and columns of W1 and W2: 2 x 16400² floats = 2,151,680,000 bytes, over protobuf's 2 GiB. */
export const K = 16400;
/** Columns of V (and of the output z). */
export const J = 16;
export const WEIGHT_BYTES = 2 * K * K * 4;
const ALIGN = 4096;
/** Where W2 starts in the data file. */
const W2_OFFSET = Math.ceil((K * K * 4) / ALIGN) * ALIGN;
export const DATA_BYTES = W2_OFFSET + K * K * 4;
/** The element of V the candidate changes, and by how much (a multiple of 1/64, so exact). */
export const CHANGED = { row: 12345, column: 5, delta: 256 };

const a = (i: number, r: number) => (((r * 7 + i) % 8) + 1) / 8;
const b = (i: number, c: number) => (((c * 5 + 3 * i) % 8) + 1) / 8;
const v = (r: number, j: number) => (((r * 11 + j * 7) % 13) + 1) / 64;
/** Sample s of the input x. */
export const xValue = (s: number, r: number) => (((r * 3 + s * 5) % 16) + 1) / 16;

export interface BigModelFiles {
  model: string;
  candidate: string;
  data: string;
  /** Samples for --data: x as float32 [samples, K]. */
  samples: string;
}

/** Writes big.onnx, big.onnx.data, candidate.onnx and x.npy (`sampleCount` samples) into `folder`. */
export function writeBigModel(folder: string, sampleCount: number): BigModelFiles {
  const files: BigModelFiles = {
    model: path.join(folder, 'big.onnx'),
    candidate: path.join(folder, 'candidate.onnx'),
    data: path.join(folder, 'big.onnx.data'),
    samples: path.join(folder, 'x.npy'),
  };
  writeData(files.data);
  fs.writeFileSync(files.model, modelBytes(false));
  fs.writeFileSync(files.candidate, modelBytes(true));
  const x = Float32Array.from({ length: sampleCount * K }, (_, i) => xValue(Math.floor(i / K), i % K));
  fs.writeFileSync(files.samples, writeNpy({ dataType: DataType.FLOAT, dims: [sampleCount, K], data: new Uint8Array(x.buffer) }));
  return files;
}

function writeData(file: string): void {
  const fd = fs.openSync(file, 'w');
  try {
    const rowsPerChunk = 256;
    const chunk = new Float32Array(rowsPerChunk * K);
    for (const [i, offset] of [[1, 0], [2, W2_OFFSET]] as const) {
      // The 8 possible rows of W_i: (k/8) · b_i.
      const rows = Array.from({ length: 8 }, (_, k) => Float32Array.from({ length: K }, (_, c) => ((k + 1) / 8) * b(i, c)));
      let position = offset;
      for (let r0 = 0; r0 < K; r0 += rowsPerChunk) {
        const count = Math.min(rowsPerChunk, K - r0);
        for (let r = 0; r < count; r++) chunk.set(rows[a(i, r0 + r) * 8 - 1]!, r * K);
        const bytes = new Uint8Array(chunk.buffer, 0, count * K * 4);
        let done = 0;
        while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
        position += bytes.byteLength;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

function modelBytes(candidate: boolean): Uint8Array {
  const external = (name: string, offset: number): TensorProto =>
    create(TensorProtoSchema, {
      name,
      dataType: DataType.FLOAT,
      dims: [BigInt(K), BigInt(K)],
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: 'big.onnx.data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(K * K * 4) },
      ],
    });
  const values = new Float32Array(K * J);
  for (let r = 0; r < K; r++) for (let j = 0; j < J; j++) values[r * J + j] = v(r, j);
  if (candidate) values[CHANGED.row * J + CHANGED.column] += CHANGED.delta;
  const V = create(TensorProtoSchema, { name: 'V', dataType: DataType.FLOAT, dims: [BigInt(K), BigInt(J)], rawData: new Uint8Array(values.buffer) });
  const proto = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'shrink test',
    opsetImport: [{ domain: '', version: 17n }],
    graph: {
      name: 'big',
      node: [
        { opType: 'MatMul', name: 'mm1', input: ['x', 'W1'], output: ['h1'] },
        { opType: 'MatMul', name: 'mm2', input: ['h1', 'W2'], output: ['h'] },
        { opType: 'MatMul', name: 'mm3', input: ['h', 'V'], output: ['z'] },
      ],
      initializer: [external('W1', 0), external('W2', W2_OFFSET), V],
      input: [makeValueInfo('x', { elemType: DataType.FLOAT, shape: [1, K] })],
      output: [makeValueInfo('h', { elemType: DataType.FLOAT, shape: [1, K] }), makeValueInfo('z', { elemType: DataType.FLOAT, shape: [1, J] })],
    },
  });
  return toBinary(ModelProtoSchema, proto);
}

/** The outputs in float64, per sample: h (only the element the change multiplies) and z, for the original and the candidate. */
export function referenceOutputs(sampleCount: number): { hChanged: number[]; z: Float64Array[]; zCandidate: Float64Array[] } {
  let b1a2 = 0;
  for (let r = 0; r < K; r++) b1a2 += b(1, r) * a(2, r);
  // z = (x·a1)(b1·a2) (b2ᵀ V): the scalar per sample times one fixed vector.
  const b2v = new Float64Array(J);
  for (let r = 0; r < K; r++) for (let j = 0; j < J; j++) b2v[j] += b(2, r) * v(r, j);
  const hChanged: number[] = [];
  const z: Float64Array[] = [];
  const zCandidate: Float64Array[] = [];
  for (let s = 0; s < sampleCount; s++) {
    let xa1 = 0;
    for (let r = 0; r < K; r++) xa1 += xValue(s, r) * a(1, r);
    const scale = xa1 * b1a2;
    const original = b2v.map((value) => scale * value);
    const changed = Float64Array.from(original);
    hChanged.push(scale * b(2, CHANGED.row));
    changed[CHANGED.column] += scale * b(2, CHANGED.row) * CHANGED.delta;
    z.push(original);
    zCandidate.push(changed);
  }
  return { hChanged, z, zCandidate };
}
