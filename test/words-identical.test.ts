// The rec bench's words-identical measure (bench/lib/words-identical.ts): a lost space costs both
// words it joined, an aligned change costs one word, spaces at the ends cost nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sameWords, wordsInOrder } from '../bench/lib/words-identical.js';

test('words identical: LCS over words split on spaces, as a share of the reference words', () => {
  assert.equal(sameWords(['price 主据'], ['price主据']), 0);
  assert.equal(sameWords(['network World'], [' network World ']), 1);
  assert.equal(sameWords(['No. 93512 order', 'a b'], ['No. 93S12 order', 'a b']), 4 / 5);
  // A word dropped at the start does not shift the others out of place.
  assert.equal(wordsInOrder(['x', 'a', 'b', 'c'], ['a', 'b', 'c']), 3);
  assert.equal(sameWords([''], ['anything']), 1);
});
