// MatMul with a constant weight B [K, N] -> com.microsoft MatMulNBits, onnxruntime's weight-only
// kernel (CPU, wasm, WebGPU). Layout, from ORT's ContribOperators.md (checked numerically against
// onnxruntime-node in test/quant-weight-only.test.ts):
//   B            uint8 [N, n_blocks, blob_size], column n of the weight quantized along K,
//                codes packed LSB-first, blob_size = block_size * bits / 8
//   scales       T1 [N * n_blocks] (A's element type)
//   zero_points  uint8 [N * ceil(n_blocks * bits / 8)], each row packed LSB-first; or T1
//                [N * n_blocks] floats; absent means 2^(bits-1) (the symmetric midpoint)
//   Y = A @ ((code - zero_point) * scale)
// Weights in Constant nodes and inside subgraphs are read through constantValue; what cannot be
// converted (weight computed at run time, not 2-D, K not a multiple of the block size) is left as
// it is and named in the report's warnings.
import { addBlocksSqnrTerms, sqnrFromSums } from '../../kernels/sqnr.js';
import { type Progress, silentProgress } from '../../pipeline/progress.js';
import { type Attribute, attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { packRows } from '../../kernels/pack.js';
import { type QuantBits, type ScaleType, isSupportedBlockSize } from '../../kernels/quant-formats.js';
import {
  type QuantizedBlocks,
  type Rounding,
  type ZeroPointType,
  binarizeBlocks,
  quantizeBlocks,
  ternarizeBlocks,
} from '../../kernels/quantize-blocks.js';
import type { Pass } from '../../pipeline/pass.js';
import { buildKQuantWeight } from './matmul-nbits-kquant.js';
import { PassResult } from '../../optimize/util/report.js';
import {
  PerGraphCache,
  type QuantizedTensorReport,
  type WeightQuantReport,
  addTypedConstant,
  becomeMicrosoftOp,
  dropUnreadConstant,
  eligibleMatMuls,
  ensureMicrosoftOpset,
  floatTensor,
  matMulCount,
  storedBytes,
  transposeColumns,
} from './weight-tensors.js';

/** How weights map to codes: linear blocks, or sign-based schemes in the 2-bit format. */
export type WeightScheme = 'linear' | 'ternary' | 'binary';

export interface BlockWeightOptions {
  /** 2, 4 or 8 (ternary and binary always use 2). Default 4. */
  bits?: QuantBits;
  /** Values per block along the quantized axis: 16, 32, 64, 128 or 256. Default 32. */
  blockSize?: number;
  /** Symmetric blocks need no zero points. Default true. */
  symmetric?: boolean;
  rounding?: Rounding;
  /** How scales are stored. float16 scales for a float32 model are stored small and Cast at load. */
  scaleType?: ScaleType;
  scheme?: WeightScheme;
  /** Nodes to leave alone (the report names them as excluded). */
  exclude?: (node: Node, graph: Graph) => boolean;
}

export interface MatMulNBitsOptions extends BlockWeightOptions {
  /** Ticks once per MatMul: the long part of quantizing a large language model. */
  progress?: Progress;
  /** MatMulNBits' accuracy_level (0 unset ... 4 int8 compute); omitted when undefined. */
  accuracyLevel?: number;
  /**
   * Zero points of asymmetric blocks: packed integers, or floats (HQQ's own form, which ORT's
   * MatMulNBits reads for 4 bits). Default 'integer'.
   */
  zeroPointType?: ZeroPointType;
  /**
   * When K is not a multiple of the block size: 'pad' the last block of each column with zeros
   * (MatMulNBits has ceil(K / block_size) blocks and ignores codes past K), or 'skip' the MatMul
   * with a warning. Default 'pad': PP-OCR's attention weights all have K = 120.
   */
  partialBlocks?: 'pad' | 'skip';
  /**
   * Blocks already solved for some weights (GPTQ: codes, scales and zero points of [N, K padded to
   * whole blocks]), by weight name; those weights are packed as given instead of rounded here.
   */
  solved?: ReadonlyMap<string, QuantizedBlocks>;
}

/** Quantizes the rows of a [rows, cols] matrix with the chosen scheme. */
export function quantizeRows(values: Float32Array, rows: number, cols: number, o: Required<Omit<BlockWeightOptions, 'exclude'>>, zeroPointType: ZeroPointType = 'integer'): QuantizedBlocks {
  if (o.scheme === 'ternary') return ternarizeBlocks(values, rows, cols, o.blockSize, o.scaleType);
  if (o.scheme === 'binary') return binarizeBlocks(values, rows, cols, o.blockSize, o.scaleType);
  return quantizeBlocks(values, rows, cols, { bits: o.bits, blockSize: o.blockSize, symmetric: o.symmetric, scaleType: o.scaleType, rounding: o.rounding, zeroPointType });
}

/** Options with defaults filled in, checked once (a bad block size is the caller's error). */
export function resolveBlockOptions(options: BlockWeightOptions): Required<Omit<BlockWeightOptions, 'exclude'>> {
  const scheme = options.scheme ?? 'linear';
  const resolved = {
    bits: scheme === 'linear' ? (options.bits ?? 4) : (2 as QuantBits),
    blockSize: options.blockSize ?? 32,
    symmetric: scheme === 'linear' ? (options.symmetric ?? true) : true,
    rounding: options.rounding ?? 'rtn',
    scaleType: options.scaleType ?? 'float32',
    scheme,
  };
  if (![2, 4, 8].includes(resolved.bits)) throw new Error(`weight quantization: bits must be 2, 4 or 8, got ${resolved.bits}`);
  if (!isSupportedBlockSize(resolved.blockSize)) throw new Error(`weight quantization: block size must be 16, 32, 64, 128 or 256, got ${resolved.blockSize}`);
  return resolved;
}

export interface Replacement {
  inputs: string[];
  report: Omit<QuantizedTensorReport, 'node'>;
}

/** Converts every eligible MatMul in the model (all scopes). */
export function quantizeMatMuls(model: Model, options: MatMulNBitsOptions): WeightQuantReport {
  const o = resolveBlockOptions(options);
  let zeroPointType: ZeroPointType = o.symmetric ? 'integer' : (options.zeroPointType ?? 'integer');
  const result = new PassResult(['matmuls', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter']);
  if (zeroPointType === 'float' && o.bits === 8) {
    // onnxruntime 1.30's CPU MatMulNBits rejects float zero points with 8 bits at run time.
    zeroPointType = 'integer';
    result.warn('float-zero-points-need-2-or-4-bits', 'MatMulNBits reads float zero points for 2 and 4 bits only; 8-bit blocks use integer zero points');
  }
  const tensors: QuantizedTensorReport[] = [];
  // A weight read by several MatMuls of one graph is quantized once.
  const done = new PerGraphCache<Replacement>();
  const progress = options.progress ?? silentProgress;
  progress.start(`${o.bits}-bit MatMul weights`, matMulCount(model));
  for (const { node, graph, weightName, weight, K, N, skip } of eligibleMatMuls(model, result, 'MatMulNBits', options.exclude, () => progress.tick())) {
    if (K % o.blockSize !== 0 && (options.partialBlocks ?? 'pad') === 'skip') {
      skip('block-size-does-not-divide-k', `K = ${K} of weight '${weightName}' is not a multiple of block size ${o.blockSize}`, weightName);
      continue;
    }
    // Rows of the quantized matrix are the columns of B: MatMulNBits blocks run along K.
    const { value: replacement, fresh } = done.get(graph, weightName, () =>
      buildNBitsWeight(model, graph, node, { name: weightName, op: 'MatMul', elemType: weight.tensor.dataType, columns: (first, count) => transposeColumns(weight.values, K, N, first, count), K, N, solved: options.solved?.get(weightName) }, o, zeroPointType),
    );
    if (fresh) {
      result.count('bytesBefore', replacement.report.bytesBefore);
      result.count('bytesAfter', replacement.report.bytesAfter);
    }
    becomeMicrosoftOp(node, 'MatMulNBits', [node.inputs[0], ...replacement.inputs], matMulNBitsAttributes(K, N, o, options.accuracyLevel));
    graph.changed();
    dropUnreadConstant(graph, weightName);
    tensors.push({ ...replacement.report, node: node.label });
    result.count('quantized');
  }
  progress.done();
  if (result.stats.quantized > 0) ensureMicrosoftOpset(model);
  return { ...result.done(), tensors };
}

/** K, N, bits, block_size and, when given, accuracy_level. */
export function matMulNBitsAttributes(K: number, N: number, o: { bits: number; blockSize: number }, accuracyLevel: number | undefined): Attribute[] {
  const attributes = [attr.int('K', K), attr.int('N', N), attr.int('bits', o.bits), attr.int('block_size', o.blockSize)];
  if (accuracyLevel !== undefined) attributes.push(attr.int('accuracy_level', accuracyLevel));
  return attributes;
}

/** A weight to pack for MatMulNBits: its columns (B' transposed, [N, K]) and how to report it. */
export interface NBitsWeight {
  name: string;
  /** The op that read the float weight (MatMul, Gemm). */
  op: string;
  elemType: DataType;
  /**
   * [N, K]: row n holds column n of the weight as the op multiplies it; or a function giving
   * rows `first` to `first + count` of that matrix, so a large weight is transposed a slab at a
   * time instead of held twice.
   */
  columns: Float32Array | ((first: number, count: number) => Float32Array);
  K: number;
  N: number;
  /** Multiplies every scale after quantization (Gemm's alpha); codes and SQNR are unaffected. */
  scaleFactor?: number;
  /** The blocks to pack, already solved (see MatMulNBitsOptions.solved); else rounded here. */
  solved?: QuantizedBlocks;
}

/** Elements quantized per slab (rows of [N, K] at a time): bounds the temporary copies of a weight. */
const SLAB_ELEMENTS = 1 << 22;

/** Packs, scales and zero points of `w` added as constants before `node`; returns the inputs after A. */
export function buildNBitsWeight(
  model: Model,
  graph: Graph,
  node: Node,
  w: NBitsWeight,
  o: Required<Omit<BlockWeightOptions, 'exclude'>>,
  zeroPointType: ZeroPointType,
): Replacement {
  if (o.rounding === 'kquant' && w.solved === undefined && o.scheme === 'linear' && o.bits !== 8) return buildKQuantWeight(model, graph, node, w, o.bits, o.blockSize);
  const { K, N, elemType } = w;
  const weightName = w.name;
  // Columns are zero-padded to whole blocks; the kernel reads codes up to K only.
  const nBlocks = Math.ceil(K / o.blockSize);
  const padded = nBlocks * o.blockSize;
  const slabOf = typeof w.columns === 'function' ? w.columns : (first: number, count: number) => (w.columns as Float32Array).subarray(first * K, (first + count) * K);
  // Blocks run along rows, so the rows of [N, K] quantize independently: a slab at a time.
  const codes = new Uint8Array(N * padded);
  const scaleValues = new Float32Array(N * nBlocks);
  const zeroPointValues = new Float32Array(N * nBlocks);
  const sums = { signal: 0, noise: 0 };
  let symmetric = o.symmetric;
  const rowsPerSlab = Math.max(1, Math.floor(SLAB_ELEMENTS / padded));
  for (let first = 0; first < N; first += rowsPerSlab) {
    const count = Math.min(rowsPerSlab, N - first);
    const slab = slabOf(first, count);
    const rows = padded === K ? slab : padColumns(slab, count, K, padded);
    const q = w.solved === undefined ? quantizeRows(rows, count, padded, o, zeroPointType) : solvedRows(w.solved, first, count, weightName, o);
    codes.set(q.codes, first * padded);
    scaleValues.set(q.scales, first * nBlocks);
    zeroPointValues.set(q.zeroPoints, first * nBlocks);
    addBlocksSqnrTerms(sums, rows, q);
    symmetric = q.symmetric;
  }
  const blob = (o.blockSize * o.bits) / 8;
  const base = `${weightName}_q${o.bits}`;
  const packed = Tensor.fromArray('', DataType.UINT8, [N, nBlocks, blob], packRows(codes, N, padded, o.bits));
  addTypedConstant(model, graph, packed, base, DataType.UINT8, node);
  const factor = w.scaleFactor ?? 1;
  const scales = floatTensor('', factor === 1 ? scaleValues : scaleValues.map((s) => s * factor), [N * nBlocks], o.scaleType);
  const scalesName = addTypedConstant(model, graph, scales, `${weightName}_scales`, elemType, node);
  const inputs = [packed.name, scalesName];
  let zeroBytes = 0;
  if (!symmetric) {
    const zeros =
      zeroPointType === 'float'
        ? floatTensor('', zeroPointValues, [N * nBlocks], o.scaleType)
        : Tensor.fromArray('', DataType.UINT8, [N * Math.ceil((nBlocks * o.bits) / 8)], packRows(zeroPointValues, N, nBlocks, o.bits));
    inputs.push(addTypedConstant(model, graph, zeros, `${weightName}_zero_points`, zeroPointType === 'float' ? elemType : DataType.UINT8, node));
    zeroBytes = zeros.byteLength;
  }
  const bytesBefore = K * N * (elemType === DataType.FLOAT16 ? 2 : 4);
  return {
    inputs,
    report: {
      name: weightName,
      op: w.op,
      bytesBefore,
      bytesAfter: storedBytes(packed, scales) + zeroBytes,
      sqnrDb: sqnrFromSums(sums),
    },
  };
}

/** Rows `first` to `first + count` of solved blocks, checked against the layout being written. */
function solvedRows(solved: QuantizedBlocks, first: number, count: number, name: string, o: { bits: number; blockSize: number; symmetric: boolean }): QuantizedBlocks {
  if (solved.bits !== o.bits || solved.blockSize !== o.blockSize || solved.symmetric !== o.symmetric || solved.zeroPointType !== 'integer') {
    throw new Error(`MatMulNBits: the blocks solved for '${name}' (${solved.bits} bits, block ${solved.blockSize}) do not match the ones written (${o.bits} bits, block ${o.blockSize})`);
  }
  const per = solved.blocksPerRow;
  return {
    ...solved,
    rows: count,
    codes: solved.codes.subarray(first * solved.cols, (first + count) * solved.cols),
    scales: solved.scales.subarray(first * per, (first + count) * per),
    zeroPoints: solved.zeroPoints.subarray(first * per, (first + count) * per),
  };
}

/** [rows, cols] -> [rows, padded] with zeros after each row. */
function padColumns(data: Float32Array, rows: number, cols: number, padded: number): Float32Array {
  const out = new Float32Array(rows * padded);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols, (r + 1) * cols), r * padded);
  return out;
}

export const matMulNBitsPass: Pass<MatMulNBitsOptions> = {
  name: 'matmul-nbits',
  description: 'MatMul with a constant weight -> com.microsoft MatMulNBits (2/4/8-bit blocks along K)',
  run: (model, options) => quantizeMatMuls(model, options),
};
