// Conv and Gemm weights -> an integer initializer + DequantizeLinear feeding the original op,
// the standard-ops form of weight-only quantization (onnxruntime computes in float after
// dequantizing; the file and the download shrink). Forms, by what the model's opset allows
// (ONNX DequantizeLinear: per-tensor since 10, per-axis since 13, int4 and block_size since 21):
//   'blocked'      int4 (symmetric) or uint4 codes, scales shaped like the weight with the
//                  input-channel axis divided by block_size; needs opset >= 21
//   'per-channel'  int8 / uint8 codes, one scale per output channel (axis 0 for Conv; for Gemm
//                  the axis of N); needs opset >= 13
//   'per-tensor'   int8 / uint8 codes, one scale; needs opset >= 10
// A model below opset 13 is raised or upgraded to it (opset-raise.ts: ops keep their meaning);
// a form the opset still lacks (blocked, 21) falls back to the next one, and the report says so.
import { blocksSqnrDb } from '../../kernels/sqnr.js';
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { packRows } from '../../kernels/pack.js';
import { type QuantBits, isSupportedBlockSize } from '../../kernels/quant-formats.js';
import { type Rounding, quantizeBlocks } from '../../kernels/quantize-blocks.js';
import type { Pass } from '../../pipeline/pass.js';
import { isOp } from '../../optimize/util/graph-queries.js';
import { PassResult } from '../../optimize/util/report.js';
import { type QuantizedTensorReport, type WeightQuantReport, dropUnreadConstant, readFloatWeight } from './weight-tensors.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { reachOpset } from './opset-raise.js';
import { WEIGHTED_OPS, weightAxes } from '../../graph-edit/weighted-layers.js';

/** The newest ai.onnx opset models are upgraded to (upgrade-opset.ts goes up to 13). */
const UPGRADABLE_OPSET = 13;

export type DequantizeLinearForm = 'blocked' | 'per-channel' | 'per-tensor';

export interface DequantizeLinearWeightsOptions {
  /** The form wanted; an opset that lacks it gives the next one down. Default 'per-channel'. */
  form?: DequantizeLinearForm;
  /** Block size of the 'blocked' form (16-256). Default 32. */
  blockSize?: number;
  /** Symmetric codes (int8/int4, no zero point) or asymmetric (uint8/uint4 with zero points). Default true. */
  symmetric?: boolean;
  rounding?: Rounding;
  exclude?: (node: Node, graph: Graph) => boolean;
}

const MIN_OPSET: Record<DequantizeLinearForm, number> = { blocked: 21, 'per-channel': 13, 'per-tensor': 10 };
const FALLBACK: Record<DequantizeLinearForm, DequantizeLinearForm | undefined> = { blocked: 'per-channel', 'per-channel': 'per-tensor', 'per-tensor': undefined };

/** The weight moved so that each quantization group is one contiguous row, and how to move back. */
interface Grouping {
  rows: number;
  cols: number;
  /** Row-major index in the grouped matrix of the weight's element `i`. */
  grouped: Int32Array;
  /** Scale dims as DequantizeLinear wants them, and the order of scales in those dims. */
  scaleDims: number[];
  scaleOrder: (row: number, block: number) => number;
  axis: number;
}

/**
 * Groups along `axis`: 'per-channel' puts each index of `axis` in one row (one block per row);
 * 'blocked' makes rows of the values that share every index except `axis` (blocks along it).
 */
function groupWeight(dims: readonly number[], axis: number, form: DequantizeLinearForm, blockSize: number): Grouping {
  const count = dims.reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const size = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const grouped = new Int32Array(count);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < size; j++) {
      for (let i = 0; i < inner; i++) {
        const at = (o * size + j) * inner + i;
        // per-channel: row j holds (o, i) pairs in order; blocked: row (o, i) holds j in order.
        grouped[at] = form === 'per-channel' ? j * outer * inner + o * inner + i : (o * inner + i) * size + j;
      }
    }
  }
  if (form === 'per-channel') return { rows: size, cols: outer * inner, grouped, scaleDims: [size], scaleOrder: (row) => row, axis };
  if (form === 'per-tensor') return { rows: 1, cols: count, grouped: Int32Array.from({ length: count }, (_, i) => i), scaleDims: [], scaleOrder: () => 0, axis };
  const blocks = size / blockSize;
  const scaleDims = dims.map((d, k) => (k === axis ? blocks : d));
  // Grouped row (o, i) block b -> scale index [o, b, i].
  return { rows: outer * inner, cols: size, grouped, scaleDims, scaleOrder: (row, b) => (Math.floor(row / inner) * blocks + b) * inner + (row % inner), axis };
}

