// Option parsers shared by the commands, so every command words the same mistake the same way.
import { UsageError } from './errors.js';

/** `p2o.DynamicDimension.1=320,x[0]=4` -> { 'p2o.DynamicDimension.1': 320, 'x[0]': 4 }. */
export function parseDims(text: string | undefined): Record<string, number> {
  const dims: Record<string, number> = {};
  if (text === undefined) return dims;
  for (const part of text.split(',')) {
    const match = /^\s*([^=]+?)\s*=\s*(\d+)\s*$/.exec(part);
    if (match === null) throw new UsageError(`--dims: '${part}' is not name=value (a whole number), e.g. --dims batch=1,height=320`);
    dims[match[1]] = Number(match[2]);
  }
  return dims;
}

/** A whole-number option at least `min`; anything else is a usage error (exit 2). */
export function wholeNumber(text: string, flag: string, min: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`${flag} must be a whole number >= ${min}, got '${text}'`);
  }
  return value;
}
