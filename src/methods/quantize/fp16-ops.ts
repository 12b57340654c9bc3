// Which ops may compute in float16, and which inputs of an op follow its float type. Two policies:
//
// - 'ort-cpu' (default): only ops that have a real float16 kernel in onnxruntime's CPU provider
//   (the one onnxruntime-node and onnxruntime-web's wasm backend run). Measured with
//   onnxruntime-node 1.30 on x86-64 by running one-node float16 models at opsets 9-21 and reading
//   back the optimized model (`optimizedModelFilePath`): for every op ORT has no float16 kernel
//   for, it inserts Cast-to-float32 / Cast-back pairs itself. It found float16 kernels only for
//   data movement (Reshape, Transpose, Concat, Slice, Gather, Squeeze, Unsqueeze, Flatten, Expand,
//   Split, Shape, Identity, Cast, ConstantOfShape), Max/Min/Clip (opset >= 13), Round,
//   LayerNormalization and IsNaN. Conv, ConvTranspose, MatMul, Gemm, Add, Mul, Sub, Div, Pow,
//   BatchNormalization, the pools, Relu, Sigmoid, HardSigmoid, Sqrt, Softmax, ReduceMean, Resize,
//   Pad, Tile, Where, LSTM, Einsum, Gelu and the other unary math ops all fell back to float32.
//   So on CPU the float16 model stores weights in half precision and computes in float32: half
//   the download, the same speed, near-float32 fidelity.
// - 'all': every op computes in float16 except the numerically fragile ones and those whose
//   ai.onnx schema at the model's opset does not accept float16 (for GPU and WebGPU targets;
//   onnxruntime CPU still runs the result, inserting its own Casts).
import { isStandardDomain } from '../../ir/constants.js';
import type { Node } from '../../ir/node.js';

export type Float16ComputePolicy = 'ort-cpu' | 'all' | 'none';

/** Op type -> the first ai.onnx opset at which onnxruntime CPU has a float16 kernel for it. */
const ORT_CPU_FLOAT16_KERNELS: Readonly<Record<string, number>> = {
  Identity: 1,
  Reshape: 1,
  Transpose: 1,
  Concat: 1,
  Slice: 1,
  Gather: 1,
  Squeeze: 1,
  Unsqueeze: 1,
  Flatten: 1,
  Expand: 1,
  Split: 1,
  Shape: 1,
  Cast: 1,
  ConstantOfShape: 1,
  IsNaN: 1,
  Round: 11,
  Max: 13,
  Min: 13,
  Clip: 13,
  LayerNormalization: 17,
};

/**
 * Ops that move or select elements without arithmetic: they run in whatever float type reaches
 * them, so converting one whose inputs stay float32 would only add a lossy round trip.
 */
const DATA_MOVEMENT = new Set([
  'Identity',
  'Reshape',
  'Transpose',
  'Concat',
  'Slice',
  'Gather',
  'GatherElements',
  'GatherND',
  'Squeeze',
  'Unsqueeze',
  'Flatten',
  'Expand',
  'Split',
  'Shape',
  'Cast',
  'Tile',
  'Pad',
  'DepthToSpace',
  'SpaceToDepth',
  'Dropout',
]);

/** Where float16 loses too much: large sums, exponentials, long recurrences, ties in arg-max. */
const NUMERICALLY_FRAGILE = new Set([
  'Pow',
  'Exp',
  'Log',
  'Softplus',
  'ReduceSum',
  'ReduceSumSquare',
  'ReduceProd',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'CumSum',
  'Range',
  'LSTM',
  'GRU',
  'RNN',
  'TopK',
  'ArgMax',
  'ArgMin',
  'NonMaxSuppression',
  'RoiAlign',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Upsample',
]);

/** Op type -> first opset whose ai.onnx schema accepts float16 (found where the probe's models were rejected). */
const FLOAT16_SCHEMA_SINCE: Readonly<Record<string, number>> = {
  Equal: 11,
  Round: 11,
  Resize: 13,
  HardSwish: 14,
  CumSum: 14,
};

/** Ops whose subgraphs are converted on their own; the node itself keeps its types. */
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);

/**
 * Why `node` must keep computing in float32 under `policy`, or undefined when it may run in
 * float16. `opset` is the model's ai.onnx version.
 */
export function float32Reason(node: Node, policy: Float16ComputePolicy, opset: number): string | undefined {
  if (!isStandardDomain(node.domain)) return `op of domain '${node.domain}' is left as it is`;
  if (CONTROL_FLOW.has(node.opType)) return 'control flow: its subgraphs are converted instead';
  if (node.opType === 'QuantizeLinear' || node.opType === 'DequantizeLinear') return 'already quantized';
  if (policy === 'none') return 'weights-only conversion';
  if (policy === 'ort-cpu') {
    const since = ORT_CPU_FLOAT16_KERNELS[node.opType];
    if (since === undefined || opset < since) return `no float16 kernel in onnxruntime CPU for ${node.opType}-${opset}`;
    return undefined;
  }
  if (NUMERICALLY_FRAGILE.has(node.opType)) return `${node.opType} is numerically fragile in float16`;
  const schema = FLOAT16_SCHEMA_SINCE[node.opType];
  if (schema !== undefined && opset < schema) return `ai.onnx opset ${opset} ${node.opType} does not accept float16`;
  return undefined;
}

/**
 * True when the node should follow its inputs' type: run in float32 when its computed float
 * inputs stay float32. Under 'ort-cpu' every convertible op does, since converting those costs a
 * rounding and two Casts and gains no speed on CPU.
 */
export function followsInputs(node: Node, policy: Float16ComputePolicy): boolean {
  return policy === 'ort-cpu' || DATA_MOVEMENT.has(node.opType);
}

/**
 * Inputs whose type is fixed by the schema rather than following the op's float type T (Resize's
 * roi and scales, Upsample's scales): they keep their original type in every mode.
 */
export function isFixedTypeInput(node: Node, index: number): boolean {
  if (node.opType === 'Resize') return index === 1 || index === 2;
  if (node.opType === 'Upsample') return index === 1;
  return false;
}

/**
 * Inputs that take any type, so no Cast is ever needed in front of them: the data input of
 * Shape, Size and Cast.
 */
export function isAnyTypeInput(node: Node, index: number): boolean {
  return index === 0 && (node.opType === 'Shape' || node.opType === 'Size' || node.opType === 'Cast' || node.opType === 'CastLike');
}

/** Outputs whose type is fixed by the schema (LayerNormalization's mean and inverse deviation). */
export function isFixedTypeOutput(node: Node, index: number): boolean {
  return node.opType === 'LayerNormalization' && index > 0;
}
