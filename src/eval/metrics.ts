// Fidelity of a candidate model's outputs against a reference's, and accuracy against labels.
// Accumulators take one output tensor pair at a time and keep only running float64 sums, so
// memory stays flat however many samples stream through, and adding batches one by one gives
// the same numbers as one call over everything (up to float64 rounding).
import { dataTypeInfo } from '../ir/dtype.js';
import type { Tensor } from '../ir/tensor.js';
import { tensorNumbers } from './numeric.js';
import type { Sample } from './samples.js';

export interface OutputMetrics {
  /** Elements compared. */
  elements: number;
  /** sum(a*b) / (|a| |b|); 1 when both are all zeros. */
  cosine: number;
  /** 10 log10(signal power / noise power), noise = a - b; Infinity when the outputs are identical. */
  sqnrDb: number;
  maxAbs: number;
  meanAbs: number;
  /** |a - b| / |a| (L2 norms); 0 when identical, Infinity when the reference is all zeros and they differ. */
  relative: number;
  /** Elements where one side is NaN or infinite and the other is not the same value (they poison the sums). */
  nonFinite: number;
  /** Classifier-like outputs (class scores along the last axis): rows compared, i.e. elements / classes. */
  rows?: number;
  /** Fraction of rows whose arg-max class agrees. */
  top1Agreement?: number;
  /** Mean fraction of the reference's top-k classes that are also in the candidate's top k. */
  topKOverlap?: number;
  k?: number;
}

export interface MetricOptions {
  /**
   * Treat the last axis as class scores and compare rankings. 'auto' (the default) does so for
   * rank-2 outputs ([N, classes]) and rank-3 ones ([N, steps, classes], e.g. CTC) with at least
   * two classes.
   */
  classifier?: boolean | 'auto';
  /** k for top-k overlap (default 5, at most the number of classes). */
  topK?: number;
}

export interface MetricAccumulator {
  /** Adds one reference/candidate pair of the same output (same dims). */
  add(reference: Tensor, candidate: Tensor): void;
  result(): OutputMetrics;
}

const DEFAULT_TOP_K = 5;

export function createMetricAccumulator(options: MetricOptions = {}): MetricAccumulator {
  let elements = 0;
  let signal = 0; // sum a^2
  let power = 0; // sum b^2
  let dot = 0; // sum a*b
  let noise = 0; // sum (a-b)^2
  let absSum = 0;
  let maxAbs = 0;
  let nonFinite = 0;
  let classifier: boolean | undefined = options.classifier === 'auto' ? undefined : options.classifier;
  let classes = 0;
  let rows = 0;
  let top1 = 0;
  let overlap = 0;
  let k = 0;

  return {
    add(reference, candidate) {
      const where = `output '${reference.name}'`;
      if (reference.dims.length !== candidate.dims.length || reference.dims.some((d, i) => d !== candidate.dims[i])) {
        throw new Error(`${where}: reference has dims [${reference.dims.join(',')}], candidate has [${candidate.dims.join(',')}]`);
      }
      const a = tensorNumbers(reference);
      const b = tensorNumbers(candidate);
      for (let i = 0; i < a.length; i++) {
        const x = a[i];
        const y = b[i];
        if (!Number.isFinite(x) || !Number.isFinite(y)) {
          // Equal infinities and NaN against NaN count as agreement; anything else poisons the sums.
          if (x === y || (Number.isNaN(x) && Number.isNaN(y))) {
            elements++;
            continue;
          }
          nonFinite++;
        }
        const d = x - y;
        signal += x * x;
        power += y * y;
        dot += x * y;
        noise += d * d;
        const abs = Math.abs(d);
        absSum += abs;
        if (abs > maxAbs || Number.isNaN(abs)) maxAbs = abs;
        elements++;
      }
      const last = reference.dims[reference.dims.length - 1] ?? 0;
      if (classifier === undefined) {
        const rank = reference.dims.length;
        classifier = (rank === 2 || rank === 3) && last >= 2;
      }
      if (!classifier || a.length === 0) return;
      if (classes === 0) {
        classes = last;
        k = Math.min(options.topK ?? DEFAULT_TOP_K, classes);
      } else if (last !== classes) {
        throw new Error(`${where}: ${last} classes along the last axis, earlier batches had ${classes}`);
      }
      for (let start = 0; start < a.length; start += classes) {
        const topA = topIndices(a, start, classes, k);
        const topB = topIndices(b, start, classes, k);
        if (topA[0] === topB[0]) top1++;
        let shared = 0;
        for (const index of topA) if (topB.includes(index)) shared++;
        overlap += shared / k;
        rows++;
      }
    },
    result() {
      const identical = noise === 0 && nonFinite === 0;
      const metrics: OutputMetrics = {
        elements,
        cosine: cosineOf(dot, signal, power, identical),
        sqnrDb: identical ? Infinity : 10 * Math.log10(signal / noise),
        maxAbs,
        meanAbs: elements === 0 ? 0 : absSum / elements,
        relative: identical ? 0 : Math.sqrt(noise) / Math.sqrt(signal),
        nonFinite,
      };
      if (classifier && rows > 0) {
        metrics.rows = rows;
        metrics.top1Agreement = top1 / rows;
        metrics.topKOverlap = overlap / rows;
        metrics.k = k;
      }
      return metrics;
    },
  };
}

