// Renders pages of text for PP-OCRv4 det's quantization benchmarks: a calibration set that
// calibration (and any tuning) reads, optionally a training set (more pages of the calibration
// set's kind: its fonts and papers, another seed) for distillation, and a held-out set with other fonts, other texts, other
// colours of paper and another seed that only the final measurement reads. Each page has lines of
// several sizes (Chinese, English, numbers, dates, prices; scripts/lib/ocr-text.ts) at random places,
// some pages in two columns, some slightly blurred or noisy. The detector's own output on the float
// model is the reference, so no labels are needed; the ink boxes are kept for anyone who wants them.
//
//   <dir>/calib.npz    x: uint8 [N, 640, 640, 3] BGR
//   <dir>/heldout.npz  the same layout
//   <dir>/train.npz    the same layout, with --train N (N > 0)
//   <dir>/pages.json   every page's lines: text, font, size, box (sets rendered earlier are kept)
//
// Each set has its own seed, so rendering one more set (--calib 0 --heldout 0 --train 48) leaves
// the other sets' files as they were.
//
// 640x640 is PaddleOCR's det input for a page of that size (a multiple of the stride 32); the loader
// (bench/lib/det-pages.ts) normalizes as PaddleOCR's NormalizeImage does (src/eval/det-input.ts).
//
// Usage: apt-get install imagemagick fonts-noto-cjk fonts-dejavu-core fonts-liberation
//        node --import tsx scripts/make-det-pages.ts [--dir bench/work/det-pages] [--calib 16] [--heldout 16] [--train 0]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { NpyArray } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import { findConvert } from './lib/find-convert.js';
import { drawText, random } from './lib/ocr-text.js';

const SIZE = 640;
const MARGIN = 16;

/** Fonts of each set: no held-out font appears in calibration (the same split as make-rec-corpus.ts). */
const FONTS = {
  calib: { cjk: ['Noto-Sans-CJK-SC', 'Noto-Serif-CJK-SC', 'Droid-Sans-Fallback', 'Noto-Sans-CJK-JP'], latin: ['DejaVu-Sans', 'DejaVu-Serif', 'Liberation-Mono', 'Nimbus-Sans-Regular', 'P052-Roman', 'URW-Gothic-Book'] },
  heldout: { cjk: ['Noto-Sans-CJK-SC-Bold', 'Noto-Serif-CJK-SC-Bold', 'Noto-Sans-Mono-CJK-SC'], latin: ['Liberation-Sans', 'Liberation-Serif', 'C059-Roman', 'Nimbus-Mono-PS-Regular', 'DejaVu-Sans-Condensed', 'Noto-Mono'] },
};

/** Paper and the inks drawn on it; the held-out set has its own papers. */
const PAPERS = {
  calib: [
    { paper: 'white', inks: ['black', '#1a237e', '#7f0000', '#37474f'] },
    { paper: '#f4f1e8', inks: ['#202020', '#3e2723'] },
    { paper: '#e0e0e0', inks: ['black', '#0d47a1'] },
    { paper: '#263238', inks: ['white', '#ffeb3b'] },
  ],
  heldout: [
    { paper: '#fafafa', inks: ['#111111', '#004d40', '#b71c1c'] },
    { paper: '#fffde7', inks: ['#212121', '#1b5e20'] },
    { paper: '#e3f2fd', inks: ['#0d1b2a', '#4a148c'] },
    { paper: '#1b1b1b', inks: ['#f5f5f5', '#80deea'] },
  ],
};

type Which = keyof typeof FONTS;

/** Sets written, each with the fonts and papers it draws from and its seed. */
const SETS = [
  { name: 'calib', style: 'calib', seed: 4099 },
  { name: 'heldout', style: 'heldout', seed: 77003 },
  { name: 'train', style: 'calib', seed: 5119 },
] as const;

