// A convolution's input seen as the matrix the convolution multiplies its weights with: one row
// per output position of every sample, one column per (kernel position, input channel) — the
// order in which the one-shot pruners lay out a Conv weight [M, C, k...] as [M, k... x C], so that
// N:M runs cover consecutive input channels at one kernel position, as the N:M pass prunes them.
// Padding contributes zeros. Rows go to an inner accumulator (GramMatrix for SparseGPT's XᵀX,
// ChannelNorms on the last axis for Wanda's ‖X_j‖) a chunk at a time, so a large feature map never
// exists unfolded in full. Group 1 only: a grouped Conv multiplies each group with its own slice.
import type { ActivationAccumulator } from './activation-stats.js';

/** The geometry of a Conv (group 1), as ONNX states it: spatial sizes only. */
export interface ConvGeometry {
  kernel: readonly number[];
  strides: readonly number[];
  dilations: readonly number[];
  /** Begin pads of every spatial axis, then end pads (ONNX's order); ignored unless autoPad is NOTSET. */
  pads: readonly number[];
  autoPad: 'NOTSET' | 'VALID' | 'SAME_UPPER' | 'SAME_LOWER';
}

/** Output size and begin pad of one spatial axis. */
export function convAxis(size: number, g: ConvGeometry, axis: number): { out: number; begin: number } {
  const k = g.kernel[axis];
  const s = g.strides[axis] ?? 1;
  const d = g.dilations[axis] ?? 1;
  const span = d * (k - 1) + 1;
  if (g.autoPad === 'VALID') return { out: Math.floor((size - span) / s) + 1, begin: 0 };
  if (g.autoPad === 'SAME_UPPER' || g.autoPad === 'SAME_LOWER') {
    const out = Math.ceil(size / s);
    const total = Math.max(0, (out - 1) * s + span - size);
    return { out, begin: g.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2) };
  }
  const rank = g.kernel.length;
  const begin = g.pads[axis] ?? 0;
  const end = g.pads[axis + rank] ?? 0;
  return { out: Math.floor((size + begin + end - span) / s) + 1, begin };
}

/** Rows handed to the inner accumulator at once (bounds the unfolded copy). */
const ROWS_PER_CHUNK = 2048;

export class Im2colRows implements ActivationAccumulator {
  constructor(
    private readonly inner: ActivationAccumulator,
    private readonly geometry: ConvGeometry,
  ) {}

  get value(): string {
    return this.inner.value;
  }

  get byteSize(): number {
    return this.inner.byteSize;
  }

  release(): Promise<void> {
    return this.inner.release?.() ?? Promise.resolve();
  }

  async add(data: Float32Array, dims: readonly number[]): Promise<void> {
    for (const chunk of im2colChunks(data, dims, this.geometry, ROWS_PER_CHUNK)) await this.inner.add(chunk.rows, [chunk.count, chunk.width]);
  }
}

/** The unfolded rows of `data` [N, C, spatial...], `perChunk` rows at a time. */
export function* im2colChunks(data: Float32Array, dims: readonly number[], g: ConvGeometry, perChunk: number): Generator<{ rows: Float32Array; count: number; width: number }> {
  const rank = g.kernel.length;
  if (dims.length !== rank + 2) throw new Error(`im2col: input dims [${dims.join(',')}] do not fit a ${rank}-d convolution`);
  const [batch, channels] = dims;
  const spatial = dims.slice(2);
  const axes = spatial.map((size, a) => convAxis(size, g, a));
  const outputs = axes.reduce((n, a) => n * a.out, 1);
  const positions = g.kernel.reduce((n, k) => n * k, 1);
  const width = positions * channels;
  const plane = spatial.reduce((n, s) => n * s, 1);
  const total = batch * outputs;
  const out = new Array<number>(rank);
  const pos = new Array<number>(rank);
  for (let start = 0; start < total; start += perChunk) {
    const count = Math.min(perChunk, total - start);
    const rows = new Float32Array(count * width);
    for (let r = 0; r < count; r++) {
      const row = start + r;
      const n = Math.floor(row / outputs);
      let rest = row % outputs;
      for (let a = rank - 1; a >= 0; a--) {
        out[a] = rest % axes[a].out;
        rest = Math.floor(rest / axes[a].out);
      }
      for (let p = 0; p < positions; p++) {
        let q = p;
        for (let a = rank - 1; a >= 0; a--) {
          pos[a] = q % g.kernel[a];
          q = Math.floor(q / g.kernel[a]);
        }
        // Offset of this input position inside one channel's plane, or -1 in the padding.
        let offset = 0;
        for (let a = 0; a < rank; a++) {
          const i = out[a] * (g.strides[a] ?? 1) + pos[a] * (g.dilations[a] ?? 1) - axes[a].begin;
          if (i < 0 || i >= spatial[a]) {
            offset = -1;
            break;
          }
          offset = offset * spatial[a] + i;
        }
        if (offset < 0) continue;
        const base = r * width + p * channels;
        const source = n * channels * plane + offset;
        for (let c = 0; c < channels; c++) rows[base + c] = data[source + c * plane];
      }
    }
    yield { rows, count, width };
  }
}
