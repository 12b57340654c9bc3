// The quantization methods shrink offers, in one list: name, what it does, the pass that does it
// (undefined while a method is not implemented yet), how the shared settings become that pass's
// options, and the output file name. File names follow transformers.js where a method is what
// that dtype means (model_fp16.onnx, model_quantized.onnx, model_int8.onnx, model_q4.onnx,
// model_q2.onnx); other methods are named after themselves (model_int8-weight.onnx,
// model_ternary.onnx). `shrink quantize --target transformers.js` (src/pipeline/transformers-js.ts)
// is what writes a complete transformers.js folder: every model file, each dtype, its meaning.

import type { ScaleType } from '../../kernels/quant-formats.js';
import type { Rounding } from '../../kernels/quantize-blocks.js';
import type { Pass } from '../../pipeline/pass.js';
import type { SampleSource } from '../../eval/samples.js';
import type { CalibratorName } from './calibration/registry.js';
import type { BiasShiftEstimate } from './bias-correction.js';
import { dynamicInt8Pass } from './dynamic-int8.js';
import { float16Pass } from './fp16.js';
import type { Float16ComputePolicy } from './fp16-ops.js';
import { firstMatch, nodeSelector } from './node-selector.js';
import { staticInt8Pass } from './static-int8.js';
import { weightOnlyPass } from './weight-only.js';

export const QUANTIZE_METHOD_NAMES = ['fp16', 'bf16', 'int8-weight', 'int4', 'int2', 'ternary', 'binary', 'dynamic-int8', 'static-int8'] as const;
export type QuantizeMethodName = (typeof QUANTIZE_METHOD_NAMES)[number];

/** Settings every method reads what applies to it from (the command line and config file fill them). */
export interface QuantizeSettings {
  /** Node-name regexes or op types left in float32. */
  exclude?: readonly string[];
  /** Nodes a precision config gives another precision than the method's (see mixed-precision.ts). */
  mixed?: readonly { match: string; precision: string }[];
  /** When given, only nodes matching one of these (op types or name regexes) are quantized. */
  only?: readonly string[];
  /** Keep the first and the last this many weighted layers in float32 (resolved to `exclude` by the caller: see first-last-layers.ts). */
  keepFirstLast?: number;
  /** Node-name regexes or op types forced to the method's precision (fp16: even ops on the block list). */
  force?: readonly string[];
  blockSize?: number;
  symmetric?: boolean;
  rounding?: Rounding;
  /**
   * int8-weight, int4, int2: 'gptq' solves the MatMul/Gemm blocks from calibration Hessians, 'awq'
   * scales their input features by activation size before rounding (both need `calibration`).
   */
  algorithm?: 'rtn' | 'gptq' | 'awq';
  /** gptq: quantize each layer's most-used input features first. */
  actOrder?: boolean;
  /** awq: search a clipping factor per block after the scales (default true). */
  awqClip?: boolean;
  /** gptq, awq: calibration samples used (default 128). */
  calibrationSamples?: number;
  scaleType?: ScaleType;
  accuracyLevel?: number;
  /** fp16: which ops compute in float16 (default 'ort-cpu'). */
  compute?: Float16ComputePolicy;
  /** fp16: op types kept in float32 besides the policy's own. */
  blockOps?: readonly string[];
  /** fp16: keep float32 graph inputs and outputs (default true). */
  keepIoTypes?: boolean;
  /** dynamic-int8: one scale per output channel (default true) or per tensor. */
  perChannel?: boolean;
  /** dynamic-int8: 7-bit weights for CPUs without VNNI. */
  reduceRange?: boolean;
  /** dynamic-int8 and static-int8: int8 (default) or uint8 weight codes. */
  weightType?: 'int8' | 'uint8';
  /**
   * static-int8: code type of the activations (default uint8, int8 with symmetric activations).
   * dynamic-int8 has only uint8: onnxruntime quantizes its activations with DynamicQuantizeLinear.
   */
  activationType?: 'int8' | 'uint8';
  /** static-int8: Q/DQ pairs (default), or QLinearConv/QLinearMatMul where the pattern allows. */
  format?: 'qdq' | 'qoperator';
  /** static-int8 (required), gptq and awq: the calibration samples. */
  calibration?: SampleSource;
  /** static-int8: how activation ranges come from the calibration statistics (default minmax). */
  calibrator?: CalibratorName;
  /** static-int8: the percentile calibrator's percentile (default 99.999). */
  percentile?: number;
  /** static-int8: SmoothQuant's α in [0, 1] (activation outliers of MatMul/Gemm inputs moved into the weights). */
  smooth?: number;
  /** static-int8: empirical bias correction of Conv/Gemm outputs on the calibration samples (default: on with at least 4 real samples; false skips it). */
  biasCorrection?: boolean;
  /** static-int8: bias correction's means on at most this many calibration samples (default 8 when on by default, else all). */
  biasCorrectionSamples?: number;
  /** static-int8: activation ranges from at most this many calibration samples (default all; bias correction keeps its own count). */
  rangeSamples?: number;
  /** static-int8: how bias correction estimates each channel's shift from the runs (default 'mean'; bias-shift.ts). */
  biasCorrectionShift?: BiasShiftEstimate;
  /** static-int8: leave out of each activation range what its readers cannot tell apart (default false; calibration/dead-zones.ts). */
  deadZones?: boolean;
  /**
   * static-int8: keep the first N weighted layers and the nodes before the next in float32
   * (float-prefix.ts); 'auto' (the quantize step's default): as many as hold at most 12% of the
   * multiply-accumulates.
   */
  floatPrefix?: number | 'auto';
}

