// Per-channel sum and largest |x| of an activation along one axis, over every other position of
// every batch: SmoothQuant's max|X_j| per input feature (a MatMul input's last axis), and bias
// correction's mean of each output channel (a Conv output's axis 1, a MatMul/Gemm output's last).
// State: two float64 values per channel.
import type { ActivationAccumulator } from './activation-stats.js';
import { channelLayout } from './channel-layout.js';

export class ChannelStats implements ActivationAccumulator {
  private sums: Float64Array | undefined;
  private maxima: Float64Array | undefined;
  /** Values folded in per channel (positions times batches). */
  count = 0;

  constructor(
    readonly value: string,
    /** The channel axis; negative counts from the end (-1: the last). */
    readonly axis: number,
  ) {}

  add(data: Float32Array, dims: readonly number[]): void {
    const { channels, inner, outer } = channelLayout(`channel statistics of '${this.value}'`, this.axis, dims, this.sums?.length);
    this.sums ??= new Float64Array(channels);
    this.maxima ??= new Float64Array(channels);
    const { sums, maxima } = this;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        const base = (o * channels + c) * inner;
        let s = 0;
        let m = maxima[c];
        for (let i = 0; i < inner; i++) {
          const v = data[base + i];
          s += v;
          const a = Math.abs(v);
          if (a > m) m = a;
        }
        sums[c] += s;
        maxima[c] = m;
      }
    }
    this.count += outer * inner;
  }

  /** Mean per channel (empty before the first batch). */
  means(): Float64Array {
    const n = this.count;
    return (this.sums ?? new Float64Array(0)).map((s) => s / n);
  }

  /** Largest |x| per channel (empty before the first batch). */
  absMax(): Float64Array {
    return this.maxima ?? new Float64Array(0);
  }

  get byteSize(): number {
    return (this.sums?.byteLength ?? 0) * 2;
  }
}
