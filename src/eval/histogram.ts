// A fixed-size histogram whose range follows the data: calibration sees an activation one batch at a
// time and cannot know its final range up front, so when a batch falls outside the current range
// the histogram widens to cover it and re-bins what it already holds (each old bin's count is
// split over the new bins it overlaps, in proportion to the overlap). Memory is the bin array,
// whatever the number of samples; the re-binning error is at most one new bin width per value,
// and new bins are never narrower than old ones. Histograms of the same data split in parts merge
// (shards of a calibration run on several machines): the range widens to cover both and the other's
// bins are spread over this one's the same way. Merged counts equal one pass's up to that
// re-binning; min/max-based ranges are exact either way.

/** A histogram as plain JSON (a job queue's result). */
export interface HistogramJson {
  bins: number;
  absolute: boolean;
  lo: number;
  hi: number;
  total: number;
  counts: number[];
}

/** Counts of values in `bins` equal bins over [lo, hi]. */
export class Histogram {
  lo = 0;
  hi = 0;
  /** Fractional after re-binning, hence float64. */
  readonly counts: Float64Array;
  /** Values counted so far. */
  total = 0;

  constructor(
    readonly bins: number,
    /** Histogram of |x| instead of x: the range always starts at 0 (TensorRT's entropy and symmetric percentile). */
    readonly absolute: boolean,
  ) {
    if (!Number.isInteger(bins) || bins < 8) throw new Error(`histogram: bins must be an integer >= 8, got ${bins}`);
    this.counts = new Float64Array(bins);
  }

  get binWidth(): number {
    return (this.hi - this.lo) / this.bins;
  }

  /** Bytes held, for the memory checks: constant for the histogram's life. */
  get byteSize(): number {
    return this.counts.byteLength;
  }

  /** Adds the finite values of `values` (NaN and infinities are skipped: they have no range). */
  add(values: ArrayLike<number>): void {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = this.absolute ? Math.abs(values[i]) : values[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(lo <= hi) || !Number.isFinite(lo) || !Number.isFinite(hi)) return;
    if (this.absolute) lo = 0;
    this.cover(lo, hi);
    const scale = this.bins / (this.hi - this.lo);
    const last = this.bins - 1;
    const counts = this.counts;
    let added = 0;
    for (let i = 0; i < values.length; i++) {
      const v = this.absolute ? Math.abs(values[i]) : values[i];
      if (!Number.isFinite(v)) continue;
      const at = Math.floor((v - this.lo) * scale);
      counts[at < 0 ? 0 : at > last ? last : at]++;
      added++;
    }
    this.total += added;
  }

  /** Adds the counts of `other` (same number of bins and kind), as if its values had been added here. */
  merge(other: Histogram): void {
    if (other.bins !== this.bins || other.absolute !== this.absolute) throw new Error(`histogram: cannot merge ${other.bins} ${other.absolute ? '|x| ' : ''}bins into ${this.bins} ${this.absolute ? '|x| ' : ''}bins`);
    if (other.total === 0) return;
    if (this.total === 0) {
      this.lo = other.lo;
      this.hi = other.hi;
      this.counts.set(other.counts);
      this.total = other.total;
      return;
    }
    this.cover(other.lo, other.hi);
    spreadBins(other.counts, other.lo, other.binWidth, this.counts, this.lo, this.binWidth);
    this.total += other.total;
  }

  toJSON(): HistogramJson {
    return { bins: this.bins, absolute: this.absolute, lo: this.lo, hi: this.hi, total: this.total, counts: Array.from(this.counts) };
  }

  static fromJSON(json: HistogramJson): Histogram {
    const histogram = new Histogram(json.bins, json.absolute);
    if (!Array.isArray(json.counts) || json.counts.length !== json.bins) throw new Error(`histogram: ${json.counts?.length} counts for ${json.bins} bins`);
    histogram.counts.set(json.counts);
    histogram.lo = json.lo;
    histogram.hi = json.hi;
    histogram.total = json.total;
    return histogram;
  }

  /** Widens the range to hold [lo, hi], re-binning the counts already held. */
  private cover(lo: number, hi: number): void {
    if (this.total === 0) {
      // A constant tensor still needs a non-empty range to bin into.
      const width = hi > lo ? hi - lo : Math.max(Math.abs(hi), 1e-12) * 1e-6;
      this.lo = lo;
      this.hi = lo + width;
      return;
    }
    if (lo >= this.lo && hi <= this.hi) return;
    const newLo = Math.min(lo, this.lo);
    const newHi = Math.max(hi, this.hi);
    const old = Float64Array.from(this.counts);
    const oldLo = this.lo;
    const oldWidth = this.binWidth;
    this.counts.fill(0);
    spreadBins(old, oldLo, oldWidth, this.counts, newLo, (newHi - newLo) / this.bins);
    this.lo = newLo;
    this.hi = newHi;
  }

  /** The value below which `fraction` of the counts lie, interpolating inside the bin. */
  quantile(fraction: number): number {
    const target = Math.min(1, Math.max(0, fraction)) * this.counted();
    const width = this.binWidth;
    let seen = 0;
    for (let b = 0; b < this.bins; b++) {
      const next = seen + this.counts[b];
      if (next >= target && this.counts[b] > 0) return this.lo + (b + (target - seen) / this.counts[b]) * width;
      seen = next;
    }
    return this.hi;
  }

  /** Sum of the counts (equals `total` up to rounding of re-binned fractions). */
  counted(): number {
    let sum = 0;
    for (let b = 0; b < this.bins; b++) sum += this.counts[b];
    return sum;
  }
}

/**
 * Adds bins of `width` starting at `lo` into `into` (bins of `intoWidth` from `intoLo`, covering
 * them): each bin's count split over the bins it overlaps, in proportion to the overlap.
 */
function spreadBins(counts: Float64Array, lo: number, width: number, into: Float64Array, intoLo: number, intoWidth: number): void {
  const last = into.length - 1;
  for (let b = 0; b < counts.length; b++) {
    const count = counts[b];
    if (count === 0) continue;
    const start = lo + b * width;
    const end = start + width;
    let first = Math.floor((start - intoLo) / intoWidth);
    const lastBin = Math.min(last, Math.floor((end - intoLo) / intoWidth));
    if (first > lastBin) first = lastBin;
    for (let k = Math.max(0, first); k <= lastBin; k++) {
      const overlap = Math.min(end, intoLo + (k + 1) * intoWidth) - Math.max(start, intoLo + k * intoWidth);
      if (overlap > 0) into[k] += (count * overlap) / width;
    }
  }
}
