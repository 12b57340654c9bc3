// MatMul with a constant weight B [K, N] -> com.microsoft MatMulBnb4 (bitsandbytes' 4-bit format:
// NF4 codes, one absmax scale per block), transformers.js's `bnb4` dtype. Layout, from
// onnxruntime's contrib ops (MatMulBnb4, blockwise_quant_block_bnb4.h), checked numerically
// against onnxruntime-node 1.30 in test/transformers-js-target.test.ts:
//   B       uint8 [ceil(N * K / 2)]: the weight transposed to [N, K], flattened, two codes per
//           byte, the first in the high nibble
//   absmax  T1 [ceil(N * K / block_size)]: max |w| of each block of block_size flattened values
//   attributes K, N, block_size (a power of 2, >= 16), quant_type (0 FP4, 1 NF4)
//   w = NF4[code] * absmax
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { float32ToFloat16Bits } from '../../kernels/quant-formats.js';
import type { Pass } from '../../pipeline/pass.js';
import { sqnrDb } from '../../kernels/sqnr.js';
import { PassResult } from '../../optimize/util/report.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { type QuantizedTensorReport, type WeightQuantReport, becomeMicrosoftOp, dropUnreadConstant, eligibleMatMuls, ensureMicrosoftOpset } from './weight-tensors.js';

/** bitsandbytes' NormalFloat4 levels (quantiles of a unit normal, scaled to [-1, 1]). */
export const NF4_LEVELS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534,
  0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

export interface MatMulBnb4Options {
  /** Values per absmax block of the flattened [N, K] weight: a power of 2, >= 16. Default 64. */
  blockSize?: number;
  exclude?: (node: Node, graph: Graph) => boolean;
}

/** The nearest NF4 level of x (|x| <= 1). */
function nf4Code(x: number): number {
  let best = 0;
  let bestError = Infinity;
  for (let c = 0; c < 16; c++) {
    const error = Math.abs(NF4_LEVELS[c] - x);
    if (error < bestError) {
      bestError = error;
      best = c;
    }
  }
  return best;
}

/** NF4 codes and absmax of a [K, N] weight in MatMulBnb4's layout, and the values they decode to. */
export function quantizeBnb4(values: Float32Array, K: number, N: number, blockSize: number): { packed: Uint8Array; absmax: Float32Array; decoded: Float32Array } {
  const count = K * N;
  const transposed = new Float32Array(count);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) transposed[n * K + k] = values[k * N + n];
  const blocks = Math.ceil(count / blockSize);
  const absmax = new Float32Array(blocks);
  const packed = new Uint8Array(Math.ceil(count / 2));
  const decoded = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(count, (b + 1) * blockSize);
    let max = 0;
    for (let i = b * blockSize; i < end; i++) max = Math.max(max, Math.abs(transposed[i]));
    absmax[b] = max;
    for (let i = b * blockSize; i < end; i++) {
      const code = max === 0 ? 7 : nf4Code(transposed[i] / max);
      packed[i >> 1] |= i % 2 === 0 ? code << 4 : code;
      decoded[(i % K) * N + Math.floor(i / K)] = NF4_LEVELS[code] * max;
    }
  }
  return { packed, absmax, decoded };
}

/** Converts every MatMul with a constant 2-D float weight (all scopes) to MatMulBnb4. */
export function quantizeMatMulsBnb4(model: Model, options: MatMulBnb4Options = {}): WeightQuantReport {
  const blockSize = options.blockSize ?? 64;
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`bnb4: block size must be a power of 2 of at least 16, got ${blockSize}`);
  const result = new PassResult(['matmuls', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter']);
  const tensors: QuantizedTensorReport[] = [];
  const done = new Map<Graph, Map<string, string[]>>();
  for (const { node, graph, weightName, weight, K, N } of eligibleMatMuls(model, result, 'MatMulBnb4', options.exclude)) {
    const elemType = weight.tensor.dataType;
    let inputs = done.get(graph)?.get(weightName);
    if (inputs === undefined) {
      const q = quantizeBnb4(weight.values, K, N, blockSize);
      const packed = Tensor.fromArray(graph.uniqueName(`${weightName}_bnb4`), DataType.UINT8, [q.packed.length], q.packed);
      const absmax =
        elemType === DataType.FLOAT16
          ? Tensor.fromArray(graph.uniqueName(`${weightName}_absmax`), DataType.FLOAT16, [q.absmax.length], Uint16Array.from(q.absmax, (v) => float32ToFloat16Bits(v)))
          : Tensor.fromArray(graph.uniqueName(`${weightName}_absmax`), DataType.FLOAT, [q.absmax.length], q.absmax);
      addConstant(model, graph, packed, node);
      addConstant(model, graph, absmax, node);
      inputs = [packed.name, absmax.name];
      if (!done.has(graph)) done.set(graph, new Map());
      done.get(graph)?.set(weightName, inputs);
      const report = { name: weightName, op: 'MatMul', node: node.label, bytesBefore: weight.tensor.byteLength, bytesAfter: packed.byteLength + absmax.byteLength, sqnrDb: sqnrDb(weight.values, q.decoded) };
      tensors.push(report);
      result.count('bytesBefore', report.bytesBefore);
      result.count('bytesAfter', report.bytesAfter);
    }
    becomeMicrosoftOp(node, 'MatMulBnb4', [node.inputs[0], ...inputs], [attr.int('K', K), attr.int('N', N), attr.int('block_size', blockSize), attr.int('quant_type', 1)]);
    ensureMicrosoftOpset(model);
    graph.changed();
    dropUnreadConstant(graph, weightName);
    result.count('quantized');
  }
  const pass = result.done();
  return { stats: pass.stats, warnings: pass.warnings, tensors };
}

export const matMulBnb4Pass: Pass<MatMulBnb4Options> = {
  name: 'matmul-bnb4',
  description: 'MatMul weights as bitsandbytes NF4 blocks (com.microsoft MatMulBnb4)',
  run: (model, options) => quantizeMatMulsBnb4(model, options),
};
