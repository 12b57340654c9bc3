// Per-channel L2 norms of an activation: for each index c along `axis`, sqrt of the sum of x²
// over every other position of every batch. Wanda scores a weight by |W_ij| * ||X_j||, with X_j
// the j-th input feature over all tokens (Sun et al. 2023): the norms of a MatMul input along its
// last axis, or of a Conv input along axis 1. State: one float64 sum per channel.
import type { ActivationAccumulator } from './activation-stats.js';
import { channelLayout } from './channel-layout.js';

export class ChannelNorms implements ActivationAccumulator {
  private sums: Float64Array | undefined;
  /** Values folded in per channel (positions times batches). */
  count = 0;

  constructor(
    readonly value: string,
    /** The channel axis; negative counts from the end (-1: the last). */
    readonly axis: number,
  ) {}

  add(data: Float32Array, dims: readonly number[]): void {
    const { channels, inner, outer } = channelLayout(`channel norms of '${this.value}'`, this.axis, dims, this.sums?.length);
    this.sums ??= new Float64Array(channels);
    const sums = this.sums;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        const base = (o * channels + c) * inner;
        let s = 0;
        for (let i = 0; i < inner; i++) {
          const v = data[base + i];
          s += v * v;
        }
        sums[c] += s;
      }
    }
    this.count += outer * inner;
  }

  /** Sum of x² per channel (empty before the first batch). */
  get sumSquares(): Float64Array {
    return this.sums ?? new Float64Array(0);
  }

  /** ||X_c||₂ per channel. */
  norms(): Float64Array {
    return this.sumSquares.map(Math.sqrt);
  }

  get byteSize(): number {
    return this.sums?.byteLength ?? 0;
  }
}
