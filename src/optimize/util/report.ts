// What a pass hands back: counters that add up and structured warnings for what it left alone.
// Passes fill one of these as they go instead of threading two objects through every helper.
import type { PassReport, PassWarning } from '../../pipeline/pass.js';

export class PassResult {
  readonly stats: Record<string, number> = {};
  readonly warnings: PassWarning[] = [];

  constructor(counters: readonly string[] = []) {
    // Counters start at zero so a report always lists what the pass can do, even when it did nothing.
    for (const key of counters) this.stats[key] = 0;
  }

  count(key: string, by = 1): void {
    this.stats[key] = (this.stats[key] ?? 0) + by;
  }

  warn(code: string, message: string, where: { node?: string; tensor?: string } = {}): void {
    const warning: PassWarning = { code, message };
    if (where.node !== undefined) warning.node = where.node;
    if (where.tensor !== undefined) warning.tensor = where.tensor;
    this.warnings.push(warning);
  }

  done(): Omit<PassReport, 'pass' | 'ms'> {
    return { stats: this.stats, warnings: this.warnings };
  }
}
