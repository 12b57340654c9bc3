// Number formats of the page: sizes as the CLI prints them, metrics with enough digits to compare.
import type { JsonNumber } from '../../src/eval/eval-report.js';

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** A report number as a JS number ("inf" -> Infinity, null -> NaN). */
export function numeric(value: JsonNumber | undefined): number {
  if (value === undefined || value === null) return Number.NaN;
  if (value === 'inf') return Infinity;
  if (value === '-inf') return -Infinity;
  return value;
}

export function formatDb(value: JsonNumber | undefined): string {
  const n = numeric(value);
  if (n === Infinity) return '∞ dB';
  return Number.isNaN(n) ? '–' : `${n.toFixed(2)} dB`;
}

export function formatDims(shape: readonly (number | string | null)[] | null): string {
  return shape === null ? '?' : `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}
