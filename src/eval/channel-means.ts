// Running per-channel mean of one activation along one axis, of its values or of their magnitudes:
// channel mean compensation folds the first into biases, activation importance ranks channels by
// the second.
import type { ActivationAccumulator } from './activation-stats.js';
import { channelLayout } from './channel-layout.js';

export class ChannelMeans implements ActivationAccumulator {
  sums: Float64Array | undefined;
  count = 0;
  constructor(
    readonly value: string,
    readonly axis: number,
    /** Average |x| instead of x. */
    readonly absolute = false,
  ) {}
  add(data: Float32Array, dims: readonly number[]): void {
    const { channels, inner, outer } = channelLayout(`channel means of '${this.value}'`, this.axis, dims, this.sums?.length);
    this.sums ??= new Float64Array(channels);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        let s = 0;
        const base = (o * channels + c) * inner;
        if (this.absolute) for (let i = 0; i < inner; i++) s += Math.abs(data[base + i]);
        else for (let i = 0; i < inner; i++) s += data[base + i];
        this.sums[c] += s;
      }
    }
    this.count += outer * inner;
  }
  get byteSize(): number {
    return (this.sums?.length ?? 0) * 8;
  }
  means(): Float64Array {
    return (this.sums ?? new Float64Array()).map((s) => s / Math.max(1, this.count));
  }
}
