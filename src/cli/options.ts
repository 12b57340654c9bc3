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

/** A positive finite number option. */
export function positiveNumber(text: string, flag: string): number {
  const value = Number(text);
  if (!/\S/.test(text) || !(value > 0 && Number.isFinite(value))) throw new UsageError(`${flag} must be a positive number, got '${text}'`);
  return value;
}

/** A positive number, or `a/b` of two (1/255 reads better than 0.00392156862745098). */
export function fraction(text: string, flag: string): number {
  const parts = text.split('/');
  if (parts.length !== 2) return positiveNumber(text, flag);
  return positiveNumber(parts[0], flag) / positiveNumber(parts[1], flag);
}

/** Commander's accumulator for a repeatable option. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
