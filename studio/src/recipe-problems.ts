// Where in a recipe's text its first problem is. parseRecipe (src/pipeline/recipe.ts) says what
// is wrong as one line naming a path (`recipe: steps.1.quantize.method: ...`) or the parser's
// complaint; the editor also wants the line, so the text is parsed again here with positions
// (yaml reads JSON too) and the path is followed to the deepest node that exists.
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { parseRecipe, type Recipe } from '../../src/pipeline/recipe.js';
import type { RecipeProblem } from './protocol.js';

export const RECIPE_SOURCE = 'recipe';

/** The recipe, or its first problem with the line it points at. */
export function checkRecipe(text: string): { recipe: Recipe } | { problem: RecipeProblem } {
  try {
    return { recipe: parseRecipe(text, RECIPE_SOURCE) };
  } catch (error) {
    const message = (error as Error).message;
    return { problem: { message, line: problemLine(text, message) } };
  }
}

function problemLine(text: string, message: string): number | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax !== undefined) return lines.linePos(syntax.pos[0]).line;
  // JSON.parse failed but yaml did not (rare: JSON that is valid YAML only): no line to show.
  const path = /^[^:]*: '?(steps(?:\.[A-Za-z0-9_]+)*)/.exec(message)?.[1];
  if (path === undefined) return undefined;
  let node: unknown = doc.contents;
  let line: number | undefined;
  for (const key of path.split('.')) {
    const range = (node as YamlNode | null)?.range;
    if (range) line = lines.linePos(range[0]).line;
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown } | null)?.value ?? p.key) === key);
      if (pair === undefined) break;
      const keyRange = (pair.key as YamlNode | null)?.range;
      if (keyRange) line = lines.linePos(keyRange[0]).line;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(key)];
      if (item === undefined) break;
      node = item;
    } else {
      break;
    }
  }
  const range = (node as YamlNode | null)?.range;
  if (range && node !== doc.contents) line = lines.linePos(range[0]).line;
  return line;
}
