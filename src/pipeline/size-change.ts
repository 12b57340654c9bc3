// The one shape every report gives a size in: bytes before, bytes after, and after / before.
import { formatBytes } from '../inspect/table.js';

export interface SizeChange {
  before: number;
  after: number;
  /** after / before, 4 decimals. */
  ratio: number;
}

export function sizeChange(before: number, after: number): SizeChange {
  return { before, after, ratio: before === 0 ? 0 : Number((after / before).toFixed(4)) };
}

/** `10.3 MiB -> 2.6 MiB (0.252x)`. */
export function formatSizeChange(size: SizeChange): string {
  return `${formatBytes(size.before)} -> ${formatBytes(size.after)} (${size.ratio.toFixed(3)}x)`;
}
