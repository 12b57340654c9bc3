// Each run's own per-channel mean of an activation along one axis, kept run by run: bias correction
// (methods/quantize/bias-correction.ts) pairs a float and a quantized model's runs over the same
// samples, so it sees how much the int8 shift of a channel varies from sample to sample, and how
// sure its mean is. State: one float64 per channel per run (PP-OCRv4 det, 8 pages: at most 8 x 512).
import type { ActivationAccumulator } from './activation-stats.js';
import { channelLayout } from './channel-layout.js';

export class ChannelRunMeans implements ActivationAccumulator {
  /** One array of per-channel means per run (batch), in the order the runs came. */
  readonly runs: Float64Array[] = [];
  /** Values each run's means are over (positions times samples): a short last batch weighs less. */
  readonly counts: number[] = [];

  constructor(
    readonly value: string,
    /** The channel axis; negative counts from the end (-1: the last). */
    readonly axis: number,
    /** Values are clamped to this interval before they are summed (what a reader with dead zones sees). */
    readonly window?: { min: number; max: number },
  ) {}

  add(data: Float32Array, dims: readonly number[]): void {
    const { channels, inner, outer } = channelLayout(`channel run means of '${this.value}'`, this.axis, dims, this.runs[0]?.length);
    const sums = new Float64Array(channels);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        const base = (o * channels + c) * inner;
        let s = 0;
        if (this.window === undefined) for (let i = 0; i < inner; i++) s += data[base + i];
        else {
          const { min, max } = this.window;
          for (let i = 0; i < inner; i++) s += Math.min(max, Math.max(min, data[base + i]));
        }
        sums[c] += s;
      }
    }
    const count = outer * inner;
    this.runs.push(sums.map((s) => s / count));
    this.counts.push(count);
  }

  get byteSize(): number {
    return this.runs.reduce((n, r) => n + r.byteLength, 0);
  }
}