/** The metrics of one reference/candidate pair. */
export function computeMetrics(reference: Tensor, candidate: Tensor, options: MetricOptions = {}): OutputMetrics {
  const accumulator = createMetricAccumulator(options);
  accumulator.add(reference, candidate);
  return accumulator.result();
}

function cosineOf(dot: number, signal: number, power: number, identical: boolean): number {
  if (signal === 0 && power === 0) return identical ? 1 : Number.NaN;
  if (signal === 0 || power === 0) return 0;
  return dot / Math.sqrt(signal * power);
}

/** Indices of the k largest values of values[start .. start+length), largest first; ties keep the lower index. */
function topIndices(values: ArrayLike<number>, start: number, length: number, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    if (best.length === k && !(v > values[start + best[k - 1]])) continue;
    let at = best.length === k ? k - 1 : best.length;
    while (at > 0 && v > values[start + best[at - 1]]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

export interface AccuracyResult {
  correct: number;
  total: number;
  /** correct / total (NaN with no samples). */
  accuracy: number;
}

export interface AccuracyAccumulator {
  /**
   * Adds predictions and their labels. Float outputs are class scores along the last axis (the
   * arg-max is the prediction); integer outputs are predicted class ids already.
   */
  add(prediction: Tensor, labels: ArrayLike<number | bigint>): void;
  result(): AccuracyResult;
}

/**
 * `labelsWhere` names the labels in errors (their file). A label outside the classes a score output
 * has is refused: it can never be predicted, so it would count as a silent miss.
 */
export function createAccuracyAccumulator(labelsWhere = 'labels'): AccuracyAccumulator {
  let correct = 0;
  let total = 0;
  return {
    add(prediction, labels) {
      const ids = predictedClasses(prediction);
      if (ids.length !== labels.length) {
        throw new Error(`output '${prediction.name}': ${ids.length} predictions (dims [${prediction.dims.join(',')}]) for ${labels.length} labels`);
      }
      const classes = dataTypeInfo(prediction.dataType).isFloat ? (prediction.dims[prediction.dims.length - 1] ?? 1) : Infinity;
      for (let i = 0; i < ids.length; i++) {
        const label = Number(labels[i]);
        if (!(label >= 0 && label < classes)) {
          throw new Error(`${labelsWhere}: label ${label} at index ${total + i} is not a class of output '${prediction.name}', which scores ${classes} classes (0 to ${classes - 1})`);
        }
        if (ids[i] === label) correct++;
      }
      total += ids.length;
    },
    result: () => ({ correct, total, accuracy: correct / total }),
  };
}

/** Class ids: arg-max along the last axis for scores, the values themselves for integer outputs. */
export function predictedClasses(prediction: Tensor): number[] {
  const values = tensorNumbers(prediction);
  const info = dataTypeInfo(prediction.dataType);
  if (!info.isFloat) return Array.from(values);
  const classes = prediction.dims[prediction.dims.length - 1] ?? 1;
  const ids: number[] = [];
  for (let start = 0; start < values.length; start += classes) ids.push(topIndices(values, start, classes, 1)[0]);
  return ids;
}

/** A user's own metric over a sample's outputs: reference outputs, candidate outputs, the sample. */
export type CustomMetric = (reference: Record<string, Tensor>, candidate: Record<string, Tensor>, sample: Sample) => number;

export interface CustomMetricResult {
  mean: number;
  min: number;
  max: number;
  samples: number;
}

/** Averages a custom metric over samples. */
export function createCustomMetricAccumulator(metric: CustomMetric): {
  add(reference: Record<string, Tensor>, candidate: Record<string, Tensor>, sample: Sample): number;
  result(): CustomMetricResult;
} {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  let samples = 0;
  return {
    add(reference, candidate, sample) {
      const value = metric(reference, candidate, sample);
      sum += value;
      min = Math.min(min, value);
      max = Math.max(max, value);
      samples++;
      return value;
    },
    result: () => ({ mean: samples === 0 ? Number.NaN : sum / samples, min, max, samples }),
  };
}

/** Cosine similarity of two equally long vectors in float64; 1 when both are all zeros. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa === 0 && bb === 0 ? 1 : dot / Math.sqrt(aa * bb);
}
