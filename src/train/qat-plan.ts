// Which weights a weight-only PTQ method quantizes, and in which form, for quantization-aware
// training. The forms are read off what the PTQ pass itself produces: it runs on a scratch copy,
// and every main-graph node it converted says how (MatMulNBits' bits and block_size, a
// DequantizeLinear's axis, block_size and code type, GatherBlockQuantized's blocks). So QAT
// follows every decision PTQ makes (exclusions, opset fallbacks, int2 Conv weights in int8,
// padded partial blocks) without a second copy of those rules that could drift from them.
import { constantValue } from '../ir/constants.js';
import { DataType, dataTypeName } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { QuantBits } from '../kernels/quant-formats.js';
import { layerWeight, reductionAxis, weightedOp } from '../graph-edit/weighted-layers.js';
import type { PassWarning } from '../pipeline/pass.js';
import { type WeightOnlyMethod, type WeightOnlyOptions, quantizeWeightsOnly } from '../methods/quantize/weight-only.js';
import type { WeightQuantReport } from '../methods/quantize/weight-tensors.js';

/** Methods whose codes are linear in the weight, which fake quantization reproduces. */
export const QAT_METHODS: readonly WeightOnlyMethod[] = ['int8-weight', 'int4', 'int2'];

/** Which values share one scale (and zero point). */
export type WeightGrouping =
  /** `blockSize` consecutive values along `axis`; a last partial block is padded with zeros. */
  | { kind: 'blocks'; axis: number; blockSize: number }
  /** Every value with the same index along `axis`. */
  | { kind: 'channel'; axis: number }
  | { kind: 'tensor' };

/** One weight as PTQ quantizes it for some of its readers. */
export interface FakeQuantTarget {
  /** The weight's value name (a main-graph initializer or Constant node). */
  weight: string;
  dims: number[];
  bits: QuantBits;
  /** Symmetric: scale = (value of largest magnitude) / -2^(bits-1), no zero point. */
  symmetric: boolean;
  grouping: WeightGrouping;
  /** What PTQ writes for it: MatMulNBits, GatherBlockQuantized or DequantizeLinear. */
  format: string;
  /** Nodes of the planned model that read the weight (input `input`) and PTQ converts. */
  readers: { node: Node; input: number }[];
}

export interface FakeQuantPlan {
  targets: FakeQuantTarget[];
  /** Weights PTQ quantizes that training cannot see quantized (inside subgraphs). */
  warnings: PassWarning[];
  /** The PTQ pass's own report on the scratch copy. */
  ptq: WeightQuantReport;
}

/** The fake-quantization targets of `model` for a weight-only method (the model is not changed). */
export function planFakeQuant(model: Model, options: WeightOnlyOptions): FakeQuantPlan {
  if (!QAT_METHODS.includes(options.method)) {
    throw new Error(`quantization-aware training supports ${QAT_METHODS.join(', ')}; '${options.method}' codes are not linear in the weight`);
  }
  if (options.rounding !== undefined && options.rounding !== 'rtn') throw new Error(`quantization-aware training fake-quantizes with round-to-nearest scales; rounding '${options.rounding}' is not supported`);
  const scratch = model.clone();
  // The pass converts nodes in place, so each node object of the copy keeps its index in the
  // original; what it read before the pass is noted first.
  const before = scratch.graph.nodes.map((node): Before => {
    const weight = layerWeight(scratch.graph, node);
    return { node, opType: node.opType, inputs: [...node.inputs], weightInput: weightedOp(node)?.weight, reduction: weight === undefined ? undefined : reductionAxis(node, weight.dims) };
  });
  const ptq = quantizeWeightsOnly(scratch, options);
  const targets = new Map<string, FakeQuantTarget>();
  const quantizedHere = new Set<string>();
  before.forEach((was, index) => {
    const form = formOf(scratch, was);
    if (form === undefined) return;
    const weight = was.inputs[form.input];
    const tensor = constantValue(model.graph, weight);
    if (tensor === undefined) return;
    if (tensor.dataType !== DataType.FLOAT) throw new Error(`weight '${weight}' is ${dataTypeName(tensor.dataType)}; quantization-aware training fake-quantizes float32 weights`);
    quantizedHere.add(weight);
    const key = `${weight}\u0000${form.format}\u0000${form.bits}\u0000${form.symmetric}\u0000${JSON.stringify(form.grouping)}`;
    const reader = { node: model.graph.nodes[index], input: form.input };
    const known = targets.get(key);
    if (known !== undefined) known.readers.push(reader);
    else targets.set(key, { weight, dims: [...tensor.dims], bits: form.bits, symmetric: form.symmetric, grouping: form.grouping, format: form.format, readers: [reader] });
  });
  const warnings: PassWarning[] = ptq.tensors
    .filter((t) => !quantizedHere.has(t.name))
    .map((t) => ({ code: 'qat-subgraph-weight', message: `${t.op} '${t.node}': weight '${t.name}' is not in the main graph, so it trains in float (PTQ still quantizes it)`, node: t.node, tensor: t.name }));
  return { targets: [...targets.values()], warnings, ptq };
}

