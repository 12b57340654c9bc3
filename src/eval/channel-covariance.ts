// Running first and second moments of the channels of one activation along one axis: Σx and Σxxᵀ
// over positions (every index but the channel's), from which least-squares compensation fits each
// removed channel as an affine function of the kept ones (methods/prune/lstsq-compensation.ts).
// A conv activation has thousands of positions per sample and neighbouring ones say nearly the
// same, so at most `positionsPerSample` of them are drawn per sample (seeded: runs repeat): memory
// is one C x C float64 matrix and the product C² per drawn position (onnxruntime's Gemm when given
// `ort`, as GramMatrix does).
import { mulberry32 } from '../kernels/random.js';
import type { OrtModule } from '../runtime/ort-types.js';
import type { ActivationAccumulator } from './activation-stats.js';
import { channelLayout } from './channel-layout.js';
import { GramMatrix } from './gram-matrix.js';

export interface ChannelCovarianceOptions {
  /** Positions drawn per sample at most (default 256). */
  positionsPerSample?: number;
  seed?: number;
  /** Products in onnxruntime (else in JS). */
  ort?: OrtModule;
  threads?: number;
}

/** Covariance and means of the channels along `axis` of `value`. */
export class ChannelCovariance implements ActivationAccumulator {
  private sums: Float64Array | undefined;
  private readonly gram: GramMatrix;
  private readonly next: () => number;
  private readonly perSample: number;
  /** Positions folded in. */
  rows = 0;

  constructor(
    readonly value: string,
    readonly axis: number,
    options: ChannelCovarianceOptions = {},
  ) {
    this.perSample = options.positionsPerSample ?? 256;
    this.next = mulberry32(options.seed ?? 0);
    this.gram = new GramMatrix(`${value} (channels)`, options.ort === undefined ? { engine: 'js' } : { ort: options.ort, threads: options.threads });
  }

  async add(data: Float32Array, dims: readonly number[]): Promise<void> {
    const { channels, inner, outer } = channelLayout(`channel covariance of '${this.value}'`, this.axis, dims, this.sums?.length);
    this.sums ??= new Float64Array(channels);
    const positions = outer * inner;
    const samples = Math.max(1, dims[0] ?? 1);
    const wanted = Math.min(positions, this.perSample * samples);
    const chosen = wanted === positions ? Array.from({ length: positions }, (_, i) => i) : this.draw(positions, wanted);
    // Rows [wanted, channels]: one per drawn position (outer block o, inner offset i).
    const rows = new Float32Array(wanted * channels);
    chosen.forEach((p, r) => {
      const o = Math.floor(p / inner);
      const i = p - o * inner;
      const base = o * channels * inner + i;
      for (let c = 0; c < channels; c++) {
        const v = data[base + c * inner];
        rows[r * channels + c] = v;
        (this.sums as Float64Array)[c] += v;
      }
    });
    await this.gram.add(rows, [wanted, channels]);
    this.rows += wanted;
  }

  /** `count` distinct positions of `n` (partial Fisher-Yates), in increasing order. */
  private draw(n: number, count: number): number[] {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(this.next() * (n - i));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order.slice(0, count).sort((a, b) => a - b);
  }

  /** Channel count (0 before the first batch). */
  get channels(): number {
    return this.sums?.length ?? 0;
  }

  means(): Float64Array {
    return (this.sums ?? new Float64Array()).map((s) => s / Math.max(1, this.rows));
  }

  /** The covariance E[xxᵀ] − μμᵀ, [C, C] row-major. */
  covariance(): Float64Array {
    const c = this.channels;
    const mu = this.means();
    const n = Math.max(1, this.rows);
    const second = this.gram.matrix;
    const cov = new Float64Array(c * c);
    for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) cov[i * c + j] = second[i * c + j] / n - mu[i] * mu[j];
    return cov;
  }

  get byteSize(): number {
    return this.gram.byteSize + (this.sums?.byteLength ?? 0);
  }

  release(): Promise<void> {
    return this.gram.release();
  }
}
