// Gates: figures a result must reach to be written (`{"gate": {...}}` in a recipe, `--min-cosine`
// and `--max-drop` on quantize and eval). A failed gate names each figure that missed, what it
// had to be and by how much it missed, and the CLI exits with code 3 having written nothing.
import type { EvalReport } from '../eval/eval-report.js';
import { numberFromJson } from '../eval/eval-report.js';

export interface Gate {
  /** Lowest cosine similarity of any output, candidate against original. */
  minCosine?: number;
  /** Lowest SQNR of any output, in dB. */
  minSqnrDb?: number;
  /** Lowest share (0..1) of rows whose arg-max agrees, over classifier-like outputs. */
  minTop1Agreement?: number;
  /** Largest accuracy loss against labels, in percentage points (needs labels). */
  maxAccuracyDrop?: number;
  /** Largest size of the result as a share of the original's. */
  maxSizeRatio?: number;
}

export interface GateMiss {
  /** The gate's key as written in a recipe: min_cosine, max_accuracy_drop, ... */
  figure: string;
  /** The output it concerns, for per-output figures. */
  output?: string;
  limit: number;
  value: number;
  /** How far past the limit, in the figure's own unit (always positive). */
  by: number;
}

/** A gate that did not hold; the CLI maps it to exit code 3. */
export class GateFailedError extends Error {
  constructor(
    readonly misses: readonly GateMiss[],
    where = 'gate',
  ) {
    super(`${where} failed: ${misses.map(describeMiss).join('; ')}; nothing was written`);
  }
}

/** The gate's figures as recipes spell them, for messages and reports. */
export const GATE_KEYS = {
  minCosine: 'min_cosine',
  minSqnrDb: 'min_sqnr_db',
  minTop1Agreement: 'min_top1_agreement',
  maxAccuracyDrop: 'max_accuracy_drop',
  maxSizeRatio: 'max_size_ratio',
} as const satisfies Record<keyof Gate, string>;

export function isEmptyGate(gate: Gate): boolean {
  return Object.values(gate).every((v) => v === undefined);
}

/**
 * The figures of `gate` that `fidelity` (and `sizeRatio`) miss; [] when the gate holds. Throws
 * when the gate asks for something the measurement cannot give (accuracy without labels).
 */
export function checkGate(gate: Gate, fidelity: EvalReport | undefined, sizeRatio?: number): GateMiss[] {
  const misses: GateMiss[] = [];
  const needsFidelity = gate.minCosine ?? gate.minSqnrDb ?? gate.minTop1Agreement ?? gate.maxAccuracyDrop;
  if (needsFidelity !== undefined && fidelity === undefined) {
    throw new Error('gate: its figures need a fidelity measurement, and none was made (give samples with --data)');
  }
  const outputs = Object.entries(fidelity?.outputs ?? {});
  const below = (figure: string, limit: number | undefined, value: (o: (typeof outputs)[number][1]) => number | undefined) => {
    if (limit === undefined) return;
    for (const [name, output] of outputs) {
      const got = value(output);
      if (got !== undefined && !(got >= limit)) misses.push({ figure, output: name, limit, value: got, by: limit - got });
    }
  };
  below(GATE_KEYS.minCosine, gate.minCosine, (o) => numberFromJson(o.cosine));
  below(GATE_KEYS.minSqnrDb, gate.minSqnrDb, (o) => numberFromJson(o.sqnr_db));
  if (gate.minTop1Agreement !== undefined) {
    if (!outputs.some(([, o]) => o.top1_agreement !== undefined)) {
      throw new Error('gate: min_top1_agreement needs a classifier-like output (class scores on the last axis), and the model has none');
    }
    below(GATE_KEYS.minTop1Agreement, gate.minTop1Agreement, (o) => o.top1_agreement);
  }
  if (gate.maxAccuracyDrop !== undefined) {
    const accuracy = fidelity?.accuracy;
    if (accuracy === undefined) throw new Error('gate: max_accuracy_drop needs labels (--labels) to measure accuracy');
    const drop = (accuracy.original - accuracy.candidate) * 100;
    if (drop > gate.maxAccuracyDrop) misses.push({ figure: GATE_KEYS.maxAccuracyDrop, limit: gate.maxAccuracyDrop, value: drop, by: drop - gate.maxAccuracyDrop });
  }
  if (gate.maxSizeRatio !== undefined && sizeRatio !== undefined && sizeRatio > gate.maxSizeRatio) {
    misses.push({ figure: GATE_KEYS.maxSizeRatio, limit: gate.maxSizeRatio, value: sizeRatio, by: sizeRatio - gate.maxSizeRatio });
  }
  return misses;
}

/** `min_cosine 0.99: output 'y' is 0.9712 (0.0188 short)`. */
export function describeMiss(miss: GateMiss): string {
  const where = miss.output === undefined ? '' : ` output '${miss.output}'`;
  const unit = miss.figure === GATE_KEYS.maxAccuracyDrop ? ' points' : miss.figure === GATE_KEYS.minSqnrDb ? ' dB' : '';
  const side = miss.figure.startsWith('min_') ? 'short' : 'over';
  return `${miss.figure} ${miss.limit}${unit}:${where} is ${format(miss.value)}${unit} (${format(miss.by)}${unit} ${side})`;
}

function format(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(1) : Number(value.toPrecision(4)).toString();
}
