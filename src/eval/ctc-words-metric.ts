// A metric module for `shrink qat --metric` (and `shrink eval` / `shrink auto --metric`): the share
// of the original's words that a CTC text recogniser (PP-OCR rec) reproduces, per sample. Each
// line is greedy-decoded from the first [N, T, classes] output (arg-max per step, repeats merged,
// the blank, class 0, dropped) and split into words at the space class, PP-OCR's last
// (use_space_char); a word is its sequence of class ids, so no dictionary is needed. Per sample:
// the original's words reproduced in order (src/eval/words-in-order.ts) over all its words (1 when
// it reads none), as bench/lib/words-identical.ts counts on decoded text. (The one whitespace
// character inside ppocr_keys_v1, U+3000, counts as a letter here.) Choose QAT's epoch with it on
// lines neither calibrated nor trained on:
//
//   shrink qat rec.onnx -o rec-int8.onnx --method static-int8 --data lines.npz --tune other-lines.npz --metric src/eval/ctc-words-metric.ts
import type { Tensor } from '../ir/tensor.js';
import { ctcGreedyIndices } from './ctc.js';
import type { CustomMetric } from './metrics.js';
import { wordsInOrder } from './words-in-order.js';

export const name = 'CTC words identical';

/** The words of every line of a [N, T, classes] CTC output, each word its class ids joined by ','. */
export function ctcWords(output: Tensor): string[][] {
  if (output.dims.length !== 3) throw new Error(`CTC words: '${output.name}' is [${output.dims.join(', ')}], not [N, T, classes]`);
  const space = output.dims[2] - 1;
  return ctcGreedyIndices(output.data() as Float32Array, output.dims).map(({ indices }) => {
    const words: string[] = [];
    let word: number[] = [];
    for (const c of [...indices, space]) {
      if (c !== space) word.push(c);
      else if (word.length > 0) {
        words.push(word.join(','));
        word = [];
      }
    }
    return words;
  });
}

export const metric: CustomMetric = (reference, candidate) => {
  const output = Object.keys(reference).find((k) => reference[k].dims.length === 3);
  if (output === undefined) throw new Error('CTC words: the model has no [N, T, classes] output');
  const b = candidate[output];
  if (b === undefined) throw new Error(`CTC words: the candidate has no output '${output}'`);
  const want = ctcWords(reference[output]);
  const got = ctcWords(b);
  let total = 0;
  let matched = 0;
  for (const [i, words] of want.entries()) {
    total += words.length;
    matched += wordsInOrder(words, got[i] ?? []);
  }
  return total === 0 ? 1 : matched / total;
};
