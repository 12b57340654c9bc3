// The rendered OCR fixtures (scripts/make-ocr-lines.ts) as the PP-OCR models' inputs, and the
// greedy-CTC reading of the recogniser, for every test that needs real text instead of noise:
//
//   const lines = await loadOcrLines();
//   const texts = await readLines(REC_OR_QUANTIZED_MODEL, lines);   // one string per line
//   agreement(texts, lines.map((l) => l.text));                       // exact-match rate
//
// Recogniser input, as PaddleOCR's predict_rec builds it: BGR, height 48, (x / 255 - 0.5) / 0.5,
// zero (mid-grey) padding on the right up to the batch width: 320 or the line's own width rounded
// up to a multiple of 8. Lines are batched by that width so padding never differs from PaddleOCR's.
// Detector input: BGR, (x / 255 - mean) / std with ImageNet's mean and std applied in that
// (BGR) channel order, as PaddleOCR's NormalizeImage does.
import { readFileSync } from 'node:fs';
import { type CtcAlphabet, ctcAlphabet, decodeCtcGreedy } from '../../src/eval/ctc.js';
import type { NpyArray } from '../../src/eval/npy.js';
import { readNpz } from '../../src/eval/npz.js';
import { detInputFromPixels } from '../../src/eval/ocr-det.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { OCR_ASSETS } from './real-models.js';
import { runModel } from './run-model.js';

export const OCR_FIXTURES = 'test/fixtures/ocr';
export const REC_DICTIONARY = `${OCR_ASSETS}/ppocr_keys_v1.txt`;
const REC_HEIGHT = 48;
/** PaddleOCR's default rec_image_shape width: narrower lines are padded to it. */
const REC_MIN_WIDTH = 320;

export interface OcrLine {
  key: string;
  /** Ground truth. */
  text: string;
  font: string;
  /** Width of the resized line (height 48), before padding. */
  width: number;
  /** Width of the recogniser input the line goes into: max(320, width rounded up to 8). */
  inputWidth: number;
  /** uint8 [48, width, 3] BGR. */
  pixels: Uint8Array;
}

