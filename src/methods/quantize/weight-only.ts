// Weight-only quantization, the user-facing pass: one method name picks the formats for every
// kind of weight the model has.
//   MatMul (constant B)        -> com.microsoft MatMulNBits (8, 4 or 2 bits; ternary/binary in 2)
//   Gather (embedding table)   -> com.microsoft GatherBlockQuantized (same bits)
//   Gemm (constant B), 2 bits  -> MatMulNBits + Add of beta * C (gemm-nbits.ts); also for int4
//   or int4 below opset 21        below opset 21, where DequantizeLinear has no int4 blocks
//   Conv, other Gemms          -> DequantizeLinear: int4 blocked at opset >= 21 for int4, else
//                                 int8 per channel (ternary and binary leave Conv in float)
// Weights no method covers (LSTM, GRU, ConvTranspose, ...) stay float and the report says so, as
// it does for every node skipped and why. The report lists each quantized tensor with its bytes
// before and after and its SQNR.
import type { Progress } from '../../pipeline/progress.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import type { QuantBits, ScaleType } from '../../kernels/quant-formats.js';
import type { QuantizedBlocks, Rounding } from '../../kernels/quantize-blocks.js';
import type { Pass, PassContext } from '../../pipeline/pass.js';
import { isOp } from '../../optimize/util/graph-queries.js';
import { type DequantizeLinearForm, quantizeConvGemmWeights } from './dequantize-linear-weights.js';
import { quantizeGathers } from './gather-block-quantized.js';
import { quantizeGemms } from './gemm-nbits.js';
import { type WeightScheme, quantizeMatMuls } from './matmul-nbits.js';
import { type AwqSettings, solveAwq } from './awq.js';
import { type GptqSettings, solveGptq } from './gptq.js';
import { type WeightQuantReport, readFloatWeight } from './weight-tensors.js';

export type WeightOnlyMethod = 'int8-weight' | 'int4' | 'int2' | 'ternary' | 'binary';

export const WEIGHT_ONLY_METHODS: readonly WeightOnlyMethod[] = ['int8-weight', 'int4', 'int2', 'ternary', 'binary'];

export interface WeightOnlyOptions {
  method: WeightOnlyMethod;
  /** Block size along K (MatMul), the row (Gather) or input channels (blocked Conv/Gemm). Default 32. */
  blockSize?: number;
  /** Default true (no zero points). */
  symmetric?: boolean;
  rounding?: Rounding;
  /** Storage of the scales of MatMulNBits and GatherBlockQuantized. Default 'float32'. */
  scaleType?: ScaleType;
  /** MatMulNBits accuracy_level; omitted when undefined. */
  accuracyLevel?: number;
  /** Nodes to leave in float (reported as excluded). */
  exclude?: (node: Node, graph: Graph) => boolean;
  /** MatMul with K not a multiple of the block size: pad the last block (default) or skip it. */
  partialBlocks?: 'pad' | 'skip';
  /** Also quantize Conv and Gemm weights through DequantizeLinear. Default true. */
  convGemm?: boolean;
  /** GPTQ instead of round-to-nearest for the weights packed as MatMulNBits (needs calibration samples). */
  gptq?: Pick<GptqSettings, 'calibration' | 'samples' | 'actOrder' | 'damping'>;
  /** AWQ scales before round-to-nearest for the weights packed as MatMulNBits (needs calibration samples). */
  awq?: Pick<AwqSettings, 'calibration' | 'samples' | 'grid' | 'clip'>;
  /** Blocks already solved by weight name (what the `gptq` and `awq` options compute before packing). */
  solved?: ReadonlyMap<string, QuantizedBlocks>;
}

const BITS: Record<WeightOnlyMethod, QuantBits> = { 'int8-weight': 8, int4: 4, int2: 2, ternary: 2, binary: 2 };
const SCHEME: Record<WeightOnlyMethod, WeightScheme> = { 'int8-weight': 'linear', int4: 'linear', int2: 'linear', ternary: 'ternary', binary: 'binary' };

/** Ops whose weights weight-only methods leave alone, with the reason given in the report. */
const NOT_COVERED: Record<string, string> = {
  LSTM: 'LSTM weights stay float: onnxruntime has no weight-only LSTM kernel',
  GRU: 'GRU weights stay float: onnxruntime has no weight-only GRU kernel',
  RNN: 'RNN weights stay float: onnxruntime has no weight-only RNN kernel',
  ConvTranspose: 'ConvTranspose weights stay float (not covered by weight-only methods)',
};