/** A main-graph node of the scratch copy as it was before the PTQ pass converted it. */
interface Before {
  node: Node;
  opType: string;
  inputs: string[];
  /** Where its weight entered, and the weight's reduction axis (weighted-layer table). */
  weightInput: number | undefined;
  reduction: number | undefined;
}

interface Form {
  input: number;
  bits: QuantBits;
  symmetric: boolean;
  grouping: WeightGrouping;
  format: string;
}

/** How PTQ converted the node that was `was`, or undefined when it left it in float. */
function formOf(scratch: Model, was: Before): Form | undefined {
  const node = was.node;
  const input = was.weightInput;
  if (input === undefined) return undefined;
  if (node.domain === 'com.microsoft' && node.opType === 'MatMulNBits') {
    // Blocks run along K, the reduction axis of the weight as stored ([K, N]; [N, K] for Gemm with transB).
    if (was.reduction === undefined) return undefined;
    return { input, bits: nBits(node), symmetric: absent(node, 3), grouping: { kind: 'blocks', axis: was.reduction, blockSize: node.attrInt('block_size', 0) }, format: 'MatMulNBits' };
  }
  if (node.domain === 'com.microsoft' && node.opType === 'GatherBlockQuantized') {
    return { input, bits: nBits(node), symmetric: absent(node, 3), grouping: { kind: 'blocks', axis: node.attrInt('quantize_axis', 1), blockSize: node.attrInt('block_size', 0) }, format: 'GatherBlockQuantized' };
  }
  if ((node.opType !== 'Conv' && node.opType !== 'Gemm') || node.inputs[input] === was.inputs[input]) return undefined;
  const dq = scratch.graph.producer(node.inputs[input]);
  if (dq === undefined || dq.opType !== 'DequantizeLinear') return undefined;
  const codes = constantValue(scratch.graph, dq.inputs[0]);
  const scale = constantValue(scratch.graph, dq.inputs[1]);
  if (codes === undefined || scale === undefined) return undefined;
  const bits: QuantBits = codes.dataType === DataType.INT4 || codes.dataType === DataType.UINT4 ? 4 : 8;
  const rank = codes.dims.length;
  const given = dq.attrInt('axis', 1);
  const axis = given < 0 ? given + rank : given;
  const blockSize = dq.attrInt('block_size', 0);
  const grouping: WeightGrouping = scale.dims.length === 0 ? { kind: 'tensor' } : blockSize > 0 ? { kind: 'blocks', axis, blockSize } : { kind: 'channel', axis };
  return { input, bits, symmetric: absent(dq, 2), grouping, format: 'DequantizeLinear' };
}

function nBits(node: Node): QuantBits {
  const bits = node.attrInt('bits', 4);
  if (bits !== 2 && bits !== 4 && bits !== 8) throw new Error(`node '${node.label}': ${bits}-bit weights have no fake quantization`);
  return bits;
}

function absent(node: Node, input: number): boolean {
  return (node.inputs[input] ?? '') === '';
}