export interface PageBox {
  text: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface OcrFixtures {
  lines: OcrLine[];
  /** uint8 [640, 640, 3] BGR page with a few lines of text. */
  page: { width: number; height: number; pixels: Uint8Array; boxes: PageBox[] };
}

let cached: Promise<OcrFixtures> | undefined;

/** The committed fixtures, read once per process. */
export function loadOcrFixtures(): Promise<OcrFixtures> {
  cached ??= readFixtures();
  return cached;
}

/** Just the recogniser lines. */
export async function loadOcrLines(): Promise<OcrLine[]> {
  return (await loadOcrFixtures()).lines;
}

async function readFixtures(): Promise<OcrFixtures> {
  const arrays = await readNpz(new Uint8Array(readFileSync(`${OCR_FIXTURES}/lines.npz`)), `${OCR_FIXTURES}/lines.npz`);
  const meta = JSON.parse(readFileSync(`${OCR_FIXTURES}/lines.json`, 'utf8')) as {
    lines: Array<{ key: string; text: string; font: string; width: number }>;
    page: PageBox[];
  };
  const image = (key: string, height: number, width: number): Uint8Array => {
    const array = arrays.get(key) as NpyArray | undefined;
    if (array === undefined || array.dataType !== DataType.UINT8 || array.dims.join() !== `${height},${width},3`) {
      throw new Error(`${OCR_FIXTURES}/lines.npz: '${key}' should be uint8 [${height}, ${width}, 3]; re-run scripts/make-ocr-lines.ts`);
    }
    return array.data;
  };
  const lines = meta.lines.map((l) => ({
    ...l,
    inputWidth: Math.max(REC_MIN_WIDTH, Math.ceil(l.width / 8) * 8),
    pixels: image(l.key, REC_HEIGHT, l.width),
  }));
  const pageDims = arrays.get('page')?.dims ?? [];
  const [height, width] = pageDims;
  return { lines, page: { width, height, pixels: image('page', height, width), boxes: meta.page } };
}

/** Recogniser input for `lines` (all of one inputWidth): float32 [n, 3, 48, inputWidth] named 'x'. */
export function recInput(lines: readonly OcrLine[], name = 'x'): Tensor {
  const width = lines[0].inputWidth;
  const plane = REC_HEIGHT * width;
  const out = new Float32Array(lines.length * 3 * plane);
  lines.forEach((line, n) => {
    if (line.inputWidth !== width) throw new Error(`recInput: line '${line.key}' needs width ${line.inputWidth}, the batch is ${width}`);
    for (let y = 0; y < REC_HEIGHT; y++) {
      for (let x = 0; x < line.width; x++) {
        const from = (y * line.width + x) * 3;
        for (let c = 0; c < 3; c++) out[(n * 3 + c) * plane + y * width + x] = line.pixels[from + c] / 127.5 - 1;
      }
    }
  });
  return Tensor.fromArray(name, DataType.FLOAT, [lines.length, 3, REC_HEIGHT, width], out);
}

/** Lines grouped by input width, in batches of at most `maxBatch`, with their positions in `lines`. */
export function recBatches(lines: readonly OcrLine[], maxBatch = 16): Array<{ indices: number[]; input: Tensor }> {
  const byWidth = new Map<number, number[]>();
  lines.forEach((line, i) => byWidth.set(line.inputWidth, [...(byWidth.get(line.inputWidth) ?? []), i]));
  const batches: Array<{ indices: number[]; input: Tensor }> = [];
  for (const indices of [...byWidth.values()]) {
    for (let start = 0; start < indices.length; start += maxBatch) {
      const part = indices.slice(start, start + maxBatch);
      batches.push({ indices: part, input: recInput(part.map((i) => lines[i])) });
    }
  }
  return batches;
}

let alphabet: CtcAlphabet | undefined;

/** PP-OCRv4 rec's classes: blank, ppocr_keys_v1.txt, space. */
export function recAlphabet(): CtcAlphabet {
  alphabet ??= ctcAlphabet(readFileSync(REC_DICTIONARY, 'utf8'));
  return alphabet;
}

/**
 * Greedy-CTC text of every line read by `model` (the PP-OCRv4 recogniser or a quantized copy),
 * in the order of `lines`. Runs in onnxruntime-node, one thread, graph optimization 'basic'.
 */
export async function readLines(model: Model | Uint8Array | string, lines: readonly OcrLine[]): Promise<string[]> {
  const texts = new Array<string>(lines.length);
  for (const batch of recBatches(lines)) {
    const [probs] = await runModel(model, [batch.input]);
    const decoded = decodeCtcGreedy(probs.data() as Float32Array, probs.dims, recAlphabet(), probs.name);
    batch.indices.forEach((line, k) => {
      texts[line] = decoded[k].text;
    });
  }
  return texts;
}

/** Fraction of positions where the two lists hold the same string. */
export function agreement(a: readonly string[], b: readonly string[]): number {
  if (a.length !== b.length) throw new Error(`agreement: ${a.length} vs ${b.length} lines`);
  return a.filter((text, i) => text === b[i]).length / a.length;
}

/** Detector input for the page: float32 [1, 3, H, W] named 'x'. */
export function detInput(page: OcrFixtures['page'], name = 'x'): Tensor {
  return detInputFromPixels(page.pixels, page.height, page.width, name);
}

/** Float32 [1, 3, h, w] crop of a [1, 3, H, W] image at (y0, x0). */
export function cropImage(image: Tensor, y0: number, x0: number, h: number, w: number): Tensor {
  const [, , H, W] = image.dims;
  const data = image.data() as Float32Array;
  const out = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) out.set(data.subarray((c * H + y0 + y) * W + x0, (c * H + y0 + y) * W + x0 + w), (c * h + y) * w);
  return Tensor.fromArray(image.name, DataType.FLOAT, [1, 3, h, w], out);
}
