// The two-level (k-quant) layout for MatMulNBits: `--rounding kquant`. The codes are MatMulNBits'
// own (B uint8 [N, n_blocks, blob]); its scales and float zero points are not stored as floats
// but computed by a small graph of standard ops from integer codes, which onnxruntime folds into
// constants when the session loads (graph optimization 'basic' and up):
//   B          uint8 [N, n_blocks, blob]: the codes, as MatMulNBits stores them
//   A          uint8 [N, P]: per block, sc | (mc mod 2^(8 - scale_bits)) << scale_bits
//   M          uint8 [N * P / 2] (6-bit mins only): the min's high bits, 4-bit pairs LSB-first
//   d, dmin    float16 [N, G, 1]: one scale for the block scales and one for the block mins
//              per super-block of S blocks (G = P / S super-blocks per row, P blocks padded)
//   scales      = Cast(sc) * Cast(d)           (float32, as quantize-kquant.ts computes them)
//   zero_points = (Cast(mc) * Cast(dmin)) / scales
// so value = (code - zero_point) * scale = code * d * sc - dmin * mc, ggml's Q4_K/Q2_K form:
// 4 bits: block 32, 6-bit scales and mins, 8 blocks a super-block: 4.5 bits per weight;
// 2 bits: block 16, 4-bit scales and mins, 32 blocks a super-block: 2.5625 bits per weight.
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addBlocksSqnrTerms, sqnrFromSums } from '../../kernels/sqnr.js';
import { packRows } from '../../kernels/pack.js';
import type { QuantBits } from '../../kernels/quant-formats.js';
import { type KQuantBlocks, type KQuantOptions, kquantBlocks } from '../../kernels/quantize-kquant.js';
import type { NBitsWeight, Replacement } from './matmul-nbits.js';
import { addTypedConstant, floatTensor, storedBytes } from './weight-tensors.js';

/** The layout per width: Q4_K's and Q2_K's budgets (block size is the option's). */
export function kquantLayout(bits: QuantBits, blockSize: number): Omit<KQuantOptions, 'importance' | 'steps'> {
  if (bits === 4) return { bits, blockSize, superBlock: Math.max(1, 256 / blockSize), scaleBits: 6, minBits: 6, superScaleType: 'float16' };
  if (bits === 2) return { bits, blockSize, superBlock: Math.max(1, 512 / blockSize), scaleBits: 4, minBits: 4, superScaleType: 'float16' };
  throw new Error(`kquant: two-level scales are for 2 and 4 bits, not ${bits}`);
}

/** Elements quantized per slab (rows of [N, K] at a time), as buildNBitsWeight. */
const SLAB_ELEMENTS = 1 << 22;

