// onnxruntime as BLAS for the matrix kernels: two one-node graphs with symbolic sizes,
// MatMul(a, x) and Gemm(a, y, transA = 1), opened once and shared by every matrix of a run. A
// `MatrixOperator` over one weight (kernels/svd.ts) sends its products here, in float64 like the
// rest of the SVD.
//
// Measured on this machine (AMD EPYC, 2 cores shared, onnxruntime-node 1.30, 1 thread; one
// product A X, median of 5): 120x360 by 40 columns 4.4 ms in JS, 0.12 ms in onnxruntime;
// 784x256 by 74: 37 ms / 1.0 ms; 1024x1024 by 138: 361 ms / 7.0 ms (float32 in onnxruntime
// 3.8 ms: not worth the rounding); 64x64 by 20: 0.30 / 0.25 ms; 10x128 by 20: 0.17 / 0.06 ms.
// Whole randomized SVDs at rank 64 (6 products, the rest in JS): 784x256 332 -> 119 ms,
// 1024x1024 at rank 128 2966 -> 826 ms. So products run in onnxruntime whenever one is given
// ('auto'), JS loops only for products under ~10⁵ multiply-adds, where they tie.
import { attr } from '../ir/attribute.js';
import { buildModel, GraphBuilder } from '../ir/builder.js';
import { DataType } from '../ir/dtype.js';
import { jsOperator, type MatrixOperator, type Products } from '../kernels/svd.js';
import type { OrtModule } from './ort-types.js';
import { ModelSession } from './session.js';

export type ProductEngine = 'auto' | 'ort' | 'js';

/**
 * Products of at least this many multiply-adds (m · n · sketch width) run in onnxruntime under
 * 'auto'; smaller ones stay in JS, where a call costs less than onnxruntime's fixed overhead.
 */
export const ORT_FROM_MULTIPLY_ADDS = 1e5;

export class OrtProducts {
  private constructor(
    private readonly ort: OrtModule,
    private readonly matmul: ModelSession,
    private readonly transposed: ModelSession,
  ) {}

  static async create(ort: OrtModule, options: { threads?: number } = {}): Promise<OrtProducts> {
    const sessions = await Promise.all([false, true].map(async (transA) => {
      const b = new GraphBuilder();
      const a = b.input('a', DataType.DOUBLE, ['m', 'n']);
      const x = b.input('x', DataType.DOUBLE, [transA ? 'm' : 'n', 'l']);
      if (transA) b.node('Gemm', [a, x], [attr.int('transA', 1)], { name: 'aty', outputs: ['y'] });
      else b.node('MatMul', [a, x], [], { name: 'ax', outputs: ['y'] });
      b.output('y', DataType.DOUBLE, [transA ? 'n' : 'm', 'l']);
      return ModelSession.create(ort, buildModel(b.graph, [{ domain: '', version: 13 }]), { threads: options.threads });
    }));
    return new OrtProducts(ort, sessions[0], sessions[1]);
  }

  /** Products with `a` ([m, n] row-major) in onnxruntime, in float64. */
  operator(a: ArrayLike<number>, m: number, n: number): MatrixOperator {
    if (a.length !== m * n) throw new Error(`products: ${a.length} values for a ${m} x ${n} matrix`);
    const { ort } = this;
    const weight = new ort.Tensor('float64', a instanceof Float64Array ? a : Float64Array.from(a), [m, n]);
    const run = async (session: ModelSession, x: Float64Array, rows: number, l: number) => {
      const out = await session.run({ a: weight, x: new ort.Tensor('float64', x, [rows, l]) });
      return out.y.data as Float64Array;
    };
    return {
      rows: m,
      cols: n,
      times: (x, l) => run(this.matmul, x, n, l),
      transposeTimes: (y, l) => run(this.transposed, y, m, l),
      products: this.products,
    };
  }

  /** General float64 products through the same two sessions (A B and Aᵀ B). */
  readonly products: Products = {
    multiply: (a, m, k, b, n) => this.product(this.matmul, a, [m, k], b, [k, n]),
    transposeMultiply: (a, m, k, b, n) => this.product(this.transposed, a, [m, k], b, [m, n]),
  };

  private async product(session: ModelSession, a: Float64Array, aDims: number[], b: Float64Array, bDims: number[]): Promise<Float64Array> {
    const { ort } = this;
    const out = await session.run({ a: new ort.Tensor('float64', a, aDims), x: new ort.Tensor('float64', b, bDims) });
    return out.y.data as Float64Array;
  }

  async release(): Promise<void> {
    await this.matmul.release();
    await this.transposed.release();
  }
}

/**
 * The operator for a weight of `m` x `n` values and sketches of about `width` columns:
 * onnxruntime's when `engine` says so (or, for 'auto', when `products` is given and the products
 * are big enough to repay a session call), else plain float64 JS.
 */
export function productsFor(engine: ProductEngine, products: OrtProducts | undefined, a: ArrayLike<number>, m: number, n: number, width: number): { operator: MatrixOperator; engine: 'ort' | 'js' } {
  if (engine === 'ort' && products === undefined) throw new Error('products: the onnxruntime engine needs an OrtProducts session');
  const big = m * n * Math.min(width, m, n) >= ORT_FROM_MULTIPLY_ADDS;
  return products !== undefined && (engine === 'ort' || (engine === 'auto' && big)) ? { operator: products.operator(a, m, n), engine: 'ort' } : { operator: jsOperator(a, m, n), engine: 'js' };
}
