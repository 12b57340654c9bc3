// The synthesized speech fixture (scripts/make-speech.sh) and Silero VAD runs over it, for every
// test that needs real audio instead of noise:
//
//   const speech = loadSpeech();
//   const p = await sileroOnSpeech(VAD_V5_OR_QUANTIZED_MODEL, 'v5');   // probability per 512-sample frame
//   const { speechHit, silenceHit } = vadScores(p, speech);            // fractions of frames right
import { readFileSync } from 'node:fs';
import { parseNpy } from '../../src/eval/npy.js';
import { type SileroVersion, sileroFrameSamples, sileroProbabilities } from '../../src/eval/silero.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { ModelSession } from '../../src/runtime/session.js';

export const SPEECH_NPY = 'test/fixtures/speech/speech-16k.npy';
export const SPEECH_JSON = 'test/fixtures/speech/speech-16k.json';

export interface SpeechSegment {
  kind: 'speech' | 'silence';
  /** First sample. */
  start: number;
  /** One past the last sample. */
  end: number;
  text: string;
}

export interface Speech {
  audio: Float32Array;
  sampleRate: 16000;
  segments: SpeechSegment[];
}

let cached: Speech | undefined;

/** The committed fixture: 16 kHz mono float32 and where speech and silence are. */
export function loadSpeech(): Speech {
  if (cached !== undefined) return cached;
  const npy = parseNpy(new Uint8Array(readFileSync(SPEECH_NPY)), SPEECH_NPY);
  if (npy.dataType !== DataType.FLOAT || npy.dims.length !== 1) throw new Error(`${SPEECH_NPY}: expected float32 [samples]; re-run scripts/make-speech.sh`);
  // Copy: the view into the file is not 4-byte aligned.
  const audio = new Float32Array(npy.data.slice().buffer);
  const meta = JSON.parse(readFileSync(SPEECH_JSON, 'utf8')) as { sample_rate: number; segments: SpeechSegment[] };
  if (meta.sample_rate !== 16000) throw new Error(`${SPEECH_JSON}: sample_rate ${meta.sample_rate}, expected 16000`);
  cached = { audio, sampleRate: 16000, segments: meta.segments };
  return cached;
}

/** Silero's speech probability per frame of the fixture (onnxruntime-node, one thread). */
export async function sileroOnSpeech(model: Model | Uint8Array | string, version: SileroVersion): Promise<Float32Array> {
  const session = await ModelSession.create(nodeOrt, model, { threads: 1 });
  try {
    return await sileroProbabilities(nodeOrt, session, loadSpeech().audio, { version });
  } finally {
    await session.release();
  }
}

/**
 * What each frame should be: 'speech', 'silence', or undefined near a boundary, where a VAD's
 * onset and its hangover (it keeps saying speech a few frames after the voice stops) are both
 * right. `onsetFrames` and `hangoverFrames` set how many frames each side is left out.
 */
export function frameTruth(speech: Speech, frames: number, onsetFrames = 2, hangoverFrames = 4): Array<'speech' | 'silence' | undefined> {
  const frame = sileroFrameSamples(speech.sampleRate);
  const truth: Array<'speech' | 'silence' | undefined> = [];
  for (let k = 0; k < frames; k++) {
    const first = k * frame;
    const last = first + frame - 1;
    const covering = speech.segments.filter((s) => s.start <= last && s.end > first);
    if (covering.length !== 1) {
      truth.push(undefined);
      continue;
    }
    const segment = covering[0];
    if (segment.kind === 'speech') {
      truth.push(first - segment.start < onsetFrames * frame ? undefined : 'speech');
    } else {
      const afterSpeech = speech.segments.some((s) => s.kind === 'speech' && s.end <= first && first - s.end < hangoverFrames * frame);
      truth.push(afterSpeech ? undefined : 'silence');
    }
  }
  return truth;
}

/** Fractions of speech frames above `threshold` and of silence frames below it. */
export function vadScores(probabilities: Float32Array, speech: Speech, threshold = 0.5): { speechHit: number; silenceHit: number; speechFrames: number; silenceFrames: number } {
  const truth = frameTruth(speech, probabilities.length);
  let speechFrames = 0;
  let silenceFrames = 0;
  let speechHits = 0;
  let silenceHits = 0;
  truth.forEach((kind, k) => {
    if (kind === 'speech') {
      speechFrames++;
      if (probabilities[k] > threshold) speechHits++;
    } else if (kind === 'silence') {
      silenceFrames++;
      if (probabilities[k] < threshold) silenceHits++;
    }
  });
  return { speechHit: speechHits / speechFrames, silenceHit: silenceHits / silenceFrames, speechFrames, silenceFrames };
}
