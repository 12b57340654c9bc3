// Greedy CTC decoding of a text recogniser's output: per time step take the most probable class,
// merge runs of the same class, drop the blank, map class indices to characters. This is how
// PP-OCR reads its recogniser (CTCLabelDecode), and it is the measure of "same text" that the
// quantization acceptance tests use: two models agree on a line when their decoded strings match.
//
// PP-OCR's class layout: index 0 is the blank, index i > 0 is line i - 1 of the dictionary file
// (ppocr_keys_v1.txt for the Chinese models), and, when the model was trained with
// use_space_char (all the PP-OCR Chinese recognisers), one more class at the end for ' '.

/** The characters of a CTC model's classes; `characters[0]` is the blank (the empty string). */
export interface CtcAlphabet {
  characters: readonly string[];
}

export interface CtcDecodeOptions {
  /** Append ' ' as the last class (PP-OCR's use_space_char; default true). */
  useSpaceChar?: boolean;
}

/** One decoded sequence. */
export interface CtcLine {
  text: string;
  /** Class index of each character of `text`. */
  indices: number[];
  /** Mean of the winning probabilities of the kept characters (0 for an empty line), as PP-OCR scores a line. */
  confidence: number;
}

/**
 * The alphabet of a PP-OCR dictionary file: one character per line (a trailing newline and '\r'
 * are ignored), the blank in front and, by default, a space at the end.
 */
export function ctcAlphabet(dictionaryText: string, options: CtcDecodeOptions = {}): CtcAlphabet {
  const lines = dictionaryText.split('\n').map((line) => line.replace(/\r$/, ''));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const characters = ['', ...lines];
  if (options.useSpaceChar ?? true) characters.push(' ');
  return { characters };
}

/**
 * Greedy-decodes probabilities (or logits: only the arg-max matters for the text) laid out
 * [N, T, C] in C order. `source` names the tensor in errors. The class count must match the
 * alphabet, so a wrong dictionary or a missing space class fails here instead of shifting every
 * character by one.
 */
export function decodeCtcGreedy(data: ArrayLike<number>, dims: readonly number[], alphabet: CtcAlphabet, source = 'CTC output'): CtcLine[] {
  if (dims.length !== 3) throw new Error(`${source}: expected [N, T, C] probabilities, got dims [${dims.join(', ')}]`);
  const [batch, steps, classes] = dims;
  if (classes !== alphabet.characters.length) {
    throw new Error(
      `${source}: ${classes} classes but the alphabet has ${alphabet.characters.length} (blank + dictionary${alphabet.characters.at(-1) === ' ' ? ' + space' : ''}); check the dictionary file and useSpaceChar`,
    );
  }
  if (data.length !== batch * steps * classes) {
    throw new Error(`${source}: ${data.length} values do not fill dims [${dims.join(', ')}]`);
  }
  return ctcGreedyIndices(data, dims).map(({ indices, values }) => ({
    text: indices.map((i) => alphabet.characters[i]).join(''),
    indices,
    confidence: indices.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / indices.length,
  }));
}

/**
 * The greedy CTC reading of [N, T, C] scores (dims checked by the caller) as class indices, blank
 * (class 0) dropped and repeats merged, with each kept class's winning score: what decodeCtcGreedy
 * maps to characters, and what a dictionary-free comparison (eval/ctc-words-metric.ts) reads.
 */
export function ctcGreedyIndices(data: ArrayLike<number>, dims: readonly number[]): { indices: number[]; values: number[] }[] {
  const [batch, steps, classes] = dims;
  const lines: { indices: number[]; values: number[] }[] = [];
  for (let n = 0; n < batch; n++) {
    const indices: number[] = [];
    const values: number[] = [];
    let previous = -1;
    for (let t = 0; t < steps; t++) {
      const row = (n * steps + t) * classes;
      let best = 0;
      let bestValue = data[row];
      for (let c = 1; c < classes; c++) {
        if (data[row + c] > bestValue) {
          bestValue = data[row + c];
          best = c;
        }
      }
      // A repeated class is one character held over several steps; a blank between two equal
      // classes is what separates a doubled character ("oo").
      if (best !== 0 && best !== previous) {
        indices.push(best);
        values.push(bestValue);
      }
      previous = best;
    }
    lines.push({ indices, values });
  }
  return lines;
}

/** Whether every character of `text` has a class in `alphabet` (the blank aside). */
export function missingCharacters(text: string, alphabet: CtcAlphabet): string[] {
  const known = new Set(alphabet.characters.slice(1));
  return [...new Set([...text].filter((ch) => !known.has(ch)))];
}