interface PageLine {
  text: string;
  font: string;
  size: number;
  ink: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** One line of a page: one to three draws of text joined, so lines have many lengths. */
function lineText(rand: () => number): string {
  const parts = 1 + Math.floor(rand() * 3);
  return Array.from({ length: parts }, () => drawText(rand)).join(rand() < 0.5 ? ' ' : '  ');
}

/** Renders one line on transparent paper; returns its trimmed size. */
function renderLine(convert: string, png: string, text: string, font: string, size: number, ink: string): [number, number] {
  execFileSync(convert, ['-background', 'none', '-fill', ink, '-font', font, '-pointsize', String(size), `label:${text}`, '-trim', '+repage', png]);
  const [w, h] = execFileSync(convert, [png, '-format', '%w %h', 'info:'], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return [w, h];
}

/** Lays lines top to bottom in one or two columns, until the page is full. */
function renderPage(convert: string, which: Which, rand: () => number, work: string, index: number): { pixels: Uint8Array; lines: PageLine[] } {
  const { paper, inks } = PAPERS[which][Math.floor(rand() * PAPERS[which].length)];
  const columns = rand() < 0.3 ? 2 : 1;
  const columnWidth = Math.floor((SIZE - MARGIN * (columns + 1)) / columns);
  const lines: PageLine[] = [];
  const layers: string[] = [];
  for (let column = 0; column < columns; column++) {
    const left = MARGIN + column * (columnWidth + MARGIN);
    let y = MARGIN + Math.floor(rand() * 30);
    for (let attempt = 0; attempt < 40; attempt++) {
      const text = lineText(rand);
      const cjk = /[\u3000-\u9fff\uff00-\uffef]/.test(text);
      const fonts = cjk ? FONTS[which].cjk : FONTS[which].latin;
      const font = fonts[Math.floor(rand() * fonts.length)];
      const size = 14 + Math.floor(rand() * (columns === 2 ? 18 : 36));
      const ink = inks[Math.floor(rand() * inks.length)];
      const png = join(work, `line_${index}_${lines.length}.png`);
      const [w, h] = renderLine(convert, png, text, font, size, ink);
      if (w > columnWidth) continue;
      if (y + h > SIZE - MARGIN) break;
      const x = left + Math.floor(rand() * (columnWidth - w + 1) * (rand() < 0.6 ? 0.15 : 1));
      lines.push({ text, font, size, ink, x, y, w, h });
      layers.push(png, '-geometry', `+${x}+${y}`, '-composite');
      y += h + 8 + Math.floor(rand() * 2 * h);
    }
  }
  const effects = rand() < 0.25 ? ['-blur', `0x${(0.4 + rand() * 0.8).toFixed(2)}`] : rand() < 0.3 ? ['-attenuate', (0.2 + rand() * 0.4).toFixed(2), '+noise', 'Gaussian'] : [];
  const rgb = execFileSync(convert, ['-size', `${SIZE}x${SIZE}`, `xc:${paper}`, ...layers, ...effects, '-depth', '8', 'rgb:-'], { maxBuffer: 16 << 20 });
  if (rgb.length !== SIZE * SIZE * 3) throw new Error(`page ${index}: convert wrote ${rgb.length} bytes, expected ${SIZE * SIZE * 3}`);
  // RGB out of convert, stored BGR (cv2's order, which PaddleOCR normalizes).
  const pixels = new Uint8Array(SIZE * SIZE * 3);
  for (let p = 0; p < SIZE * SIZE; p++) {
    pixels[p * 3] = rgb[p * 3 + 2];
    pixels[p * 3 + 1] = rgb[p * 3 + 1];
    pixels[p * 3 + 2] = rgb[p * 3];
  }
  return { pixels, lines };
}

function main(): void {
  const { values } = parseArgs({ options: { dir: { type: 'string', default: 'bench/work/det-pages' }, calib: { type: 'string', default: '16' }, heldout: { type: 'string', default: '16' }, train: { type: 'string', default: '0' } } });
  const convert = findConvert();
  const work = mkdtempSync(join(tmpdir(), 'det-pages-'));
  const dir = values.dir as string;
  mkdirSync(dir, { recursive: true });
  const index = join(dir, 'pages.json');
  const pages: Record<string, PageLine[][]> = existsSync(index) ? JSON.parse(readFileSync(index, 'utf8')) : {};
  try {
    for (const { name: which, style, seed } of SETS) {
      const count = Number(values[which]);
      if (!(count > 0)) continue;
      const rand = random(seed);
      const x = new Uint8Array(count * SIZE * SIZE * 3);
      pages[which] = [];
      for (let n = 0; n < count; n++) {
        const page = renderPage(convert, style, rand, work, n);
        x.set(page.pixels, n * SIZE * SIZE * 3);
        pages[which].push(page.lines);
      }
      const arrays: Record<string, NpyArray> = { x: { dataType: DataType.UINT8, dims: [count, SIZE, SIZE, 3], data: x } };
      writeFileSync(join(dir, `${which}.npz`), writeNpz(arrays, { compress: true }));
      console.log(`${which}: ${count} pages, ${pages[which].reduce((n, p) => n + p.length, 0)} lines -> ${join(dir, `${which}.npz`)}`);
    }
    writeFileSync(index, `${JSON.stringify({ ...pages, source: 'scripts/make-det-pages.ts', size: SIZE, layout: 'uint8 [N, 640, 640, 3] BGR' })}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
