// Dynamic int8 quantization: weights stored as 8-bit integers, activations quantized at run time
// (their scale comes from each input's own min and max, so no calibration data is needed). What
// each op becomes, and why:
//   MatMul, Gemm  com.microsoft DynamicQuantizeMatMul (default; any opset, one node, the kernel
//                 onnxruntime fuses the standard form into) or the standard form
//                 DynamicQuantizeLinear + MatMulInteger + Cast + Mul (dynamic-int8-matmul.ts).
//                 These are where the speed is: integer GEMMs on 8-bit operands.
//   Conv          int8 weights decoded by Cast and Mul, which onnxruntime folds into float weights
//                 at load (default: the file shrinks, speed stays float's), int8 weights +
//                 DequantizeLinear (kept unfolded by onnxruntime, so slower than float), or
//                 DynamicQuantizeLinear + ConvInteger (slower than float Conv on CPU, and the WebGPU
//                 backend lacks it) (dynamic-int8-conv.ts; bench/results/quantize-dynamic.md).
//   LSTM          com.microsoft DynamicQuantizeLSTM (onnxruntime-node and -web run it).
// Weights: int8 (symmetric, zero point 0, by default) or uint8 (asymmetric by default), per tensor
// or per output channel, optionally 7-bit (reduce_range). Everything left in float is reported
// with the reason.
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { isOp } from '../../optimize/util/graph-queries.js';
import { PassResult } from '../../optimize/util/report.js';
import type { Pass } from '../../pipeline/pass.js';
import { ConvRewriter, type DynamicConvForm } from './dynamic-int8-conv.js';
import { pushRowGathersPass } from '../../optimize/push-row-gathers.js';
import { type AttentionForm, quantizeAttention } from './dynamic-int8-attention.js';
import { ActivationQuantizers } from './dynamic-int8-graph.js';
import { rewriteLstm } from './dynamic-int8-lstm.js';
import { type DynamicMatMulForm, MatMulRewriter, type RewriteOutcome } from './dynamic-int8-matmul.js';
import type { Int8WeightType, LinearWeightOptions } from './dynamic-int8-weights.js';
import { ensureMicrosoftOpset, type QuantizedTensorReport, type WeightQuantReport } from './weight-tensors.js';

export const DYNAMIC_INT8_OPS = ['MatMul', 'Gemm', 'Conv', 'LSTM'] as const;
export type DynamicInt8Op = (typeof DYNAMIC_INT8_OPS)[number];

export interface DynamicInt8Options {
  /** Code type of the weights. Default 'int8'. */
  weightType?: Int8WeightType;
  /** Default: true for int8 (zero point 0), false for uint8 (min/max with a zero point). */
  symmetric?: boolean;
  /**
   * One scale per output channel (MatMul/Gemm column, Conv output channel, LSTM gate column).
   * Default true: per-tensor scales ruin BatchNorm-folded Conv weights (PP-OCRv4 det: output
   * cosine 0.04 per tensor, 0.97 per channel) and cost nothing at run time.
   */
  perChannel?: boolean;
  /** 7-bit weights, for CPUs without VNNI where u8 x s8 pair sums may saturate int16. Default false. */
  reduceRange?: boolean;
  /** Op types to quantize. Default all of DYNAMIC_INT8_OPS. */
  ops?: readonly string[];
  /** Nodes to leave in float (reported as excluded). */
  exclude?: (node: Node, graph: Graph) => boolean;
  /** Default 'com.microsoft' (DynamicQuantizeMatMul). */
  matmulForm?: DynamicMatMulForm;
  /** Default 'cast-weights'. */
  convForm?: DynamicConvForm;
  /**
   * Self-attention of BERT-style encoders in integer form (dynamic-int8-attention.ts). Default true
   * with the 'com.microsoft' MatMul form; the 'onnx' form keeps standard ops only and leaves
   * attention alone.
   */
  attention?: boolean;
  /**
   * 'flash' (default): one DynamicQuantizeLinear of the layer input, MatMulIntegerToFloat for Q, K
   * and V, the padding mask folded into one extra Q/K column per head, and com.microsoft
   * MultiHeadAttention without a mask, which onnxruntime's CPU runs on its flash path (on
   * spam-bert as fast as QAttention at batch 1, ~10% less CPU at batch 32-64). 'qattention': com.microsoft QAttention (one
   * packed int8 GEMM for Q, K and V, the mask as mask_index).
   */
  attentionForm?: AttentionForm;
  /**
   * Default true: afterwards, a Gather of rows (a classifier reading one token) moves above the
   * per-row ops that make them, so the last layer runs for those rows only
   * (optimize/push-row-gathers.ts). Its dynamic activation scales then cover the computed rows.
   */
  rowGathers?: boolean;
}

/** Weighted ops dynamic int8 does not convert, with the reason the report gives. */
const NOT_COVERED: Record<string, string> = {
  GRU: 'GRU weights stay float: onnxruntime has no dynamically quantized GRU kernel',
  RNN: 'RNN weights stay float: onnxruntime has no dynamically quantized RNN kernel',
  ConvTranspose: 'ConvTranspose stays float: ONNX has no integer ConvTranspose',
};