export interface QuantizeMethod {
  readonly name: QuantizeMethodName;
  readonly description: string;
  /** The pass, or undefined while the method is not implemented. */
  readonly pass: Pass<never> | undefined;
  /** The pass's options from the shared settings. */
  options(settings: QuantizeSettings): unknown;
  /**
   * What the output's file name adds to the input's when the output is a folder: `_fp16` makes
   * `encoder_model.onnx` into `encoder_model_fp16.onnx`, the names transformers.js resolves.
   */
  outputSuffix(settings: QuantizeSettings): string;
}

/**
 * The pass-level exclusion test from `exclude` and `only`: a node is left alone when an exclude
 * pattern matches it, or when `only` is given and none of its patterns do. Undefined when neither.
 */
export function excludePredicate(s: QuantizeSettings): ((node: Parameters<typeof firstMatch>[1]) => boolean) | undefined {
  const excluded = (s.exclude ?? []).map((p) => nodeSelector(p, 'exclude'));
  const only = s.only?.map((p) => nodeSelector(p, 'only'));
  if (excluded.length === 0 && only === undefined) return undefined;
  return (node) => firstMatch(excluded, node) !== undefined || (only !== undefined && firstMatch(only, node) === undefined);
}

function float16Method(name: 'fp16' | 'bf16'): QuantizeMethod {
  return {
    name,
    description:
      name === 'fp16'
        ? 'float16 weights; float16 compute where onnxruntime CPU has kernels (--compute all for GPU targets)'
        : 'bfloat16 weights, cast to float32 where read (onnxruntime CPU has no bfloat16 math kernels)',
    pass: float16Pass as Pass<never>,
    options: (s) => ({
      format: name === 'fp16' ? 'float16' : 'bfloat16',
      compute: s.compute,
      blockOps: s.blockOps,
      keepIoTypes: s.keepIoTypes,
      exclude: s.exclude,
      only: s.only,
      force: s.force,
    }),
    outputSuffix: () => `_${name}`,
  };
}

function weightOnlyMethod(
  name: 'int8-weight' | 'int4' | 'int2' | 'ternary' | 'binary',
  description: string,
  suffix: (s: QuantizeSettings) => string,
): QuantizeMethod {
  return {
    name,
    description,
    pass: weightOnlyPass as Pass<never>,
    options: (s) => {
      if ((s.algorithm === 'gptq' || s.algorithm === 'awq') && s.calibration === undefined) throw new Error(`quantize: ${s.algorithm} needs calibration data (--calib DATA)`);
      return {
        method: name,
        blockSize: s.blockSize,
        symmetric: s.symmetric,
        rounding: s.rounding,
        scaleType: s.scaleType,
        accuracyLevel: s.accuracyLevel,
        exclude: excludePredicate(s),
        gptq: s.algorithm === 'gptq' ? { calibration: s.calibration, samples: s.calibrationSamples, actOrder: s.actOrder } : undefined,
        awq: s.algorithm === 'awq' ? { calibration: s.calibration, samples: s.calibrationSamples, clip: s.awqClip } : undefined,
      };
    },
    outputSuffix: suffix,
  };
}

