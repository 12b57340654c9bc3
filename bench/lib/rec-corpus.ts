// The rendered line corpus of scripts/make-rec-corpus.ts as PP-OCRv4 rec inputs, and the
// recogniser's greedy-CTC reading of them. Each set is one array of lines at PaddleOCR's batch
// width 320: x / 127.5 - 1 over the line's own columns, zeros (predict_rec's padding) after.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ctcAlphabet, decodeCtcGreedy } from '../../src/eval/ctc.js';
import { readNpz } from '../../src/eval/npz.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { OrtModule } from '../../src/runtime/ort-types.js';
import { fromOrtTensor, type GraphOptimization, ModelSession, toOrtTensor } from '../../src/runtime/session.js';
import { OCR } from './feeds.js';

export const REC_CORPUS = 'bench/work/rec-corpus';
const HEIGHT = 48;
const WIDTH = 320;

export interface RecSet {
  /** float32 [count, 3, 48, 320], the recogniser's input. */
  x: Float32Array;
  count: number;
  texts: string[];
}

/**
 * Renders the corpus (ImageMagick) when it is not there yet; `train` renders more training lines
 * (the same seed: the first 480 are the standard corpus's, the held-out set is the same), and
 * `trainSeed` draws them from another seed (the training fonts, other texts).
 */
export function ensureRecCorpus(dir = REC_CORPUS, log: (line: string) => void = () => {}, counts: { train?: number; trainSeed?: number } = {}): void {
  if (existsSync(join(dir, 'corpus.json'))) return;
  log(`rendering the line corpus into ${dir} (scripts/make-rec-corpus.ts, needs ImageMagick and fonts-noto-cjk)`);
  const options = [...(counts.train === undefined ? [] : ['--train', String(counts.train)]), ...(counts.trainSeed === undefined ? [] : ['--train-seed', String(counts.trainSeed)])];
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/make-rec-corpus.ts', '--dir', dir, ...options], { stdio: 'inherit' });
}

/** Where `make-rec-corpus --train COUNT --train-seed SEED` renders for the benches that train on it. */
export const seededRecCorpus = (seed: number, count: number) => `${REC_CORPUS}-seed-${seed}-${count}`;

/** One set ('train' or 'heldout') as float input. */
export async function loadRecSet(which: 'train' | 'heldout', dir = REC_CORPUS): Promise<RecSet> {
  const file = join(dir, `${which}.npz`);
  const arrays = await readNpz(new Uint8Array(readFileSync(file)), file);
  const pixels = arrays.get('x');
  const widthsArray = arrays.get('widths');
  if (pixels === undefined || pixels.dataType !== DataType.UINT8 || pixels.dims.length !== 4 || pixels.dims[1] !== HEIGHT || pixels.dims[2] !== WIDTH) throw new Error(`${file}: 'x' should be uint8 [N, ${HEIGHT}, ${WIDTH}, 3]; re-run scripts/make-rec-corpus.ts`);
  if (widthsArray === undefined || widthsArray.dataType !== DataType.INT32) throw new Error(`${file}: 'widths' should be int32 [N]`);
  const count = pixels.dims[0];
  const widths = new Int32Array(widthsArray.data.slice().buffer);
  const plane = HEIGHT * WIDTH;
  const x = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < HEIGHT; y++) {
      for (let c = 0; c < widths[n]; c++) {
        const from = ((n * HEIGHT + y) * WIDTH + c) * 3;
        for (let ch = 0; ch < 3; ch++) x[(n * 3 + ch) * plane + y * WIDTH + c] = pixels.data[from + ch] / 127.5 - 1;
      }
    }
  }
  const meta = JSON.parse(readFileSync(join(dir, 'corpus.json'), 'utf8')) as Record<string, { text: string }[]>;
  return { x, count, texts: meta[which].map((l) => l.text) };
}

/** The first `count` lines of a set (calibration takes a few). */
export function recSlice(set: RecSet, count: number): RecSet {
  return recRange(set, 0, count);
}

/** Lines [from, from + count) of a set (a tuning split taken from lines never trained on). */
export function recRange(set: RecSet, from: number, count: number): RecSet {
  if (from + count > set.count) throw new Error(`lines ${from}-${from + count - 1} asked of a set of ${set.count}`);
  const per = 3 * HEIGHT * WIDTH;
  return { x: set.x.subarray(from * per, (from + count) * per), count, texts: set.texts.slice(from, from + count) };
}

export interface RecReading {
  texts: string[];
  /** The softmax output of every line, flat. */
  probs: Float32Array;
}

let alphabet: ReturnType<typeof ctcAlphabet> | undefined;

