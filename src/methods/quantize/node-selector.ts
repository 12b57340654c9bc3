// Choosing nodes by what users type: an op type (`Conv`), an exact node name, or a regular
// expression over node names (`^backbone\.stage1`). `--exclude` and the precision config use it.
import type { Node } from '../../ir/node.js';

export interface NodeSelector {
  /** What the user wrote, for messages ("excluded by 'Conv'"). */
  readonly text: string;
  matches(node: Node): boolean;
}

/**
 * A selector from `text`: it matches nodes whose op type equals it, or whose name it matches as a
 * regular expression (exact names match themselves, regex characters aside). Throws a one-line
 * error naming `where` when the text is not a valid regular expression.
 */
export function nodeSelector(text: string, where = 'pattern'): NodeSelector {
  if (text === '') throw new Error(`${where}: empty pattern`);
  let regex: RegExp;
  try {
    regex = new RegExp(text);
  } catch (error) {
    throw new Error(`${where}: '${text}' is not a valid regular expression (${(error as Error).message})`);
  }
  return {
    text,
    matches: (node) => node.opType === text || node.name === text || (node.name !== '' && regex.test(node.name)),
  };
}

/** The first selector matching `node`, if any. */
export function firstMatch(selectors: readonly NodeSelector[], node: Node): NodeSelector | undefined {
  return selectors.find((s) => s.matches(node));
}