export function quantizeDynamicInt8(model: Model, options: DynamicInt8Options = {}): WeightQuantReport {
  const type = options.weightType ?? 'int8';
  if (type !== 'int8' && type !== 'uint8') throw new Error(`dynamic int8: weight type must be int8 or uint8, got '${type}'`);
  const ops = options.ops ?? DYNAMIC_INT8_OPS;
  for (const op of ops) {
    if (!(DYNAMIC_INT8_OPS as readonly string[]).includes(op))
      throw new Error(`dynamic int8: cannot quantize op type '${op}' (supported: ${DYNAMIC_INT8_OPS.join(', ')})`);
  }
  const weights: LinearWeightOptions = {
    type,
    symmetric: options.symmetric ?? type === 'int8',
    reduceRange: options.reduceRange ?? false,
  };
  const perChannel = options.perChannel ?? true;
  const activations = new ActivationQuantizers();
  const matmulForm = options.matmulForm ?? 'com.microsoft';
  const matmuls = new MatMulRewriter(model, { weights, perChannel, form: matmulForm }, activations);
  const convs = new ConvRewriter(model, { weights, perChannel, form: options.convForm ?? 'cast-weights' }, activations);
  const result = new PassResult(['MatMul', 'Gemm', 'Conv', 'LSTM', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter', 'attention', 'rowGathersMoved']);
  const tensors: QuantizedTensorReport[] = [];
  if ((options.attention ?? true) && matmulForm === 'com.microsoft' && ops.includes('MatMul')) {
    const attention = quantizeAttention(model, { weights, perChannel, form: options.attentionForm, exclude: options.exclude }, activations);
    for (const w of attention.warnings) result.warn(w.code, w.message, { node: w.node });
    attention.tensors.forEach((t, i) => {
      tensors.push({ ...t, node: attention.nodes[i] });
      result.count('attention');
      result.count('quantized');
      result.count('MatMul', 3);
      result.count('bytesBefore', t.bytesBefore);
      result.count('bytesAfter', t.bytesAfter);
    });
  }
  // Collected first: rewriting changes the node lists being walked.
  const targets = [...model.graph.allNodes()];
  for (const { node, graph } of targets) {
    const notCovered = NOT_COVERED[node.opType];
    if (notCovered !== undefined && isOp(node, node.opType)) {
      result.warn('op-not-covered', `${node.opType} '${node.label}': ${notCovered}`, { node: node.label });
      continue;
    }
    if (!isOp(node, ...DYNAMIC_INT8_OPS)) continue;
    result.count(node.opType);
    const skip = (code: string, reason: string): void => {
      result.count('skipped');
      result.warn(code, `${node.opType} '${node.label}': ${reason}`, {
        node: node.label,
        tensor: node.inputs[1],
      });
    };
    if (!ops.includes(node.opType)) {
      skip('op-not-selected', `${node.opType} is not among the op types chosen (${ops.join(', ')})`);
      continue;
    }
    if (options.exclude?.(node, graph)) {
      skip('excluded', 'excluded by the caller');
      continue;
    }
    const label = node.label;
    let outcome: RewriteOutcome;
    if (node.opType === 'LSTM') outcome = rewriteLstm(model, graph, node, { weights, perChannel });
    else if (node.opType === 'Conv') outcome = convs.rewrite(graph, node);
    else outcome = matmuls.rewrite(graph, node);
    if (!outcome.done) {
      skip(outcome.code, outcome.reason);
      continue;
    }
    result.count('quantized');
    if (outcome.tensor !== undefined) {
      tensors.push({ ...outcome.tensor, node: label });
      result.count('bytesBefore', outcome.tensor.bytesBefore);
      result.count('bytesAfter', outcome.tensor.bytesAfter);
    }
  }
  if (convs.fallback !== undefined) result.warn('conv-form-fallback', convs.fallback);
  const floatConvs = tensors.filter((t) => t.op === 'Conv').length;
  if (floatConvs > 0 && options.convForm === 'dequantize-weights') {
    // Said once: the file shrinks, but onnxruntime keeps DequantizeLinear unfolded (QDQ), so the
    // float Conv loses its prepacked kernels (bench/results/quantize-dynamic.md).
    result.warn(
      'conv-weights-only',
      `${floatConvs} Conv weights are stored int8 behind DequantizeLinear and computed in float: the file shrinks, but onnxruntime CPU runs these Convs slower than float32 ones; exclude Conv to keep their speed`,
    );
  }
  if ([...model.graph.allNodes()].some(({ node }) => node.domain === 'com.microsoft')) ensureMicrosoftOpset(model);
  if ((options.rowGathers ?? true) && result.stats.quantized > 0) {
    const rows = pushRowGathersPass.run(model, {}, {}) as Awaited<ReturnType<typeof pushRowGathersPass.run>>;
    result.count('rowGathersMoved', rows.stats.gathersMoved ?? 0);
  }
  if (result.stats.quantized === 0) {
    result.warn('nothing-quantized', `dynamic-int8: the model has no ${ops.join(', ')} with a constant float32 weight to quantize`);
  }
  return { ...result.done(), tensors };
}

export const dynamicInt8Pass: Pass<DynamicInt8Options> = {
  name: 'dynamic-int8',
  description:
    'Dynamic int8: int8/uint8 weights, activations quantized at run time (DynamicQuantizeMatMul, ConvInteger or int8 Conv weights, DynamicQuantizeLSTM)',
  run: (model, options) => quantizeDynamicInt8(model, options),
};
