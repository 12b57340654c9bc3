// The rendered pages of scripts/make-det-pages.ts as PP-OCRv4 det inputs: 'calib' for calibration
// and tuning, 'train' (more pages of calib's kind, another seed) for distillation, 'heldout' (other
// fonts, texts, papers, seed) for the measurements only.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpz } from '../../src/eval/npz.js';
import { detInputFromPixels } from '../../src/eval/ocr-det.js';
import type { SampleSource } from '../../src/eval/samples.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { mulberry32 } from '../../src/kernels/random.js';
import type { OrtModule } from '../../src/runtime/ort-types.js';
import { fromOrtTensor, ModelSession, type SessionOptions, toOrtTensor } from '../../src/runtime/session.js';
import type { ArrayField } from '../../src/train/array-data.js';

export const DET_PAGES = 'bench/work/det-pages';

/** Renders the pages (ImageMagick) when they are not there yet. */
export function ensureDetPages(dir = DET_PAGES, log: (line: string) => void = () => {}): void {
  if (existsSync(join(dir, 'pages.json'))) return;
  log(`rendering the det pages into ${dir} (scripts/make-det-pages.ts, needs ImageMagick and fonts-noto-cjk)`);
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/make-det-pages.ts', '--dir', dir], { stdio: 'inherit' });
}

/** Renders `count` training pages (calib's fonts and papers, their own seed) when train.npz is not there; the other sets stay as they are. */
export function ensureDetTrainPages(count: number, dir = DET_PAGES, log: (line: string) => void = () => {}): void {
  ensureDetPages(dir, log);
  if (existsSync(join(dir, 'train.npz'))) return;
  log(`rendering ${count} det training pages into ${dir}`);
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/make-det-pages.ts', '--dir', dir, '--calib', '0', '--heldout', '0', '--train', String(count)], { stdio: 'inherit' });
}

/** One set as detector inputs: float32 [1, 3, 640, 640] named 'x', one per page. */
export async function loadDetPages(which: 'calib' | 'heldout' | 'train', dir = DET_PAGES): Promise<Tensor[]> {
  const file = join(dir, `${which}.npz`);
  const x = (await readNpz(new Uint8Array(readFileSync(file)), file)).get('x');
  if (x === undefined || x.dataType !== DataType.UINT8 || x.dims.length !== 4 || x.dims[3] !== 3) throw new Error(`${file}: 'x' should be uint8 [N, H, W, 3]; re-run scripts/make-det-pages.ts`);
  const [count, height, width] = x.dims;
  const size = height * width * 3;
  return Array.from({ length: count }, (_, n) => detInputFromPixels(x.data.subarray(n * size, (n + 1) * size), height, width));
}

/** Tensors as a sample source, one sample each (calibration reads these). */
export function detSamples(pages: readonly Tensor[], description: string): SampleSource {
  return {
    inputs: ['x'],
    count: pages.length,
    description,
    async *[Symbol.asyncIterator]() {
      for (const [index, x] of pages.entries()) yield { index, where: `${description} page ${index}`, inputs: { x } };
    },
  };
}

/** The detector's probability map for each page, one run each (its first output). */
export async function detMaps(ort: OrtModule, model: Model | Uint8Array, pages: readonly Tensor[], options: SessionOptions = { threads: 2 }): Promise<Float32Array[]> {
  const session = await ModelSession.create(ort, model, options);
  try {
    const maps: Float32Array[] = [];
    for (const x of pages) {
      const result = await session.run({ x: toOrtTensor(ort, x) });
      maps.push((fromOrtTensor(result[session.outputNames[0]], session.outputNames[0]).data() as Float32Array).slice());
    }
    return maps;
  } finally {
    await session.release();
  }
}

/**
 * `perPage` size x size crops of every page at seeded random places, as one float32 training field
 * 'x' [N, 3, size, size]: distillation sees more of the pages than fixed crops show, at the same cost.
 */
export function detPageCrops(pages: readonly Tensor[], perPage: number, seed: number, size = 320): Record<string, ArrayField> {
  const random = mulberry32(seed);
  const all = new Float32Array(pages.length * perPage * 3 * size * size);
  let at = 0;
  for (const page of pages) {
    const [, , height, width] = page.dims;
    const data = page.data() as Float32Array;
    for (let n = 0; n < perPage; n++) {
      const top = Math.floor(random() * (height - size + 1));
      const left = Math.floor(random() * (width - size + 1));
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < size; y++) all.set(data.subarray((c * height + top + y) * width + left, (c * height + top + y) * width + left + size), at + (c * size + y) * size);
      }
      at += 3 * size * size;
    }
  }
  return { x: { data: all, sampleDims: [3, size, size], dataType: DataType.FLOAT } };
}
