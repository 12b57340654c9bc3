// The rendered line corpus of scripts/make-rec-corpus.ts (bench/lib/rec-corpus.ts) as PP-OCR cls
// (direction classifier) inputs, built as PaddleOCR's resize_norm_img does: the line (height 48)
// squeezed to at most 192 wide (bilinear along x; the height already matches), x / 127.5 - 1, zero
// padding on the right. 'train' lines calibrate, 'heldout' lines (other fonts, texts, seed) measure.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpz } from '../../src/eval/npz.js';
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';
import { ensureRecCorpus, REC_CORPUS } from './rec-corpus.js';

const HEIGHT = 48;
export const CLS_WIDTH = 192;

/** `count` lines of a set from `start`, as one float32 [count, 3, 48, 192] batch named 'x'. */
export async function loadClsLines(which: 'train' | 'heldout', start: number, count: number, dir = REC_CORPUS): Promise<Tensor> {
  ensureRecCorpus(dir);
  const file = join(dir, `${which}.npz`);
  const arrays = await readNpz(new Uint8Array(readFileSync(file)), file);
  const pixels = arrays.get('x');
  const widthsArray = arrays.get('widths');
  if (pixels === undefined || widthsArray === undefined || pixels.dims[1] !== HEIGHT) throw new Error(`${file}: expected 'x' uint8 [N, 48, W, 3] and 'widths'; re-run scripts/make-rec-corpus.ts`);
  const [total, , stride] = pixels.dims;
  if (start + count > total) throw new Error(`${file}: ${total} lines, asked for ${start}..${start + count}`);
  const widths = new Int32Array(widthsArray.data.slice().buffer);
  const plane = HEIGHT * CLS_WIDTH;
  const out = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n++) {
    const line = start + n;
    const source = widths[line];
    const width = Math.min(CLS_WIDTH, source);
    const step = source / width;
    for (let y = 0; y < HEIGHT; y++) {
      for (let x = 0; x < width; x++) {
        const at = Math.min(source - 1, (x + 0.5) * step - 0.5);
        const left = Math.max(0, Math.floor(at));
        const right = Math.min(source - 1, left + 1);
        const t = Math.max(0, at - left);
        for (let c = 0; c < 3; c++) {
          const pixel = (column: number) => pixels.data[((line * HEIGHT + y) * stride + column) * 3 + c];
          out[(n * 3 + c) * plane + y * CLS_WIDTH + x] = (pixel(left) * (1 - t) + pixel(right) * t) / 127.5 - 1;
        }
      }
    }
  }
  return Tensor.fromArray('x', DataType.FLOAT, [count, 3, HEIGHT, CLS_WIDTH], out);
}