/** Codes, block codes and super-block scales of `w` added before `node`; returns MatMulNBits' inputs after A. */
export function buildKQuantWeight(model: Model, graph: Graph, node: Node, w: NBitsWeight, bits: QuantBits, blockSize: number): Replacement {
  const { K, N } = w;
  const layout = kquantLayout(bits, blockSize);
  const nBlocks = Math.ceil(K / blockSize);
  const padded = nBlocks * blockSize;
  const groups = Math.ceil(nBlocks / layout.superBlock);
  const P = groups * layout.superBlock;
  const slabOf = typeof w.columns === 'function' ? w.columns : (first: number, count: number) => (w.columns as Float32Array).subarray(first * K, (first + count) * K);
  const codes = new Uint8Array(N * padded);
  const scaleCodes = new Uint8Array(N * P);
  const minCodes = new Uint8Array(N * P);
  const superScales = new Float32Array(N * groups);
  const superMins = new Float32Array(N * groups);
  const sums = { signal: 0, noise: 0 };
  const rowsPerSlab = Math.max(1, Math.floor(SLAB_ELEMENTS / padded));
  for (let first = 0; first < N; first += rowsPerSlab) {
    const count = Math.min(rowsPerSlab, N - first);
    const slab = slabOf(first, count);
    const rows = padded === K ? slab : padRows(slab, count, K, padded);
    const q: KQuantBlocks = kquantBlocks(rows, count, padded, layout);
    codes.set(q.codes, first * padded);
    scaleCodes.set(q.scaleCodes, first * P);
    minCodes.set(q.minCodes, first * P);
    superScales.set(q.superScales, first * groups);
    superMins.set(q.superMins, first * groups);
    addBlocksSqnrTerms(sums, rows, q);
  }
  const base = `${w.name}_q${bits}k`;
  const before = () => graph.nodes.indexOf(node);
  const add = (opType: string, inputs: string[], name: string, attributes = [] as ReturnType<typeof attr.int>[]) => {
    const output = graph.uniqueName(`${base}_${name}`);
    graph.addNode(new Node({ opType, inputs, outputs: [output], name: graph.uniqueName(`${base}_${name}_${opType}`), attributes }), before());
    return output;
  };
  const constant = (tensor: Tensor, name: string) => addTypedConstant(model, graph, tensor, `${base}_${name}`, tensor.dataType, node);
  const int32 = (name: string, values: number[]) => constant(Tensor.fromArray('', DataType.INT32, [values.length], Int32Array.from(values)), name);
  const int64 = (name: string, values: number[]) => constant(Tensor.fromArray('', DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))), name);

  const packed = Tensor.fromArray('', DataType.UINT8, [N, nBlocks, (blockSize * bits) / 8], packRows(codes, N, padded, bits));
  const packedName = constant(packed, 'packed');
  // Block scale and min codes: a byte each (and the 6-bit mins' high bits as 4-bit pairs).
  const lowMinBits = 8 - layout.scaleBits;
  const byte = new Uint8Array(N * P);
  for (let i = 0; i < byte.length; i++) byte[i] = scaleCodes[i] | ((minCodes[i] & ((1 << lowMinBits) - 1)) << layout.scaleBits);
  const byteTensor = Tensor.fromArray('', DataType.UINT8, [N, P], byte);
  const a = add('Cast', [constant(byteTensor, 'block_codes')], 'block_codes_int', [attr.int('to', DataType.INT32)]);
  const minLow = add('Div', [a, int32('scale_span', [1 << layout.scaleBits])], 'min_low');
  const sc = add('Sub', [a, add('Mul', [minLow, int32('scale_span_mul', [1 << layout.scaleBits])], 'min_low_shifted')], 'scale_codes');
  let mc = minLow;
  let highBytes = 0;
  if (layout.minBits > lowMinBits) {
    const high = new Uint8Array(N * P);
    for (let i = 0; i < high.length; i++) high[i] = minCodes[i] >> lowMinBits;
    const highTensor = Tensor.fromArray('', DataType.UINT8, [(N * P) / 2], packRows(high, 1, N * P, 4));
    highBytes = highTensor.byteLength;
    const h = add('Cast', [constant(highTensor, 'min_high')], 'min_high_int', [attr.int('to', DataType.INT32)]);
    const odd = add('Div', [h, int32('nibble', [16])], 'min_high_odd');
    const even = add('Sub', [h, add('Mul', [odd, int32('nibble_mul', [16])], 'min_high_odd_shifted')], 'min_high_even');
    const column = int64('pair_column', [(N * P) / 2, 1]);
    const pairs = add('Concat', [add('Reshape', [even, column], 'even_column'), add('Reshape', [odd, column], 'odd_column')], 'min_high_pairs', [attr.int('axis', 1)]);
    const highCodes = add('Reshape', [pairs, int64('block_shape', [N, P])], 'min_high_codes');
    mc = add('Add', [minLow, add('Mul', [highCodes, int32('low_span', [1 << lowMinBits])], 'min_high_shifted')], 'min_codes');
  }
  // Per block: code * d (or dmin), as float32, back to [N * n_blocks].
  const grouped = int64('grouped', [N, groups, layout.superBlock]);
  const perBlock = (codesName: string, superValues: Float32Array, name: string) => {
    const superTensor = floatTensor('', superValues, [N, groups, 1], layout.superScaleType);
    const superName = addTypedConstant(model, graph, superTensor, `${base}_${name}_super`, DataType.FLOAT, node);
    const f = add('Cast', [codesName], `${name}_float`, [attr.int('to', DataType.FLOAT)]);
    let out = add('Reshape', [add('Mul', [add('Reshape', [f, grouped], `${name}_grouped`), superName], `${name}_products`), int64(`${name}_rows`, [N, P])], `${name}_rows`);
    if (P !== nBlocks) out = sliceColumns(model, add, int64, out, nBlocks, name);
    return { name: add('Reshape', [out, int64(`${name}_flat`, [N * nBlocks])], `${name}_flat`), bytes: superTensor.byteLength };
  };
  const scales = perBlock(sc, superScales, 'scales');
  const mins = perBlock(mc, superMins, 'mins');
  let scalesName = scales.name;
  let zerosName = add('Div', [mins.name, scales.name], 'zero_points');
  if (w.elemType !== DataType.FLOAT) {
    scalesName = add('Cast', [scalesName], 'scales_typed', [attr.int('to', w.elemType)]);
    zerosName = add('Cast', [zerosName], 'zero_points_typed', [attr.int('to', w.elemType)]);
  }
  const bytesBefore = K * N * (w.elemType === DataType.FLOAT16 ? 2 : 4);
  return {
    inputs: [packedName, scalesName, zerosName],
    report: { name: w.name, op: w.op, bytesBefore, bytesAfter: storedBytes(packed, byteTensor) + highBytes + scales.bytes + mins.bytes, sqnrDb: sqnrFromSums(sums) },
  };
}

/** Columns [0, count) of a [N, P] value: Slice with inputs from opset 10, attributes before. */
function sliceColumns(
  model: Model,
  add: (opType: string, inputs: string[], name: string, attributes?: ReturnType<typeof attr.int>[]) => string,
  int64: (name: string, values: number[]) => string,
  value: string,
  count: number,
  name: string,
): string {
  if ((model.opset('') ?? 1) >= 10) return add('Slice', [value, int64(`${name}_start`, [0]), int64(`${name}_end`, [count]), int64(`${name}_axis`, [1])], `${name}_used`);
  return add('Slice', [value], `${name}_used`, [attr.ints('starts', [0]), attr.ints('ends', [count]), attr.ints('axes', [1])]);
}

function padRows(data: Float32Array, rows: number, cols: number, padded: number): Float32Array {
  const out = new Float32Array(rows * padded);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols, (r + 1) * cols), r * padded);
  return out;
}