export const QUANTIZE_METHODS: readonly QuantizeMethod[] = [
  float16Method('fp16'),
  float16Method('bf16'),
  // Not model_q8/model_quantized: transformers.js's q8 means dynamic int8, which this is not.
  weightOnlyMethod('int8-weight', 'int8 weights (MatMulNBits, GatherBlockQuantized, DequantizeLinear), float compute', () => '_int8-weight'),
  weightOnlyMethod('int4', 'int4 block-quantized weights (MatMulNBits bits=4)', (s) => (s.scaleType === 'float16' ? '_q4f16' : '_q4')),
  weightOnlyMethod('int2', 'int2 block-quantized weights (MatMulNBits bits=2)', () => '_q2'),
  weightOnlyMethod('ternary', 'ternary weights (-1/0/+1 and a scale, "1.58-bit") in the 2-bit format', () => '_ternary'),
  weightOnlyMethod('binary', 'binary weights (+-scale) in the 2-bit format', () => '_binary'),
  {
    name: 'dynamic-int8',
    description: 'int8 weights and activations with scales computed at run time (DynamicQuantizeMatMul, DynamicQuantizeLSTM; Conv weights int8, float compute)',
    pass: dynamicInt8Pass as Pass<never>,
    options: (s) => {
      return {
        weightType: s.weightType,
        symmetric: s.symmetric,
        perChannel: s.perChannel,
        reduceRange: s.reduceRange,
        exclude: excludePredicate(s),
      };
    },
    outputSuffix: () => '_quantized',
  },
  {
    name: 'static-int8',
    description: 'int8 QDQ with activation ranges calibrated on sample data (QLinearConv, QGemm, QLinearMatMul, ... in onnxruntime)',
    pass: staticInt8Pass as Pass<never>,
    options: (s) => {
      if (s.calibration === undefined) throw new Error('static-int8 needs calibration data (--calib DATA)');
      return {
        calibration: s.calibration,
        calibrator: s.calibrator,
        percentile: s.percentile,
        perChannel: s.perChannel,
        symmetric: s.symmetric,
        weightType: s.weightType,
        activationType: s.activationType,
        reduceRange: s.reduceRange,
        format: s.format,
        smooth: s.smooth,
        // The command corrects biases by default when the calibration data is real and enough (static-int8.ts).
        biasCorrection: s.biasCorrection ?? 'auto',
        biasCorrectionSamples: s.biasCorrectionSamples,
        biasCorrectionShift: s.biasCorrectionShift,
        rangeSamples: s.rangeSamples,
        deadZones: s.deadZones,
        // The command keeps a start of the network float by default (float-prefix.ts).
        floatPrefix: s.floatPrefix ?? 'auto',
        exclude: excludePredicate(s),
      };
    },
    // Not _int8: transformers.js's int8 means dynamic int8 weights, and this is QDQ with calibrated activations.
    outputSuffix: () => '_static_int8',
  },
];

/** The method called `name`, or an error listing the known ones. */
export function quantizeMethod(name: string): QuantizeMethod {
  const method = QUANTIZE_METHODS.find((m) => m.name === name);
  if (method === undefined) throw new Error(`unknown quantization method '${name}' (known: ${QUANTIZE_METHOD_NAMES.join(', ')})`);
  return method;
}

/** The file a method writes into an output folder: the input's name with the method's suffix. */
export function outputFileName(input: string, method: QuantizeMethod, settings: QuantizeSettings): string {
  const base = input.split(/[\\/]/).pop() ?? 'model.onnx';
  return `${base.replace(/\.onnx$/i, '')}${method.outputSuffix(settings)}.onnx`;
}
