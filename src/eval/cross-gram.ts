// The statistics of asymmetric calibration: a layer of a changed model reads X̃ (its input in the
// model as changed so far), the same layer of the reference model reads X, and its weights are
// fitted so that its outputs on X̃ match the reference's on X. That needs, besides X̃ᵀX̃, the
// cross product X̃ᵀX over the same rows: the same samples, the same positions. The reference's
// activations are recorded first, batch by batch (ActivationRecorder); the changed model's run
// then pairs each of its batches with the recorded one (CrossGram), unfolded the same way for a
// convolution (im2col.ts), so row r of both matrices is the same output position of one sample.
import type { ActivationAccumulator } from './activation-stats.js';
import { crossRef, gramRef, ORT_FROM_PRODUCTS, type OrtGram } from './gram-matrix.js';
import { type ConvGeometry, im2colChunks } from './im2col.js';

/** Keeps a copy of every batch of one activation, in the order they come. */
export class ActivationRecorder implements ActivationAccumulator {
  readonly batches: { data: Float32Array; dims: number[] }[] = [];
  byteSize = 0;

  constructor(
    readonly value: string,
    /** Bytes left to keep, shared by the recorders of one run; past it `add` throws `tooLarge`. */
    private readonly budget: { bytes: number },
    private readonly tooLarge: string,
  ) {}

  add(data: Float32Array, dims: readonly number[]): void {
    this.byteSize += data.byteLength;
    this.budget.bytes -= data.byteLength;
    if (this.budget.bytes < 0) throw new Error(this.tooLarge);
    this.batches.push({ data: data.slice(), dims: [...dims] });
  }
}

/** Rows unfolded at a time for a convolution (bounds the two copies). */
const ROWS_PER_CHUNK = 2048;

/**
 * X̃ᵀX̃ and X̃ᵀX over the rows of an activation (its last axis, or a convolution's unfolded input).
 * With `intercept`, both rows get a last feature that is always 1 (the matrices are [K + 1]²), so
 * a fit on them has a bias.
 */
export class CrossGram implements ActivationAccumulator {
  private sums: { gram: Float64Array; cross: Float64Array; k: number; ours: Float64Array; theirs: Float64Array; rows: number } | undefined;
  private batch = 0;

  constructor(
    readonly value: string,
    private readonly reference: ActivationRecorder,
    private readonly geometry: ConvGeometry | undefined,
    private readonly products: OrtGram | undefined,
    private readonly intercept = false,
  ) {}

  get byteSize(): number {
    return this.sums === undefined ? 0 : 2 * this.sums.gram.byteLength;
  }

  /** Σ x̃x̃ᵀ, [K, K] row-major (empty before the first batch). */
  get gram(): Float64Array {
    return this.withIntercept('gram');
  }

  /** Σ x̃xᵀ: entry [i, j] sums x̃_i · x_j (empty before the first batch). */
  get cross(): Float64Array {
    return this.withIntercept('cross');
  }

  private withIntercept(which: 'gram' | 'cross'): Float64Array {
    const sums = this.sums;
    if (sums === undefined) return new Float64Array(0);
    if (!this.intercept) return sums[which];
    const k = sums.k;
    const out = new Float64Array((k + 1) * (k + 1));
    for (let i = 0; i < k; i++) out.set(sums[which].subarray(i * k, (i + 1) * k), i * (k + 1));
    // Row k is the constant feature of our rows, column k that of the paired rows.
    const last = which === 'gram' ? sums.ours : sums.theirs;
    for (let i = 0; i < k; i++) {
      out[i * (k + 1) + k] = sums.ours[i];
      out[k * (k + 1) + i] = last[i];
    }
    out[k * (k + 1) + k] = sums.rows;
    return out;
  }

  async add(data: Float32Array, dims: readonly number[]): Promise<void> {
    const recorded = this.reference.batches[this.batch];
    this.batch += 1;
    if (recorded === undefined) throw new Error(`asymmetric calibration of '${this.value}': batch ${this.batch} has no batch of the reference model to pair with`);
    if (recorded.dims.join(',') !== dims.join(',')) throw new Error(`asymmetric calibration of '${this.value}': batch ${this.batch} is [${dims.join(',')}] here but [${recorded.dims.join(',')}] in the reference model`);
    if (this.geometry === undefined) {
      const k = dims.length === 0 ? 1 : dims[dims.length - 1];
      await this.fold(data, recorded.data, k === 0 ? 0 : data.length / k, k);
      return;
    }
    const ours = im2colChunks(data, dims, this.geometry, ROWS_PER_CHUNK);
    const theirs = im2colChunks(recorded.data, recorded.dims, this.geometry, ROWS_PER_CHUNK);
    for (const chunk of ours) {
      const other = theirs.next().value as { rows: Float32Array };
      await this.fold(chunk.rows, other.rows, chunk.count, chunk.width);
    }
  }

  private async fold(x: Float32Array, reference: Float32Array, rows: number, k: number): Promise<void> {
    this.sums ??= { gram: new Float64Array(k * k), cross: new Float64Array(k * k), k, ours: new Float64Array(k), theirs: new Float64Array(k), rows: 0 };
    const { gram, cross, ours, theirs } = this.sums;
    if (k !== this.sums.k) throw new Error(`asymmetric calibration of '${this.value}': ${k} features in this batch, ${this.sums.k} before`);
    if (this.intercept) {
      for (let r = 0; r < rows; r++) {
        for (let i = 0; i < k; i++) {
          ours[i] += x[r * k + i];
          theirs[i] += reference[r * k + i];
        }
      }
      this.sums.rows += rows;
    }
    if (this.products === undefined || rows * k * k < ORT_FROM_PRODUCTS) {
      gramRef(x, rows, k, gram);
      crossRef(x, reference, rows, k, cross);
    } else {
      await this.products.addProduct(x, rows, k, gram);
      await this.products.addCross(x, reference, rows, k, cross);
    }
  }
}