/** Converts Conv and Gemm weights (all scopes) to integer constants + DequantizeLinear. */
export function quantizeConvGemmWeights(model: Model, options: DequantizeLinearWeightsOptions = {}): WeightQuantReport {
  const wanted = options.form ?? 'per-channel';
  const blockSize = options.blockSize ?? 32;
  const symmetric = options.symmetric ?? true;
  if (!isSupportedBlockSize(blockSize)) throw new Error(`DequantizeLinear weights: block size must be 16, 32, 64, 128 or 256, got ${blockSize}`);
  const result = new PassResult(['weights', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter']);
  const tensors: QuantizedTensorReport[] = [];
  let opset = model.opset('') ?? 1;
  // Opsets up to 13 are reached by raising or upgrading the model (per-channel scales need 13:
  // per-tensor int8 weights wreck models whose channels differ in range, PP-OCRv4 det's output
  // cosine fell to 0.2); the blocked form's 21 is not, so it falls back.
  let form: DequantizeLinearForm | undefined = wanted;
  while (form !== undefined && MIN_OPSET[form] > Math.max(opset, UPGRADABLE_OPSET)) form = FALLBACK[form];
  if (form !== undefined && opset < MIN_OPSET[form]) {
    const reached = reachOpset(model, MIN_OPSET[form], 'weight-only');
    if ('refused' in reached) result.warn('opset-not-upgraded', `weight-only: ai.onnx opset ${opset} could not be upgraded to ${MIN_OPSET[form]}: ${reached.refused}`);
    else if (reached.warning !== undefined) result.warn(reached.warning.code, reached.warning.message);
    opset = model.opset('') ?? 1;
  }
  while (form !== undefined && opset < MIN_OPSET[form]) form = FALLBACK[form];
  if (form !== wanted) {
    const got = form === undefined ? 'no DequantizeLinear at all' : `the ${form} form`;
    result.warn('opset-too-old', `${wanted} DequantizeLinear needs opset ${MIN_OPSET[wanted]}; the model imports ai.onnx ${opset}, so weights get ${got}`);
  }
  const targets = [...model.graph.allNodes()].filter(({ node }) => isOp(node, 'Conv', 'Gemm'));
  for (const { node, graph } of targets) {
    const weightInput = WEIGHTED_OPS[node.opType].weight;
    const weightName = node.inputs[weightInput];
    const weight = readFloatWeight(graph, weightName);
    result.count('weights');
    const skip = (code: string, message: string): void => {
      result.count('skipped');
      result.warn(code, `${node.opType} '${node.label}': ${message}`, { node: node.label, tensor: weightName });
    };
    if (form === undefined) {
      skip('opset-too-old', `ai.onnx opset ${opset} has no DequantizeLinear`);
      continue;
    }
    if (options.exclude?.(node, graph)) {
      skip('excluded', 'excluded by the caller');
      continue;
    }
    if ('reason' in weight) {
      skip('weight-not-constant-float', weight.reason);
      continue;
    }
    if (weight.tensor.dataType !== DataType.FLOAT) {
      skip('weight-not-float32', `weight '${weightName}' is not float32 (float16 scales need opset 19; not handled)`);
      continue;
    }
    const dims = weight.tensor.dims;
    // Scales per output channel (Conv axis 0; Gemm's N, axis 0 of B when transB, else 1); blocks
    // run along the reduction axis (Conv's input channels, Gemm's K).
    const axes = weightAxes(node, dims);
    if (axes === undefined || axes.reduction === undefined) {
      skip('weight-shape', `weight '${weightName}' [${dims.join(',')}] has no output-channel axis`);
      continue;
    }
    const channelAxis = axes.output;
    const blockAxis = axes.reduction;
    let nodeForm: DequantizeLinearForm = form;
    if (nodeForm === 'blocked' && dims[blockAxis] % blockSize !== 0) {
      result.warn('block-size-does-not-divide', `${node.opType} '${node.label}': axis ${blockAxis} of '${weightName}' [${dims.join(',')}] is not a multiple of ${blockSize}; per-channel int8 instead`, { node: node.label, tensor: weightName });
      nodeForm = 'per-channel';
    }
    const bits: QuantBits = nodeForm === 'blocked' ? 4 : 8;
    const group = groupWeight(dims, nodeForm === 'blocked' ? blockAxis : channelAxis, nodeForm, blockSize);
    const rowsData = new Float32Array(weight.values.length);
    for (let i = 0; i < rowsData.length; i++) rowsData[group.grouped[i]] = weight.values[i];
    const q = quantizeBlocks(rowsData, group.rows, group.cols, { bits, blockSize: nodeForm === 'blocked' ? blockSize : group.cols, symmetric, rounding: options.rounding });
    // Codes back in the weight's own layout; symmetric codes are stored signed (code - midpoint).
    const mid = symmetric ? 2 ** (bits - 1) : 0;
    const codes = new Int16Array(weight.values.length);
    for (let i = 0; i < codes.length; i++) codes[i] = q.codes[group.grouped[i]] - mid;
    const blocksPerRow = q.blocksPerRow;
    const scaleValues = new Float32Array(q.scales.length);
    const zeroValues = new Int16Array(q.scales.length);
    for (let r = 0; r < group.rows; r++) {
      for (let b = 0; b < blocksPerRow; b++) {
        scaleValues[group.scaleOrder(r, b)] = q.scales[r * blocksPerRow + b];
        zeroValues[group.scaleOrder(r, b)] = q.zeroPoints[r * blocksPerRow + b] - mid;
      }
    }
    const codeType = bits === 4 ? (symmetric ? DataType.INT4 : DataType.UINT4) : symmetric ? DataType.INT8 : DataType.UINT8;
    const quantized = Tensor.fromBytes(graph.uniqueName(`${weightName}_quantized`), codeType, dims, packRows(codes, 1, codes.length, bits));
    const scale = Tensor.fromArray(graph.uniqueName(`${weightName}_scale`), DataType.FLOAT, group.scaleDims, scaleValues);
    const inputs = [quantized.name, scale.name];
    const added = [quantized, scale];
    if (!symmetric) {
      const zero = Tensor.fromBytes(graph.uniqueName(`${weightName}_zero_point`), codeType, group.scaleDims, packRows(zeroValues, 1, zeroValues.length, bits));
      inputs.push(zero.name);
      added.push(zero);
    }
    for (const t of added) addConstant(model, graph, t, node);
    const attributes = nodeForm === 'per-tensor' ? [] : [attr.int('axis', group.axis)];
    if (nodeForm === 'blocked') attributes.push(attr.int('block_size', blockSize));
    const output = graph.uniqueName(`${weightName}_dequantized`);
    graph.addNode(new Node({ opType: 'DequantizeLinear', inputs, outputs: [output], name: graph.uniqueName(`${weightName}_DequantizeLinear`), attributes }), graph.nodes.indexOf(node));
    node.inputs[weightInput] = output;
    graph.changed();
    dropUnreadConstant(graph, weightName);
    const report: QuantizedTensorReport = {
      name: weightName,
      op: node.opType,
      node: node.label,
      bytesBefore: weight.tensor.byteLength,
      bytesAfter: added.reduce((n, t) => n + t.byteLength, 0),
      sqnrDb: blocksSqnrDb(rowsData, q),
    };
    tensors.push(report);
    result.count('quantized');
    result.count('bytesBefore', report.bytesBefore);
    result.count('bytesAfter', report.bytesAfter);
  }
  return { ...result.done(), tensors };
}

export const dequantizeLinearWeightsPass: Pass<DequantizeLinearWeightsOptions> = {
  name: 'dequantize-linear-weights',
  description: 'Conv and Gemm weights -> int8/int4 constants + DequantizeLinear (per-channel, per-tensor, or blocked at opset 21)',
  run: (model, options) => quantizeConvGemmWeights(model, options),
};