/** Runs the method on `model` in place and reports every tensor quantized and every node skipped. */
export function quantizeWeightsOnly(model: Model, options: WeightOnlyOptions, progress?: Progress): WeightQuantReport {
  const { method } = options;
  if (!WEIGHT_ONLY_METHODS.includes(method)) throw new Error(`unknown weight-only method '${method}' (expected ${WEIGHT_ONLY_METHODS.join(', ')})`);
  const block = {
    bits: BITS[method],
    scheme: SCHEME[method],
    blockSize: options.blockSize ?? 32,
    symmetric: options.symmetric ?? true,
    rounding: options.rounding ?? 'rtn',
    scaleType: options.scaleType ?? 'float32',
    exclude: options.exclude,
  };
  // Noted before the passes run: afterwards the weights of converted nodes are gone.
  const uncovered = uncoveredWeights(model);
  // HQQ's float zero points are what MatMulNBits reads best, but ORT 1.30 runs them for 2 and 4 bits only.
  const matMulZeroPoints = block.rounding === 'hqq' && block.bits !== 8 ? 'float' : 'integer';
  const parts: WeightQuantReport[] = [
    quantizeMatMuls(model, { ...block, accuracyLevel: options.accuracyLevel, partialBlocks: options.partialBlocks, zeroPointType: matMulZeroPoints, progress, solved: options.solved }),
    quantizeGathers(model, block),
  ];
  if (options.convGemm ?? true) {
    // Gemm through MatMulNBits where DequantizeLinear has no form for the bits: int4 blocks need
    // opset 21, 2-bit codes (int2, ternary, binary) opset 25. Gemms it leaves go on below.
    const opset = model.opset('') ?? 1;
    if (block.bits === 2 || (block.bits === 4 && opset < 21)) {
      parts.push(quantizeGemms(model, { ...block, accuracyLevel: options.accuracyLevel, partialBlocks: options.partialBlocks, zeroPointType: matMulZeroPoints, reportSkips: false, solved: options.solved }));
    }
    if (block.scheme === 'linear') {
      const form: DequantizeLinearForm = block.bits === 4 ? 'blocked' : 'per-channel';
      const convGemm = quantizeConvGemmWeights(model, { form, blockSize: block.blockSize, symmetric: block.symmetric, rounding: block.rounding, exclude: options.exclude });
      if (block.bits === 2 && convGemm.stats.quantized > 0) {
        convGemm.warnings.push({ code: 'conv-gemm-int8', message: 'int2: Conv weights (and Gemms MatMulNBits cannot take) use int8 per-channel DequantizeLinear (ONNX has no 2-bit DequantizeLinear before opset 25)' });
      }
      // The opset note is about Conv/Gemm weights: none left (all Gemms took MatMulNBits), no note.
      if ((convGemm.stats.weights ?? 0) === 0) convGemm.warnings = convGemm.warnings.filter((w) => w.code !== 'opset-too-old');
      parts.push(convGemm);
    } else {
      const count = [...model.graph.allNodes()].filter(({ node, graph }) => isOp(node, 'Conv', 'Gemm') && !('reason' in readFloatWeight(graph, node.inputs[1]))).length;
      if (count > 0) parts.push({ stats: { skipped: count }, warnings: [{ code: 'scheme-matmul-only', message: `${method}: ${count} Conv/Gemm weights stay float (${method} weights are offered for MatMul, Gemm and Gather only)` }], tensors: [] });
    }
  }
  const report: WeightQuantReport = { stats: {}, warnings: [], tensors: [] };
  for (const part of parts) {
    for (const [key, value] of Object.entries(part.stats)) report.stats[key] = (report.stats[key] ?? 0) + value;
    report.warnings.push(...part.warnings);
    report.tensors.push(...part.tensors);
  }
  report.warnings.push(...uncovered);
  if (report.tensors.length === 0) {
    report.warnings.push({ code: 'nothing-quantized', message: `${method}: the model has no MatMul, Gather, Conv or Gemm with a constant float weight that this method converts` });
  }
  return report;
}

function uncoveredWeights(model: Model): WeightQuantReport['warnings'] {
  const warnings: WeightQuantReport['warnings'] = [];
  for (const { node } of model.graph.allNodes()) {
    const reason = NOT_COVERED[node.opType];
    if (reason === undefined || !isOp(node, node.opType)) continue;
    // Said whether or not the weight is a plain constant (Silero feeds its LSTM through Identity).
    warnings.push({ code: 'op-not-covered', message: `${node.opType} '${node.label}': ${reason}`, node: node.label, tensor: node.inputs[1] });
  }
  return warnings;
}

export const weightOnlyPass: Pass<WeightOnlyOptions> = {
  name: 'weight-only',
  description: 'Weight-only quantization: int8-weight, int4, int2, ternary or binary weights for MatMul, Gather, Conv and Gemm',
  async run(model, options, ctx) {
    if (options.awq !== undefined) return runAwq(model, options, ctx);
    if (options.gptq !== undefined) return runGptq(model, options, ctx);
    return quantizeWeightsOnly(model, options, ctx.progress);
  },
};

