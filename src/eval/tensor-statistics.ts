// What calibration keeps about one activation: its exact minimum and maximum, and two histograms
// of fixed size (of x for asymmetric ranges, of |x| for symmetric ones and TensorRT's entropy
// method). Everything a calibrator needs, in memory that does not grow with the samples seen.
// An activation-statistics accumulator (activation-stats.ts): the collector feeds it batch by batch.
import type { ActivationAccumulator } from './activation-stats.js';
import { Histogram, type HistogramJson } from './histogram.js';

/** TensorStatistics as plain JSON (a job queue's result); infinities of an empty one as null. */
export interface TensorStatisticsJson {
  name: string;
  min: number | null;
  max: number | null;
  count: number;
  zeros: number;
  signed: HistogramJson;
  absolute: HistogramJson;
  /** Each run's own minimum and maximum (absent in older results). */
  run_mins?: number[];
  run_maxs?: number[];
}

/** TensorRT and onnxruntime both histogram activations into 2048 bins. */
export const DEFAULT_BINS = 2048;

export class TensorStatistics implements ActivationAccumulator {
  min = Infinity;
  max = -Infinity;
  /** Finite values seen. */
  count = 0;
  /** Values exactly 0 (after Relu, half of them): quantization keeps them exact, which MSE's error model needs. */
  zeros = 0;
  /**
   * Each run's (batch's) own minimum and maximum: calibrators can take a range that does not widen
   * as more samples are seen, where min/max (the extremes of all of them) do. Two numbers a run.
   */
  readonly runMins: number[] = [];
  readonly runMaxs: number[] = [];
  readonly signed: Histogram;
  readonly absolute: Histogram;

  constructor(
    readonly name: string,
    bins = DEFAULT_BINS,
  ) {
    this.signed = new Histogram(bins, false);
    this.absolute = new Histogram(bins, true);
  }

  /** The activation it reads (its name). */
  get value(): string {
    return this.name;
  }

  /** Folds in a batch of values (their layout does not matter). */
  add(values: ArrayLike<number>): void {
    let lo = Infinity;
    let hi = -Infinity;
    let count = 0;
    let zeros = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (!Number.isFinite(v)) continue;
      if (v === 0) zeros++;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      count++;
    }
    if (count > 0) {
      this.runMins.push(lo);
      this.runMaxs.push(hi);
    }
    this.min = Math.min(this.min, lo);
    this.max = Math.max(this.max, hi);
    this.count += count;
    this.zeros += zeros;
    this.signed.add(values);
    this.absolute.add(values);
  }

  /** Folds in statistics of other samples of the same activation (another shard of the data). */
  merge(other: TensorStatistics): void {
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.count += other.count;
    this.zeros += other.zeros;
    this.runMins.push(...other.runMins);
    this.runMaxs.push(...other.runMaxs);
    this.signed.merge(other.signed);
    this.absolute.merge(other.absolute);
  }

  toJSON(): TensorStatisticsJson {
    const finite = (v: number) => (Number.isFinite(v) ? v : null);
    return { name: this.name, min: finite(this.min), max: finite(this.max), count: this.count, zeros: this.zeros, signed: this.signed.toJSON(), absolute: this.absolute.toJSON(), run_mins: this.runMins, run_maxs: this.runMaxs };
  }

  static fromJSON(json: TensorStatisticsJson): TensorStatistics {
    const stats = new TensorStatistics(json.name, json.signed.bins);
    stats.min = json.min ?? Infinity;
    stats.max = json.max ?? -Infinity;
    stats.count = json.count;
    stats.zeros = json.zeros;
    stats.runMins.push(...(json.run_mins ?? []));
    stats.runMaxs.push(...(json.run_maxs ?? []));
    stats.signed.merge(Histogram.fromJSON(json.signed));
    stats.absolute.merge(Histogram.fromJSON(json.absolute));
    return stats;
  }

  /** Runs counted (batches with a finite value). */
  get runs(): number {
    return this.runMaxs.length;
  }

  /** Largest |x| seen. */
  get absMax(): number {
    return Math.max(Math.abs(this.min), Math.abs(this.max));
  }

  /** Bytes of running state, for the memory checks. */
  get byteSize(): number {
    return this.signed.byteSize + this.absolute.byteSize;
  }
}
