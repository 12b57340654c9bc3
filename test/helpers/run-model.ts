// onnxruntime-node as the oracle of the tests: run a model on IR tensors, get IR tensors back, and
// measure how far two results are apart.
import assert from 'node:assert/strict';
import type { Model } from '../../src/ir/model.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import type { OrtModule } from '../../src/runtime/ort-types.js';
import { ModelSession, type SessionOptions, fromOrtTensor, toOrtTensor } from '../../src/runtime/session.js';

/**
 * Every output of one run of `model` in onnxruntime-node, in the model's output order. One thread
 * by default, so results repeat run to run; the session is released even when the run fails.
 */
export async function runModel(model: Model | Uint8Array | string, feeds: readonly Tensor[], options: SessionOptions = { threads: 1 }, ort: OrtModule = nodeOrt): Promise<Tensor[]> {
  const session = await ModelSession.create(ort, model, options);
  try {
    const result = await session.run(Object.fromEntries(feeds.map((t) => [t.name, toOrtTensor(ort, t)])));
    return session.outputNames.map((name) => fromOrtTensor(result[name], name));
  } finally {
    await session.release();
  }
}

/** Largest |a[i] - b[i]|; the lengths must agree. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Largest element-wise difference of two float tensors; their dims must agree. */
export function maxAbsDifference(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.dims, b.dims, `'${a.name}' dims`);
  return maxAbsDiff(a.data() as Float32Array, b.data() as Float32Array);
}
