// kernels/matrix-products.ts on onnxruntime: one-node graphs with symbolic sizes (Gemm, and
// Slice + Gemm for products of two row ranges of one matrix), so MLAS does the multiply-adds
// (~50-75 GFLOP/s on 2 cores against ~1 for JS loops). onnxruntime-node reads input arrays in
// place (a 1 GiB input costs 0.1 ms per run), so whole matrices go in and the slices are taken in the graph.
import { attr } from '../ir/attribute.js';
import { buildModel, GraphBuilder } from '../ir/builder.js';
import { DataType } from '../ir/dtype.js';
import type { MatrixProducts } from '../kernels/matrix-products.js';
import type { OrtModule } from './ort-types.js';
import { ModelSession } from './session.js';

export class OrtMatrixProducts implements MatrixProducts {
  private constructor(
    private readonly ort: OrtModule,
    private readonly plain: ModelSession,
    private readonly transposed: ModelSession,
    private readonly prefix: ModelSession,
  ) {}

  static async create(ort: OrtModule, options: { threads?: number; spinning?: boolean } = {}): Promise<OrtMatrixProducts> {
    const gemm = async (transA: number) => {
      const b = new GraphBuilder();
      const x = b.input('a', DataType.FLOAT, transA ? ['k', 'm'] : ['m', 'k']);
      const y = b.input('b', DataType.FLOAT, ['k', 'n']);
      b.node('Gemm', [x, y], [attr.int('transA', transA)], { name: 'product', outputs: ['c'] });
      b.output('c', DataType.FLOAT, ['m', 'n']);
      return ModelSession.create(ort, buildModel(b.graph, [{ domain: '', version: 13 }]), { threads: options.threads, spinning: options.spinning });
    };
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['rows', 'cols']);
    const starts = [b.input('a_starts', DataType.INT64, [2]), b.input('b_starts', DataType.INT64, [2])];
    const ends = [b.input('a_ends', DataType.INT64, [2]), b.input('b_ends', DataType.INT64, [2])];
    const [left] = b.node('Slice', [x, starts[0], ends[0]], [], { name: 'slice_a', outputs: ['left'] });
    const [right] = b.node('Slice', [x, starts[1], ends[1]], [], { name: 'slice_b', outputs: ['right'] });
    b.node('Gemm', [left, right], [attr.int('transB', 1)], { name: 'product', outputs: ['c'] });
    b.output('c', DataType.FLOAT, ['m', 'n']);
    const prefix = await ModelSession.create(ort, buildModel(b.graph, [{ domain: '', version: 13 }]), { threads: options.threads, spinning: options.spinning });
    return new OrtMatrixProducts(ort, await gemm(0), await gemm(1), prefix);
  }

  async matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transposeA = false): Promise<Float32Array> {
    const session = transposeA ? this.transposed : this.plain;
    const result = await session.run({
      a: new this.ort.Tensor('float32', a, transposeA ? [k, m] : [m, k]),
      b: new this.ort.Tensor('float32', b, [k, n]),
    });
    return result.c.data as Float32Array;
  }

  async prefixProduct(x: Float32Array, rows: number, cols: number, r0: number, r1: number, s0: number, s1: number, p: number): Promise<Float32Array> {
    const pair = (a: number, b: number) => new this.ort.Tensor('int64', BigInt64Array.from([BigInt(a), BigInt(b)]), [2]);
    const result = await this.prefix.run({
      x: new this.ort.Tensor('float32', x, [rows, cols]),
      a_starts: pair(r0, 0),
      a_ends: pair(r1, p),
      b_starts: pair(s0, 0),
      b_ends: pair(s1, p),
    });
    return result.c.data as Float32Array;
  }

  async release(): Promise<void> {
    await Promise.all([this.plain.release(), this.transposed.release(), this.prefix.release()]);
  }
}
