// XᵀX of an activation: X is the activation seen as rows of its last axis ([rows, K]: every token
// of every sample), summed over all batches. SparseGPT and GPTQ build their Hessian H = 2 XᵀX / n
// from it for each MatMul/Gemm input. The product is the heavy part (rows x K² multiply-adds per
// batch): it runs in onnxruntime as a one-node graph, Gemm(X, X, transA = 1), unless a batch is
// so small that a plain JS loop is quicker (DESIGN.md principle 2); `gramRef` is the slow
// reference it is tested against. Batches are summed in float64; state is one K x K float64 matrix.
import { attr } from '../ir/attribute.js';
import { buildModel, GraphBuilder } from '../ir/builder.js';
import { DataType } from '../ir/dtype.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { ModelSession } from '../runtime/session.js';
import type { ActivationAccumulator } from './activation-stats.js';

/** Adds xᵀx of `x` ([rows, k], row-major) to `into` ([k, k]), in float64: the reference. */
export function gramRef(x: Float32Array, rows: number, k: number, into: Float64Array): void {
  for (let r = 0; r < rows; r++) {
    const base = r * k;
    for (let i = 0; i < k; i++) {
      const xi = x[base + i];
      for (let j = 0; j < k; j++) into[i * k + j] += xi * x[base + j];
    }
  }
}

/** Adds aᵀb of `a` and `b` ([rows, k] each, row-major) to `into` ([k, k]), in float64: the reference. */
export function crossRef(a: Float32Array, b: Float32Array, rows: number, k: number, into: Float64Array): void {
  for (let r = 0; r < rows; r++) {
    const base = r * k;
    for (let i = 0; i < k; i++) {
      const ai = a[base + i];
      for (let j = 0; j < k; j++) into[i * k + j] += ai * b[base + j];
    }
  }
}

/** Rows per onnxruntime call: bounds the float32 sums inside one product and the copy handed over. */
const ROWS_PER_RUN = 4096;

/**
 * Batches of at least this many multiply-adds (rows x K²) go to onnxruntime under 'auto': one
 * session call costs about 20 µs, what JS spends on ~10⁴ of them (onnxruntime-node, 1 thread:
 * K = 120, 1000 rows 0.9 ms against 41 ms in JS; K = 8, 40 rows 0.02 ms against 0.01 ms).
 */
export const ORT_FROM_PRODUCTS = 2 ** 14;

/** XᵀX (and AᵀB) products in onnxruntime: one session with symbolic sizes, shareable by many accumulators. */
export class OrtGram {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: ModelSession,
  ) {}

  static async create(ort: OrtModule, options: { threads?: number } = {}): Promise<OrtGram> {
    const b = new GraphBuilder();
    const left = b.input('a', DataType.FLOAT, ['rows', 'k']);
    const right = b.input('b', DataType.FLOAT, ['rows', 'k']);
    b.node('Gemm', [left, right], [attr.int('transA', 1)], { name: 'atb', outputs: ['gram'] });
    b.output('gram', DataType.FLOAT, ['k', 'k']);
    const model = buildModel(b.graph, [{ domain: '', version: 13 }]);
    return new OrtGram(ort, await ModelSession.create(ort, model, { threads: options.threads }));
  }

  /** Adds xᵀx of `x` ([rows, k]) to `into` ([k, k]). */
  addProduct(x: Float32Array, rows: number, k: number, into: Float64Array): Promise<void> {
    return this.addCross(x, x, rows, k, into);
  }

  /** Adds aᵀb of `a` and `b` ([rows, k] each) to `into` ([k, k]). */
  async addCross(a: Float32Array, b: Float32Array, rows: number, k: number, into: Float64Array): Promise<void> {
    for (let start = 0; start < rows; start += ROWS_PER_RUN) {
      const count = Math.min(ROWS_PER_RUN, rows - start);
      const part = (m: Float32Array) => new this.ort.Tensor('float32', m.subarray(start * k, (start + count) * k), [count, k]);
      const left = part(a);
      const result = await this.session.run({ a: left, b: a === b ? left : part(b) });
      const product = result.gram.data as Float32Array;
      for (let i = 0; i < product.length; i++) into[i] += product[i];
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export interface GramOptions {
  /** Where products run: 'auto' (default: onnxruntime for all but small batches, when given `ort` or `products`), 'ort' or 'js'. */
  engine?: 'auto' | 'ort' | 'js';
  /** onnxruntime module, needed unless engine is 'js'. */
  ort?: OrtModule;
  /** A session to share (released by whoever created it); else one is opened on first need and released with the accumulator. */
  products?: OrtGram;
  threads?: number;
}

export class GramMatrix implements ActivationAccumulator {
  private sum: Float64Array | undefined;
  private k = 0;
  /** Rows folded in (tokens over all batches). */
  rows = 0;
  /** The session this accumulator opened itself (none when given one to share). */
  private owned: Promise<OrtGram> | undefined;

  constructor(
    readonly value: string,
    private readonly options: GramOptions = {},
  ) {}

  async add(data: Float32Array, dims: readonly number[]): Promise<void> {
    const k = dims.length === 0 ? 1 : dims[dims.length - 1];
    if (this.sum === undefined) {
      this.k = k;
      this.sum = new Float64Array(k * k);
    }
    if (k !== this.k) throw new Error(`XᵀX of '${this.value}': last axis has ${k} values in this batch, ${this.k} before`);
    const rows = k === 0 ? 0 : data.length / k;
    const engine = this.options.engine ?? 'auto';
    const small = rows * k * k < ORT_FROM_PRODUCTS;
    if (engine === 'js' || (engine === 'auto' && (small || (this.options.ort === undefined && this.options.products === undefined)))) gramRef(data, rows, k, this.sum);
    else await (await this.session()).addProduct(data, rows, k, this.sum);
    this.rows += rows;
  }

  /** Σ xᵀx as a [K, K] row-major matrix (empty before the first batch). */
  get matrix(): Float64Array {
    return this.sum ?? new Float64Array(0);
  }

  /** K, the width of the last axis (0 before the first batch). */
  get size(): number {
    return this.k;
  }

  get byteSize(): number {
    return this.sum?.byteLength ?? 0;
  }

  async release(): Promise<void> {
    const owned = this.owned;
    this.owned = undefined;
    if (owned !== undefined) await (await owned).release();
  }

  private session(): Promise<OrtGram> {
    if (this.options.products !== undefined) return Promise.resolve(this.options.products);
    const ort = this.options.ort;
    if (ort === undefined) throw new Error(`XᵀX of '${this.value}': engine 'ort' needs the onnxruntime module (options.ort)`);
    this.owned ??= OrtGram.create(ort, { threads: this.options.threads });
    return this.owned;
  }
}
