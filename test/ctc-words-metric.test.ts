// The CTC words metric (src/eval/ctc-words-metric.ts): greedy decoding by class ids, words split at
// the last (space) class, the original's words reproduced in order over all of them: a lost space
// loses both words it joined, a changed character one word, repeats and blanks decode as CTC does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ctcWords, metric } from '../src/eval/ctc-words-metric.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Sample } from '../src/eval/samples.js';

const CLASSES = 6; // blank, 1-4 letters, 5 space

/** [lines, T, CLASSES] one-hot logits of the class ids of each line (all lines padded with blanks to one length). */
function logits(lines: number[][]): Tensor {
  const steps = Math.max(...lines.map((l) => l.length));
  const data = new Float32Array(lines.length * steps * CLASSES);
  for (const [n, line] of lines.entries()) for (let t = 0; t < steps; t++) data[(n * steps + t) * CLASSES + (line[t] ?? 0)] = 3;
  return Tensor.fromArray('probs', DataType.FLOAT, [lines.length, steps, CLASSES], data);
}

const sample = { index: 0, where: 'sample 0', inputs: {} } as unknown as Sample;

test('CTC words: decoded by class ids, split at the space class', () => {
  // Repeats merge (1 1 -> 1), a blank separates a repeat (1 0 1 -> 1 1): the first word is 1,1.
  assert.deepEqual(ctcWords(logits([[1, 1, 0, 1, 5, 2, 3, 5, 5, 4]])), [['1,1', '2,3', '4']]);
  assert.deepEqual(ctcWords(logits([[0, 5, 0]])), [[]]);
});

test('CTC words metric: lost space, changed letter, and lines read alike', () => {
  const reference = { probs: logits([[1, 5, 2, 5, 3], [4, 5, 4]]) }; // words: 1 | 2 | 3 ; 4 | 4
  const same = metric(reference, { probs: logits([[1, 5, 2, 5, 3], [4, 5, 4]]) }, sample);
  assert.equal(same, 1);
  // The first line loses its first space (1 2 merged: 2 words lost), the second changes one letter.
  const worse = metric(reference, { probs: logits([[1, 0, 2, 5, 3], [4, 5, 2]]) }, sample);
  assert.equal(worse, 2 / 5);
});
