// Fitted output offsets: after quantization, an additive offset on a few classes' logits, fitted
// so that the candidate's top-1 class per row (a classifier's sample, a CTC reader's time step)
// agrees with the original's as often as possible on data the caller provides. Quantization
// error is partly a systematic pull between two classes: PP-OCRv4 rec's int8 backbone shifts the
// space-against-blank margin, so a space is dropped (two words merge) or added (a word splits)
// while the characters stay right. One scalar per class removes such a shift for free at run time:
// it is written into the bias of the Add that produces the logits (or a new Add), which
// onnxruntime runs unchanged.
//
// The fit is exact coordinate ascent: with the other offsets fixed, a row's top-1 is class k
// exactly when k's offset exceeds a threshold (the best other logit less k's), so the agreement
// as a function of one offset is a step function whose best interval is found by sorting the
// thresholds. The offset taken is the middle of that interval (the widest margin on both sides),
// and a class is moved only when that gains rows.
import { DataType } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';

export interface OutputOffsetFitOptions {
  /** The classes to fit (default: the `maxClasses` classes that appear most often in disagreements). */
  classes?: readonly number[];
  /** How many classes to fit when they are found from the disagreements (default 2). */
  maxClasses?: number;
  /** Passes over the classes (default 4; it stops early when a pass changes nothing). */
  rounds?: number;
  /** Smallest number of rows a move must gain (default 1). */
  minGain?: number;
  /** Offset taken past a threshold when the best interval is unbounded on one side (default 1). */
  openMargin?: number;
}

export interface OutputOffsetFit {
  /** Class index to its additive offset (only classes whose offset is not 0). */
  offsets: Map<number, number>;
  /** The classes considered. */
  classes: number[];
  rows: number;
  /** Rows whose top-1 agrees with the original's, before and after the offsets. */
  agreeingBefore: number;
  agreeingAfter: number;
}

/** Top-1 class of each row of `logits` [rows, classes]. */
export function rowArgmax(logits: ArrayLike<number>, classes: number): Int32Array {
  const rows = Math.floor(logits.length / classes);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let value = logits[r * classes];
    for (let c = 1; c < classes; c++) {
      const v = logits[r * classes + c];
      if (v > value) {
        value = v;
        best = c;
      }
    }
    out[r] = best;
  }
  return out;
}

/** The classes that appear most often on either side of a disagreement between `reference` and `candidate` top-1s. */
export function disagreementClasses(reference: Int32Array, candidate: Int32Array, max: number): number[] {
  const counts = new Map<number, number>();
  for (let r = 0; r < reference.length; r++) {
    if (reference[r] === candidate[r]) continue;
    counts.set(reference[r], (counts.get(reference[r]) ?? 0) + 1);
    counts.set(candidate[r], (counts.get(candidate[r]) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, max)
    .map(([c]) => c);
}

/**
 * Offsets on a few classes of `logits` [rows, classes] (the candidate's) that make its top-1 per
 * row agree with `reference` (the original's top-1 per row) on as many rows as possible.
 */
export function fitOutputOffsets(reference: Int32Array, logits: ArrayLike<number>, classes: number, options: OutputOffsetFitOptions = {}): OutputOffsetFit {
  const rows = reference.length;
  if (!Number.isInteger(classes) || classes < 2) throw new Error(`output offsets: ${classes} classes; need at least 2`);
  if (logits.length !== rows * classes) throw new Error(`output offsets: ${logits.length} logits for ${rows} rows of ${classes} classes`);
  const before = rowArgmax(logits, classes);
  let agreeingBefore = 0;
  for (let r = 0; r < rows; r++) if (before[r] === reference[r]) agreeingBefore++;
  const chosen = [...(options.classes ?? disagreementClasses(reference, before, options.maxClasses ?? 2))];
  for (const c of chosen) if (!Number.isInteger(c) || c < 0 || c >= classes) throw new Error(`output offsets: class ${c} is not one of the ${classes} classes`);
  const k = chosen.length;
  const offsets = new Float64Array(k);
  if (k === 0)
    return {
      offsets: new Map(),
      classes: chosen,
      rows,
      agreeingBefore,
      agreeingAfter: agreeingBefore,
    };
  // Per row: the chosen classes' logits, and the best class outside them (index and logit).
  const isChosen = new Map(chosen.map((c, i) => [c, i]));
  const own = new Float64Array(rows * k);
  const restValue = new Float64Array(rows);
  const restClass = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = -1;
    let value = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) {
      const v = logits[r * classes + c];
      const i = isChosen.get(c);
      if (i !== undefined) own[r * k + i] = v;
      else if (v > value) {
        value = v;
        best = c;
      }
    }
    restValue[r] = value;
    restClass[r] = best;
  }
  const minGain = options.minGain ?? 1;
  const openMargin = options.openMargin ?? 1;
  const thresholds = new Float64Array(rows);
  const sign = new Int8Array(rows);
  for (let round = 0; round < (options.rounds ?? 4); round++) {
    let moved = false;
    for (let i = 0; i < k; i++) {
      const cls = chosen[i];
      // With every other offset fixed: row r's top-1 is cls when offsets[i] > thresholds[r], else `other`.
      // sign +1: the row agrees above its threshold (the original reads cls); -1: below; 0: either way the same.
      let base = 0;
      let n = 0;
      for (let r = 0; r < rows; r++) {
        let other = restClass[r];
        let otherValue = restValue[r];
        for (let j = 0; j < k; j++) {
          if (j === i) continue;
          const v = own[r * k + j] + offsets[j];
          if (v > otherValue) {
            otherValue = v;
            other = chosen[j];
          }
        }
        if (reference[r] === cls) sign[n] = 1;
        else if (reference[r] === other) {
          sign[n] = -1;
          base++;
        } else continue;
        thresholds[n] = otherValue - own[r * k + i];
        n++;
      }
      const order = Array.from({ length: n }, (_, x) => x).sort((a, b) => thresholds[a] - thresholds[b]);
      // Agreement on (-inf, first threshold) is `base`; crossing a threshold adds its sign.
      const current = offsets[i];
      let currentCount = 0;
      for (let x = 0; x < n; x++) if ((sign[x] > 0 && thresholds[x] < current) || (sign[x] < 0 && thresholds[x] > current)) currentCount++;
      // The best interval; of equal ones, the nearest to the current offset (the smallest change).
      const distance = (lo: number, hi: number) => (current < lo ? lo - current : current > hi ? current - hi : 0);
      let count = base;
      let bestCount = -1;
      let bestLo = Number.NEGATIVE_INFINITY;
      let bestHi = Number.NEGATIVE_INFINITY;
      let lo = Number.NEGATIVE_INFINITY;
      for (let x = 0; x <= n; x++) {
        const hi = x < n ? thresholds[order[x]] : Number.POSITIVE_INFINITY;
        if (hi > lo && (count > bestCount || (count === bestCount && distance(lo, hi) < distance(bestLo, bestHi)))) {
          bestCount = count;
          bestLo = lo;
          bestHi = hi;
        }
        if (x < n) {
          count += sign[order[x]];
          lo = hi;
        }
      }
      if (bestCount - currentCount < minGain) continue;
      offsets[i] = Number.isFinite(bestLo) && Number.isFinite(bestHi) ? (bestLo + bestHi) / 2 : Number.isFinite(bestLo) ? bestLo + openMargin : bestHi - openMargin;
      moved = true;
    }
    if (!moved) break;
  }
  let agreeingAfter = 0;
  for (let r = 0; r < rows; r++) {
    let best = restClass[r];
    let value = restValue[r];
    for (let j = 0; j < k; j++) {
      const v = own[r * k + j] + offsets[j];
      if (v > value || (v === value && chosen[j] < best)) {
        value = v;
        best = chosen[j];
      }
    }
    if (best === reference[r]) agreeingAfter++;
  }
  const kept = new Map<number, number>();
  for (let i = 0; i < k; i++) if (offsets[i] !== 0) kept.set(chosen[i], offsets[i]);
  return {
    offsets: kept,
    classes: chosen,
    rows,
    agreeingBefore,
    agreeingAfter,
  };
}

