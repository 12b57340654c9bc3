// The weight transposes the MatMul quantizers read their blocks through, against the plain double
// loop: every element in place, for shapes that do and do not fill the eight-row / 64-column steps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { transpose, transposeColumns } from '../src/methods/quantize/weight-tensors.js';

function reference(data: Float32Array, rows: number, cols: number, first: number, count: number): Float32Array {
  const out = new Float32Array(count * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < count; c++) out[c * rows + r] = data[r * cols + first + c];
  return out;
}

test('transposeColumns equals the double loop on awkward shapes and column ranges', () => {
  for (const [rows, cols] of [[1, 1], [7, 3], [8, 64], [9, 65], [33, 130], [256, 200]]) {
    const data = Float32Array.from({ length: rows * cols }, (_, i) => i * 0.5 - 3);
    for (const [first, count] of [[0, cols], [Math.floor(cols / 3), Math.ceil(cols / 2) - Math.floor(cols / 3)], [cols - 1, 1]]) {
      if (count <= 0) continue;
      assert.deepEqual(transposeColumns(data, rows, cols, first, count), reference(data, rows, cols, first, count), `${rows}x${cols} columns ${first}+${count}`);
    }
    assert.deepEqual(transpose(data, rows, cols), reference(data, rows, cols, 0, cols), `${rows}x${cols} whole`);
  }
});
