// Runs a Silero voice activity detector over a long waveform, frame by frame, carrying the
// recurrent state from one frame to the next: the way the model is used in practice, and the only
// way to see whether a converted model still tells speech from silence (one frame of random noise
// says little). Returns the speech probability of every frame.
//
// The frame layout follows silero-vad's own wrapper (and @ricky0123/vad-web):
// - v5 and v6: 512 samples at 16 kHz (256 at 8 kHz) with the last 64 (32) samples of the previous
//   frame in front, so the model sees 576 (288); one `state` [2, 1, 128] carried over.
// - legacy (v4): 512 samples (256), no context; `h` and `c` [2, 1, 64] carried over.
// The last frame is zero-padded. Runs in Node or a browser: the onnxruntime module is a parameter.
import type { OrtModule, OrtTensor } from '../runtime/ort-types.js';
import type { ModelSession } from '../runtime/session.js';

export type SileroVersion = 'v5' | 'v6' | 'legacy';

export interface SileroOptions {
  version: SileroVersion;
  /** 16000 (default) or 8000: picks the model's branch and the frame size. */
  sampleRate?: 8000 | 16000;
}

/** New samples per frame at a sample rate: 512 at 16 kHz, 256 at 8 kHz. */
export function sileroFrameSamples(sampleRate: 8000 | 16000 = 16000): number {
  return sampleRate === 16000 ? 512 : 256;
}

/**
 * Speech probability per frame of `audio` (mono, [-1, 1], at `sampleRate`). Frame k covers samples
 * [k * frame, (k + 1) * frame) with frame = sileroFrameSamples(sampleRate).
 */
export async function sileroProbabilities(ort: OrtModule, session: ModelSession, audio: Float32Array, options: SileroOptions): Promise<Float32Array> {
  const rate = options.sampleRate ?? 16000;
  if (rate !== 16000 && rate !== 8000) throw new Error(`Silero VAD: sample rate ${rate} is not supported (16000 or 8000)`);
  const legacy = options.version === 'legacy';
  const expected = legacy ? ['input', 'sr', 'h', 'c'] : ['input', 'state', 'sr'];
  const missing = expected.filter((name) => !session.inputNames.includes(name));
  if (missing.length > 0) {
    throw new Error(`Silero VAD ${options.version}: the model lacks input(s) ${missing.join(', ')} (it has ${session.inputNames.join(', ')}); wrong version?`);
  }
  const frame = sileroFrameSamples(rate);
  const context = legacy ? 0 : frame / 8;
  const frames = Math.ceil(audio.length / frame);
  const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(rate)]), []);
  let state: OrtTensor = new ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128]);
  let h: OrtTensor = new ort.Tensor('float32', new Float32Array(2 * 64), [2, 1, 64]);
  let c: OrtTensor = new ort.Tensor('float32', new Float32Array(2 * 64), [2, 1, 64]);
  const probabilities = new Float32Array(frames);
  for (let k = 0; k < frames; k++) {
    // [context | frame]: the context is the tail of the previous frame (zeros before the first).
    const window = new Float32Array(context + frame);
    const start = k * frame;
    const from = Math.max(0, start - context);
    window.set(audio.subarray(from, Math.min(audio.length, start + frame)), context - (start - from));
    const input = new ort.Tensor('float32', window, [1, window.length]);
    if (legacy) {
      const out = await session.run({ input, sr, h, c });
      h = out.hn;
      c = out.cn;
      probabilities[k] = (out.output.data as Float32Array)[0];
    } else {
      const out = await session.run({ input, state, sr });
      state = out.stateN;
      probabilities[k] = (out.output.data as Float32Array)[0];
    }
  }
  return probabilities;
}