/**
 * Adds `offsets` (class -> value) to `value`'s last axis of `classes` in `model`, in place: into
 * the float bias of the Add producing it when that bias is a [classes] (or [1, ..., classes])
 * initializer read by nothing else, otherwise through a new Add after it. Returns how it was written.
 */
export function writeOutputOffsets(model: Model, value: string, classes: number, offsets: ReadonlyMap<number, number>): 'bias' | 'add' {
  const graph = model.graph;
  const producer = graph.producer(value);
  if (producer === undefined) throw new Error(`output offsets: no node of the model computes '${value}'`);
  for (const c of offsets.keys()) if (!Number.isInteger(c) || c < 0 || c >= classes) throw new Error(`output offsets: class ${c} is not one of the ${classes} classes`);
  const vector = new Float32Array(classes);
  for (const [c, v] of offsets) vector[c] = v;
  if (producer.opType === 'Add' && producer.domain === '') {
    for (const input of producer.inputs) {
      const bias = graph.initializer(input);
      if (bias === undefined || bias.dataType !== DataType.FLOAT || bias.dims.at(-1) !== classes || bias.dims.some((d, i) => i < bias.dims.length - 1 && d !== 1)) continue;
      if (graph.consumers(input).length !== 1 || graph.isGraphOutput(input) || graph.isGraphInput(input)) continue;
      const data = Float32Array.from(bias.data() as Float32Array);
      for (let c = 0; c < classes; c++) data[c] += vector[c];
      graph.replaceInitializer(graph.initializers.indexOf(bias), Tensor.fromArray(bias.name, DataType.FLOAT, bias.dims, data));
      return 'bias';
    }
  }
  // A new Add: the producer's output is renamed, and the Add writes `value` for every reader.
  const before = graph.uniqueName(`${value}_before_offsets`);
  producer.outputs = producer.outputs.map((o) => (o === value ? before : o));
  graph.changed();
  const constant = graph.addInitializer(Tensor.fromArray(graph.uniqueName(`${value}_offsets`), DataType.FLOAT, [classes], vector));
  const at = graph.nodes.indexOf(producer) + 1;
  graph.addNode(
    {
      opType: 'Add',
      inputs: [before, constant.name],
      outputs: [value],
      name: graph.uniqueName(`${value}_add_offsets`),
    },
    at,
  );
  return 'add';
}
