// Words identical to a reference reading (issue 15's rec measure). Words: a decoded line split on
// whitespace, empty pieces dropped. Per line, the reference's words that the other line reproduces
// in order: the longest common subsequence of the two word lists (a word-level alignment, so one
// changed word does not shift the rest out of place). The share: matched words over all reference
// words. A lost space merges two words into one that matches neither ('price 主据' -> 'price主据'
// keeps 0 of 2); a space gained at a line's end or start changes no word.

import { wordsInOrder } from '../../src/eval/words-in-order.js';

export { wordsInOrder };

export function lineWords(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== '');
}

/** Share of the reference lines' words that `texts` reproduce (matched / reference words; 1 when there are none). */
export function sameWords(reference: readonly string[], texts: readonly string[]): number {
  let total = 0;
  let matched = 0;
  for (const [i, line] of reference.entries()) {
    const words = lineWords(line);
    total += words.length;
    matched += wordsInOrder(words, lineWords(texts[i] ?? ''));
  }
  return total === 0 ? 1 : matched / total;
}