/** Greedy-CTC text of every line of `set` read by `model`, in batches of 20 (graph optimization 'basic' unless told). */
export async function readRecSet(ort: OrtModule, model: Model | Uint8Array, set: RecSet, threads = 2, graphOptimization: GraphOptimization = 'basic'): Promise<RecReading> {
  alphabet ??= ctcAlphabet(readFileSync(join(OCR, 'ppocr_keys_v1.txt'), 'utf8'));
  const session = await ModelSession.create(ort, model, { threads, graphOptimization });
  const per = 3 * HEIGHT * WIDTH;
  const texts: string[] = [];
  const parts: Float32Array[] = [];
  try {
    for (let start = 0; start < set.count; start += 20) {
      const n = Math.min(20, set.count - start);
      const input = Tensor.fromArray('x', DataType.FLOAT, [n, 3, HEIGHT, WIDTH], set.x.slice(start * per, (start + n) * per));
      const result = await session.run({ x: toOrtTensor(ort, input) });
      const probs = fromOrtTensor(result[session.outputNames[0]], session.outputNames[0]);
      for (const line of decodeCtcGreedy(probs.data() as Float32Array, probs.dims, alphabet, probs.name)) texts.push(line.text);
      parts.push((probs.data() as Float32Array).slice());
    }
  } finally {
    await session.release();
  }
  const probs = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    probs.set(p, at);
    at += p.length;
  }
  return { texts, probs };
}

/** Share of lines whose text equals the reference reading. */
export function sameLines(reference: readonly string[], texts: readonly string[]): number {
  return reference.filter((t, i) => t === texts[i]).length / reference.length;
}

/** Share of lines equal to the reference once spaces are dropped (most changed lines differ by a space gained or lost). */
export function sameLinesIgnoringSpaces(reference: readonly string[], texts: readonly string[]): number {
  const squeeze = (t: string) => t.replace(/\s/g, '');
  return reference.filter((t, i) => squeeze(t) === squeeze(texts[i] ?? '')).length / reference.length;
}

/**
 * Per-character agreement with the reference: 1 - (edit distances summed) / (the longer of each
 * pair's lengths summed), over code points, so 0..1 however much a line gains. Progress below one
 * changed line in a hundred shows here first.
 */
export function characterAgreement(reference: readonly string[], texts: readonly string[]): number {
  let distance = 0;
  let length = 0;
  reference.forEach((t, i) => {
    const a = [...t];
    const b = [...(texts[i] ?? '')];
    distance += editDistance(a, b);
    length += Math.max(a.length, b.length);
  });
  return length === 0 ? 1 : 1 - distance / length;
}

/** Levenshtein distance between two sequences of characters (one row of the table at a time). */
function editDistance(a: readonly string[], b: readonly string[]): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length];
}

/**
 * The lines again with their strokes made thicker or thinner (seeded, one of the two per line): a
 * 2x2 minimum or maximum over each channel inside the line's own columns (the zero padding after
 * them stays). Dark ink on light paper grows under the minimum and thins under the maximum, light
 * ink the other way, so each line gets a bolder or a lighter weight of its font: distillation
 * then sees more of the input space than the rendered fonts cover, and the teacher reads these
 * lines itself (no labels).
 */
export function strokeVariants(set: RecSet, seed: number): RecSet {
  const plane = HEIGHT * WIDTH;
  const x = new Float32Array(set.x.length);
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  for (let n = 0; n < set.count; n++) {
    const base = n * 3 * plane;
    // The line's own columns: padding is exactly 0, which a normalized pixel never is.
    let width = 0;
    for (let ch = 0; ch < 3; ch++) for (let y = 0; y < HEIGHT; y++) for (let c = WIDTH - 1; c >= width; c--) if (set.x[base + ch * plane + y * WIDTH + c] !== 0) width = c + 1;
    const pick = next() < 0.5 ? Math.min : Math.max;
    for (let ch = 0; ch < 3; ch++) {
      const from = base + ch * plane;
      for (let y = 0; y < HEIGHT; y++) {
        const y2 = Math.min(HEIGHT - 1, y + 1);
        for (let c = 0; c < width; c++) {
          const c2 = Math.min(width - 1, c + 1);
          x[from + y * WIDTH + c] = pick(set.x[from + y * WIDTH + c], set.x[from + y * WIDTH + c2], set.x[from + y2 * WIDTH + c], set.x[from + y2 * WIDTH + c2]);
        }
      }
    }
  }
  return { x, count: set.count, texts: set.texts.slice() };
}

/** The lines of `a`, then those of `b`. */
export function joinRecSets(a: RecSet, b: RecSet): RecSet {
  const x = new Float32Array(a.x.length + b.x.length);
  x.set(a.x);
  x.set(b.x, a.x.length);
  return { x, count: a.count + b.count, texts: [...a.texts, ...b.texts] };
}

/**
 * Lines FROM-TO (inclusive) named by the environment variable `name` (`fallback` when unset;
 * undefined when empty): the benches' extra training lines and tuning splits.
 */
export function lineRangeFromEnv(name: string, fallback = ''): { from: number; to: number; count: number } | undefined {
  const text = process.env[name] ?? fallback;
  if (text === '') return undefined;
  const match = text.match(/^(\d+)-(\d+)$/);
  if (match === null || Number(match[2]) < Number(match[1])) throw new Error(`${name}=${text}: give FROM-TO, e.g. 1200-1999, or nothing`);
  const from = Number(match[1]);
  const to = Number(match[2]);
  return { from, to, count: to - from + 1 };
}
