// Least-squares compensation of removed channels: the generalisation of mean compensation
// (compensation.ts) that neuron merging and ThiNet-style reconstruction use. A removed channel is
// replaced not by its mean but by its best affine prediction from the channels kept in the same
// activation at the same position, x_drop ≈ Aᵀ·x_keep + c, fitted by ridge regression on the
// calibration samples' covariance. The map is per position, so it commutes with every reader that
// mixes channels linearly (a Conv of group 1 at each kernel tap, Gemm, MatMul, ConvTranspose):
// W_keep' = W_keep + W_drop·Aᵀ per tap and bias' = bias + W_drop·c summed over taps. Exact where a
// removed channel is an affine function of kept ones (up to zero padding at a conv's borders);
// the mean (A = 0) where the kept channels say nothing about it.
import { solveSpd } from '../../kernels/linalg.js';

/** x[dropped[d]] ≈ Σ_k x[kept[k]]·coef[k·D + d] + offset[d]. */
export interface ChannelFit {
  kept: number[];
  dropped: number[];
  /** [K, D] row-major: column d predicts dropped channel d from the kept ones. */
  coef: Float64Array;
  offset: Float64Array;
}

/** Ridge damping as a share of the kept channels' mean variance (a small share: the fit stays near exact where it can be). */
export const LSTSQ_DAMPING = 1e-3;

/**
 * Fits every `dropped` channel from the others, given the channels' covariance [C, C] and means.
 * Solves (Σ_kk + λI)·coef = Σ_kd with λ = damping × mean(diag Σ_kk); the offset makes the fit
 * exact in the mean. Kept channels without variance make A no worse than the mean: λ keeps the
 * system positive definite, and with no variance at all the fit is the mean.
 */
export function fitDroppedChannels(covariance: Float64Array, means: Float64Array, dropped: readonly number[], damping = LSTSQ_DAMPING): ChannelFit {
  const c = means.length;
  const gone = new Set(dropped);
  const kept = Array.from({ length: c }, (_, i) => i).filter((i) => !gone.has(i));
  const K = kept.length;
  const D = dropped.length;
  let trace = 0;
  for (const k of kept) trace += Math.max(0, covariance[k * c + k]);
  const coef = new Float64Array(K * D);
  if (K > 0 && trace > 0) {
    const lambda = (damping * trace) / K;
    const skk = new Float64Array(K * K);
    const skd = new Float64Array(K * D);
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) skk[i * K + j] = covariance[kept[i] * c + kept[j]];
      skk[i * K + i] += lambda;
      for (let d = 0; d < D; d++) skd[i * D + d] = covariance[kept[i] * c + dropped[d]];
    }
    coef.set(solveSpd(skk, K, skd, D));
  }
  const offset = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    let s = means[dropped[d]];
    for (let k = 0; k < K; k++) s -= coef[k * D + d] * means[kept[k]];
    offset[d] = s;
  }
  return { kept, dropped: [...dropped], coef, offset };
}

/** How a reader's weight lays out its input channels. */
export type ReaderLayout =
  /** Conv of group 1: [M, C, taps]. */
  | { kind: 'conv'; outputs: number; taps: number }
  /** ConvTranspose of group 1: [C, M, taps]; each output sees taps / prod(strides) taps of an input on average. */
  | { kind: 'conv-transpose'; outputs: number; taps: number; strides: number }
  /** MatMul [K, N], or Gemm [N, K] when transposed. */
  | { kind: 'matrix'; outputs: number; transposed: boolean };

/**
 * Folds `fit` into a reader's weight (a new array; the dropped channels' weights are left as they
 * are, the rewrite slices them off) and returns the bias change per output.
 */
export function foldFit(layout: ReaderLayout, weight: Float32Array, channels: number, fit: ChannelFit): { weight: Float32Array; bias: Float32Array } {
  const out = Float32Array.from(weight);
  const M = layout.outputs;
  const bias = new Float32Array(M);
  const { kept, dropped, coef, offset } = fit;
  const D = dropped.length;
  // Index of weight element (output o, input channel i, tap t).
  const at =
    layout.kind === 'conv'
      ? (o: number, i: number, t: number) => (o * channels + i) * layout.taps + t
      : layout.kind === 'conv-transpose'
        ? (o: number, i: number, t: number) => (i * M + o) * layout.taps + t
        : layout.transposed
          ? (o: number, i: number) => o * channels + i
          : (o: number, i: number) => i * M + o;
  const taps = layout.kind === 'matrix' ? 1 : layout.taps;
  const share = layout.kind === 'conv-transpose' ? 1 / layout.strides : 1;
  const wd = new Float64Array(D);
  for (let o = 0; o < M; o++) {
    let b = 0;
    for (let t = 0; t < taps; t++) {
      for (let d = 0; d < D; d++) {
        wd[d] = weight[at(o, dropped[d], t)];
        b += wd[d] * offset[d];
      }
      for (let k = 0; k < kept.length; k++) {
        let s = 0;
        const row = k * D;
        for (let d = 0; d < D; d++) s += wd[d] * coef[row + d];
        out[at(o, kept[k], t)] += s;
      }
    }
    bias[o] = b * share;
  }
  return { weight: out, bias };
}
