// Deterministic tensors for tests: seeded pseudo-random floats (mulberry32, the project's own
// generator), zeros and int64 vectors, so every run feeds onnxruntime exactly the same inputs.
import assert from 'node:assert/strict';
import { float16BitsToFloat32 } from '../../src/kernels/quant-formats.js';
import { constantValue } from '../../src/ir/constants.js';
import type { Graph } from '../../src/ir/graph.js';
import { DataType } from '../../src/ir/dtype.js';
import { mulberry32 } from '../../src/kernels/random.js';
import { Tensor } from '../../src/ir/tensor.js';

/** Elements of a tensor with these dims (1 for a scalar). */
export const elementCount = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** `count` values in [low, high) from mulberry32(seed). */
export function pseudoRandom(count: number, seed: number, low = -1, high = 1): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = low + (high - low) * next();
  return out;
}

/** A float32 tensor of seeded values in [low, high). */
export const floats = (name: string, dims: number[], seed: number, low = -1, high = 1): Tensor =>
  Tensor.fromArray(name, DataType.FLOAT, dims, pseudoRandom(elementCount(dims), seed, low, high));

/** A float32 tensor of zeros (an initial RNN state, say). */
export const zeros = (name: string, dims: number[]): Tensor => Tensor.fromArray(name, DataType.FLOAT, dims, new Float32Array(elementCount(dims)));

/** A 1-D int64 tensor holding `values` (shapes, axes, indices). */
export const ints = (name: string, values: readonly number[]): Tensor =>
  Tensor.fromArray(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));

/** An int64 scalar. */
export const int64Scalar = (name: string, value: bigint): Tensor => Tensor.fromArray(name, DataType.INT64, [], new BigInt64Array([value]));

/** A constant's values as float32, looking through the Cast that float16 scales come with. */
export function floatsOf(graph: Graph, name: string): Float32Array {
  const cast = graph.producer(name);
  const source = cast?.opType === 'Cast' ? cast.inputs[0] : name;
  const t = constantValue(graph, source);
  assert.ok(t !== undefined, `constant '${source}'`);
  if (t.dataType === DataType.FLOAT16) return Float32Array.from(t.data() as Uint16Array, float16BitsToFloat32);
  return Float32Array.from(t.data() as Float32Array);
}
