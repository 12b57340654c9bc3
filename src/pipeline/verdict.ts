// The verdict printed after every compression: does the result stay close to the original on the
// samples it was checked on? Below the thresholds (cosine 0.99, top-1 agreement 98% by default)
// the verdict is a warning that says what to try, because a model that is quietly damaged is the
// outcome users complain about most, and a plain table with exit code 0 does not say it.
import type { EvalReport } from '../eval/eval-report.js';
import { numberFromJson } from '../eval/eval-report.js';

export interface VerdictThresholds {
  /** Lowest acceptable cosine of any output (default 0.99). */
  minCosine?: number;
  /** Lowest acceptable top-1 agreement of classifier-like outputs (default 0.98). */
  minTop1Agreement?: number;
}

export const DEFAULT_VERDICT: Required<VerdictThresholds> = { minCosine: 0.99, minTop1Agreement: 0.98 };

export interface Verdict {
  /** 'close': within the thresholds; 'damaged': below one; 'unchecked': no fidelity was measured. */
  status: 'close' | 'damaged' | 'unchecked';
  /** One line for people. */
  message: string;
  /** What to try, for a damaged result. */
  hints: string[];
}

/**
 * The verdict on `fidelity` (undefined when it was not measured: `why`). `hints` are the settings
 * worth trying for the method that produced the result, most promising first.
 */
export function verdictOf(fidelity: EvalReport | undefined, options: { thresholds?: VerdictThresholds; hints?: readonly string[]; why?: string } = {}): Verdict {
  if (fidelity === undefined) {
    return { status: 'unchecked', message: `not verified: fidelity was not measured${options.why === undefined ? '' : ` (${options.why})`}; give samples with --data to check the result`, hints: [] };
  }
  const thresholds = { ...DEFAULT_VERDICT, ...options.thresholds };
  const outputs = Object.entries(fidelity.outputs);
  const cosines = outputs.map(([name, o]) => ({ name, value: numberFromJson(o.cosine) }));
  const worstCosine = cosines.reduce((w, c) => (!(c.value >= w.value) ? c : w), { name: '', value: Infinity });
  const agreements = outputs.filter(([, o]) => o.top1_agreement !== undefined).map(([name, o]) => ({ name, value: o.top1_agreement as number }));
  const worstAgreement = agreements.reduce((w, c) => (c.value < w.value ? c : w), { name: '', value: Infinity });
  const problems: string[] = [];
  if (!(worstCosine.value >= thresholds.minCosine)) problems.push(`output '${worstCosine.name}' cosine ${formatCosine(worstCosine.value)} < ${thresholds.minCosine}`);
  if (worstAgreement.value < thresholds.minTop1Agreement) {
    problems.push(`output '${worstAgreement.name}' top-1 agreement ${(worstAgreement.value * 100).toFixed(2)}% < ${(thresholds.minTop1Agreement * 100).toFixed(0)}%`);
  }
  const generated = fidelity.data.startsWith('generated') ? ' generated' : '';
  const on = `on ${fidelity.samples}${generated} sample${fidelity.samples === 1 ? '' : 's'}`;
  if (problems.length === 0) {
    const parts = [`lowest cosine ${formatCosine(worstCosine.value)}`];
    if (agreements.length > 0) parts.push(`top-1 agreement ${(worstAgreement.value * 100).toFixed(2)}%`);
    return { status: 'close', message: `close to the original ${on}: ${parts.join(', ')}`, hints: [] };
  }
  const hints = [...(options.hints ?? [])];
  return {
    status: 'damaged',
    message: `the result differs from the original ${on}: ${problems.join('; ')}${hints.length === 0 ? '' : `; try ${hints.join(', or ')}`}`,
    hints,
  };
}

function formatCosine(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const six = value.toFixed(6);
  return six === '1.000000' && value !== 1 ? value.toFixed(9) : six;
}