/** The block settings GPTQ and AWQ solve for, from the method and its options. */
function solvedBlocks(options: WeightOnlyOptions) {
  return { bits: BITS[options.method], blockSize: options.blockSize ?? 32, symmetric: options.symmetric ?? true, scaleType: options.scaleType, exclude: options.exclude };
}

/**
 * What a calibrated algorithm adds to the writer's report: how many of its solved weights were
 * packed as solved, the algorithm's own counters (`stats`), the calibration samples, the layers it
 * left to round-to-nearest, its own notes (`warnings`), and the solved weights the writer did not
 * pack as MatMulNBits (`notPacked` ends that warning).
 */
function reportSolved(
  report: WeightQuantReport,
  algorithm: 'gptq' | 'awq',
  solution: { solved: ReadonlyMap<string, QuantizedBlocks>; samples: number; skipped: { node: string; reason: string }[] },
  extra: { stats: Record<string, number>; warnings: WeightQuantReport['warnings'] },
  notPacked: string,
): void {
  const packed = report.tensors.filter((t) => solution.solved.has(t.name)).length;
  report.stats[`${algorithm}_layers`] = packed;
  Object.assign(report.stats, extra.stats);
  report.stats.calibration_samples = solution.samples;
  for (const s of solution.skipped) report.warnings.push({ code: `${algorithm}-skipped`, message: `${algorithm}: '${s.node}' rounded to nearest: ${s.reason}`, node: s.node });
  report.warnings.push(...extra.warnings);
  const unpacked = solution.solved.size - packed;
  if (unpacked > 0) report.warnings.push({ code: `${algorithm}-not-packed`, message: `${algorithm}: ${unpacked} ${notPacked}` });
}

/** GPTQ: blocks solved on a copy (its other weights quantized first), then written as solved. */
async function runGptq(model: Model, options: WeightOnlyOptions, ctx: PassContext): Promise<WeightQuantReport> {
  const { method } = options;
  if (SCHEME[method] !== 'linear') throw new Error(`quantize: gptq rounds linear blocks; ${method} has its own scheme`);
  if (options.rounding !== undefined && options.rounding !== 'rtn') throw new Error(`quantize: gptq and ${options.rounding} are two roundings: choose one`);
  const { gptq: _settings, solved: _solved, ...plain } = options;
  const solution = await solveGptq(
    model,
    {
      ...options.gptq,
      calibration: options.gptq?.calibration,
      ...solvedBlocks(options),
      prepare: (work, solvedNodes) => void quantizeWeightsOnly(work, { ...plain, exclude: (node, graph) => solvedNodes.has(node) || (options.exclude?.(node, graph) ?? false) }),
    },
    ctx,
  );
  const report = quantizeWeightsOnly(model, { ...options, solved: solution.solved }, ctx.progress);
  reportSolved(report, 'gptq', solution, { stats: { gptq_rounds: solution.rounds, gptq_pieces: solution.segments }, warnings: [] }, 'solved weights were not written as MatMulNBits (Gemm through DequantizeLinear at this opset) and were rounded to nearest');
  return report;
}

/** AWQ: the model is scaled in place (its float outputs unchanged), then written with the solved blocks. */
async function runAwq(model: Model, options: WeightOnlyOptions, ctx: PassContext): Promise<WeightQuantReport> {
  const { method } = options;
  if (options.gptq !== undefined) throw new Error('quantize: gptq and awq are two algorithms: choose one');
  if (SCHEME[method] !== 'linear') throw new Error(`quantize: awq scales linear blocks; ${method} has its own scheme`);
  if (options.rounding !== undefined && options.rounding !== 'rtn') throw new Error(`quantize: awq rounds to nearest; ${options.rounding} is another rounding: choose one`);
  const solution = await solveAwq(model, { ...options.awq, calibration: options.awq?.calibration, ...solvedBlocks(options) }, ctx);
  const report = quantizeWeightsOnly(model, { ...options, awq: undefined, solved: solution.solved }, ctx.progress);
  const mul = solution.groups.filter((g) => 'mul' in g.folded);
  const first = mul[0]?.folded as { reason: string } | undefined;
  const warnings =
    first === undefined
      ? []
      : [{ code: 'awq-mul', message: `awq: ${mul.length} of ${solution.groups.length} layer inputs are divided by their scales in an inserted Mul (e.g. before '${mul[0].layers[0]}': ${first.reason}); the rest folded into the producing LayerNormalization/MatMul/Gemm` }];
  const stats = { awq_groups: solution.groups.length, awq_folded: solution.groups.length - mul.length, awq_mul: mul.length, awq_clip: options.awq?.clip === false ? 0 : 1 };
  reportSolved(report, 'awq', solution, { stats, warnings }, 'scaled weights were not written as MatMulNBits (Gemm through DequantizeLinear at this opset) and were rounded to nearest as scaled');
  return report;
}
