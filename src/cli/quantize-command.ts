// `shrink quantize IN -o OUT --method M`: parses the options, reads the files, runs the quantize
// recipe step (src/pipeline/quantize.ts) and writes the result (into a folder under the
// transformers.js file name when OUT is a folder) only after it passed every check: fidelity on
// --data (or --calib, or generated inputs), the gate of --min-cosine/--max-drop (exit 3), and
// loading in onnxruntime. --json prints the report in the common envelope. `--target transformers.js`
// writes a whole transformers.js folder instead (transformers-js-command.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { modelSignature } from '../eval/match-inputs.js';
import { generatedSamples } from '../eval/sample-generate.js';
import type { SampleSource } from '../eval/samples.js';
import { isSupportedBlockSize } from '../kernels/quant-formats.js';
import type { Model } from '../ir/model.js';
import { CALIBRATOR_NAMES, type CalibratorName } from '../methods/quantize/calibration/registry.js';
import { parseQuantizeConfig, type QuantizeConfig, settingsFromConfig } from '../methods/quantize/config.js';
import { firstMatch, nodeSelector } from '../methods/quantize/node-selector.js';
import { QUANTIZE_METHOD_NAMES, type QuantizeMethodName, type QuantizeSettings, outputFileName, quantizeMethod } from '../methods/quantize/registry.js';
import { nodeEnvironment } from '../node/environment.js';
import { IN_PROCESS_BYTES } from '../node/load-check.js';
import { modelFileBytes } from '../node/model-files.js';
import { openSampleFile } from '../node/sample-files.js';
import { modelBytes } from '../onnx/model-size.js';
import type { LatencyPlacementOptions } from '../pipeline/latency-placement.js';
import { type QuantizeOptions, quantize } from '../pipeline/quantize.js';
import { formatQuantizeReport } from '../pipeline/quantize-report.js';
import { envelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import { UsageError } from './errors.js';
import { addGateOptions, type GateFlags, gateFromFlags } from './gate-options.js';
import { loadModelFile, readLabelsFile, readTextFile } from './input-files.js';
import type { CliContext } from './main.js';
import { outputFile, writeModelOutput } from './model-output.js';
import { checkOutput } from './output-checks.js';
import { collect, parseDims, positiveNumber, wholeNumber } from './options.js';
import { spillForLargeModel } from './large-models.js';
import { cliRecipeContext } from './recipe-context.js';
import { queueConnection } from '../node/queue/connection.js';
import { addBenchOption, firstInputs, formatSpeedLine, speedCheckWanted } from './speed-check.js';
import { DEFAULT_TRANSFORMERS_JS_DTYPES, TRANSFORMERS_JS_DTYPES } from '../pipeline/transformers-js.js';
import { formatTransformersJsRun, type QuantizeTargetFlags, runTransformersJs, TRANSFORMERS_JS_TARGET, transformersJsSettingsFromFlags } from './transformers-js-command.js';
import { generatedRanges } from '../eval/generated-ranges.js';

interface QuantizeFlags extends GateFlags {
  output: string;
  method?: QuantizeMethodName;
  blockSize?: string;
  symmetric?: boolean;
  asymmetric?: boolean;
  exclude: string[];
  only: string[];
  keepFirstLast?: string | boolean;
  fp32Search?: string;
  fp32Rounds?: string;
  config?: string;
  compute?: 'ort-cpu' | 'all' | 'none';
  json?: boolean;
  data?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  perTensor?: boolean;
  perChannel?: boolean;
  reduceRange?: boolean;
  weightType?: 'int8' | 'uint8';
  activationType?: 'int8' | 'uint8';
  format?: 'qdq' | 'qoperator';
  accuracyLevel?: string;
  calib?: string;
  calibrator?: CalibratorName;
  algorithm?: 'rtn' | 'gptq' | 'awq';
  rounding?: 'rtn' | 'hqq' | 'search' | 'kquant';
  actOrder?: boolean;
  /** false with --no-clip. */
  clip?: boolean;
  /** false with --no-placement. */
  placement?: boolean;
  calibSamples?: string;
  smooth?: string | boolean;
  biasCorrection?: boolean;
  deadZones?: boolean;
  floatPrefix?: string;
  externalData?: boolean;
  target?: string;
  dtype?: string;
  bench?: boolean;
  queue?: string;
  shards?: string;
  /** The logits to fit output offsets on (pipeline/fit-output-bias.ts), on the --calib samples. */
  fitOutputBias?: string;
}

const WEIGHT_ONLY: readonly QuantizeMethodName[] = ['int8-weight', 'int4', 'int2', 'ternary', 'binary'];
const INT8: readonly QuantizeMethodName[] = ['dynamic-int8', 'static-int8'];

/** The methods each method-specific option means something to; elsewhere it is refused. */
const METHOD_OPTIONS: readonly { flag: string; given: (f: QuantizeFlags) => boolean; methods: readonly QuantizeMethodName[] }[] = [
  { flag: '--block-size', given: (f) => f.blockSize !== undefined, methods: WEIGHT_ONLY },
  { flag: '--accuracy-level', given: (f) => f.accuracyLevel !== undefined, methods: WEIGHT_ONLY },
  { flag: '--symmetric', given: (f) => f.symmetric === true, methods: [...WEIGHT_ONLY, ...INT8] },
  { flag: '--asymmetric', given: (f) => f.asymmetric === true, methods: [...WEIGHT_ONLY, ...INT8] },
  { flag: '--compute', given: (f) => f.compute !== undefined, methods: ['fp16'] },
  { flag: '--per-tensor', given: (f) => f.perTensor === true, methods: INT8 },
  { flag: '--per-channel', given: (f) => f.perChannel === true, methods: INT8 },
  { flag: '--reduce-range', given: (f) => f.reduceRange === true, methods: INT8 },
  { flag: '--weight-type', given: (f) => f.weightType !== undefined, methods: INT8 },
  { flag: '--activation-type', given: (f) => f.activationType !== undefined, methods: INT8 },
  { flag: '--format', given: (f) => f.format !== undefined, methods: ['static-int8'] },
  { flag: '--calib', given: (f) => f.calib !== undefined && f.algorithm !== 'gptq' && f.algorithm !== 'awq', methods: ['static-int8'] },
  { flag: '--algorithm', given: (f) => f.algorithm !== undefined, methods: ['int8-weight', 'int4', 'int2'] },
  { flag: '--rounding', given: (f) => f.rounding !== undefined, methods: ['int8-weight', 'int4', 'int2'] },
  { flag: '--calibrator', given: (f) => f.calibrator !== undefined, methods: ['static-int8'] },
  { flag: '--smooth', given: (f) => f.smooth !== undefined, methods: ['static-int8'] },
  { flag: '--bias-correction', given: (f) => f.biasCorrection === true, methods: ['static-int8'] },
  { flag: '--no-bias-correction', given: (f) => f.biasCorrection === false, methods: ['static-int8'] },
  { flag: '--dead-zones', given: (f) => f.deadZones === true, methods: ['static-int8'] },
  { flag: '--float-prefix', given: (f) => f.floatPrefix !== undefined, methods: ['static-int8'] },
];

export function registerQuantize(program: Command, context: CliContext): void {
  const command = program
    .command('quantize')
    .description('quantize a model (fp16, bf16, weight-only int8/int4/int2/ternary/binary, dynamic or static int8), check it against the original, and write it')
    .argument('<input>', 'the ONNX model to quantize')
    .requiredOption('-o, --output <path>', 'output file, or a folder (gets the transformers.js file name, e.g. model_fp16.onnx)')
    .addOption(new Option('--method <method>', 'quantization method').choices([...QUANTIZE_METHOD_NAMES]))
    .addOption(new Option('--target <runtime>', 'write the files a runtime loads: transformers.js (every .onnx of a model folder, each --dtype under its name)').choices([TRANSFORMERS_JS_TARGET]))
    .option('--dtype <list>', `--target transformers.js: dtypes to write (${TRANSFORMERS_JS_DTYPES.join(', ')}; default ${DEFAULT_TRANSFORMERS_JS_DTYPES.join(',')})`)
    .option('--block-size <n>', 'weight-only: block size along K (16, 32, 64, 128 or 256; default 32)')
    .option('--accuracy-level <n>', "weight-only: MatMulNBits' accuracy_level, the lowest compute type onnxruntime may use (0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8)")
    .option('--symmetric', 'weight-only, dynamic-int8: symmetric weights, no zero points (the default); static-int8: symmetric activations')
    .option('--asymmetric', 'weight-only: asymmetric quantization with zero points')
    .option('--exclude <pattern>', 'keep nodes in float32: an op type or a node-name regex (repeatable)', collect, [])
    .option('--only <pattern>', 'quantize only these nodes: an op type or a node-name regex (repeatable; --exclude still applies)', collect, [])
    .option('--keep-first-last [n]', 'keep the first and the last n weighted layers (Conv, MatMul, Gemm, Gather) in float32 (n default 1)')
    .option('--fp32-search <dB>', 'keep layers in float32 from the input on until no layer of the per-layer report is below this SQNR (compared on --data, else --calib)')
    .option('--fp32-rounds <n>', 'at most this many quantize-and-compare rounds for --fp32-search (default 8)')
    .option('--config <file>', 'JSON precision config: settings and per-node rules {"match", "precision"}')
    .addOption(
      new Option('--compute <policy>', 'fp16: ops computing in float16: those with onnxruntime CPU kernels, all but fragile ones, or none').choices(['ort-cpu', 'all', 'none']),
    )
    .option('--per-tensor', 'int8: one weight scale per tensor instead of per output channel')
    .option('--per-channel', 'int8: one weight scale per output channel (the default)')
    .option('--reduce-range', 'int8: 7-bit weights (for CPUs without VNNI)')
    .addOption(new Option('--weight-type <type>', 'int8: weight code type (default int8)').choices(['int8', 'uint8']))
    .addOption(new Option('--activation-type <type>', 'int8: activation code type (static-int8 default uint8, int8 with --symmetric; dynamic-int8 has uint8 only)').choices(['int8', 'uint8']))
    .addOption(new Option('--format <form>', 'static-int8: QuantizeLinear/DequantizeLinear pairs (default), or QLinearConv/QLinearMatMul operators').choices(['qdq', 'qoperator']))
    .option('--calib <path>', 'static-int8, --algorithm gptq or awq: calibration samples (an ONNX test-data folder, .npy, .npz or .json); also the fidelity data without --data')
    .addOption(new Option('--algorithm <name>', 'int8-weight, int4, int2: rtn rounds each block to nearest (default); gptq solves MatMul/Gemm blocks layer by layer from calibration Hessians; awq scales their input features by activation size before rounding (both need --calib)').choices(['rtn', 'gptq', 'awq']))
    .addOption(new Option('--rounding <name>', 'int8-weight, int4, int2: rtn rounds each block to nearest (default); hqq refines scale and zero without data; search tries candidate scales per block and refits them (same layout); kquant adds two-level scales to MatMulNBits (int4 4.5, int2 2.56 bits per weight)').choices(['rtn', 'hqq', 'search', 'kquant']))
    .option('--act-order', 'gptq: quantize the most-used input features of each layer first')
    .option('--no-placement', 'static-int8: keep every layer int8 (by default, while the speed check runs, layers whose int8 kernels profile slower than float32 on this machine stay float32 when that times faster)')
    .option('--no-clip', 'awq: skip the clipping search after the scales (at int4 clipping can cost held-out perplexity; at int2 it helps)')
    .option('--calib-samples <n>', 'gptq, awq: calibration samples used (default 128)')
    .option('--queue <url>', 'static-int8: calibrate on shrink workers through the job queue at redis://HOST:PORT (they read the model and --calib by path)')
    .option('--shards <n>', '--queue: shards the calibration samples are cut into (default 8)')
    .addOption(new Option('--calibrator <name>', 'static-int8: how activation ranges are chosen (default minmax; expected-minmax, minmax as 4 calibration runs give it in expectation, keeps ranges from widening with more calibration data: better on PP-OCRv4 det with 8-16 pages, worse on models calibrated one sample per run; measured: per activation, the rule whose range from half the samples gives the least output error on the other half, slower to quantize)').choices([...CALIBRATOR_NAMES]))
    .option('--smooth [alpha]', 'static-int8: SmoothQuant, move activation outliers of MatMul/Gemm inputs into the weights with strength alpha in [0, 1] (default 0.5)')
    .option('--bias-correction', 'static-int8: remove the mean shift of each Conv/Gemm/MatMul output channel, measured on --calib, from its bias (default: on when --calib holds at least 4 real samples and the layers are at most 48 deep; means on the first 8)')
    .option('--no-bias-correction', 'static-int8: skip bias correction')
    .option('--dead-zones', "static-int8: leave out of each activation's range what its readers cannot tell apart (below -3 before a HardSwish, below 0 before a Relu, outside a HardSigmoid's bounds): a finer step, the same outputs in float; not the default (PP-OCRv4 det: held-out IoU +0.005 on average over 7 calibration page sets, but -0.03..+0.03 by set; rec: fewer words kept)")
    .option('--float-prefix <n|auto>', 'static-int8: keep the first n weighted layers (Conv, MatMul, Gemm) and every node before the next in float32, activations included: the start of a network sees the raw input, so its ranges move most with the calibration samples. Default auto: as many layers as hold at most 12% of the multiply-accumulates (PP-OCRv4 det: 10 layers, held-out text-mask IoU 0.973-0.984 over 7 sets of calibration pages against 0.927-0.960 with every layer int8; rec: 12 layers, 96.75% of held-out words against 77.24%); 0 quantizes every layer')
    .option('--fit-output-bias <value>', "after quantizing, fit additive offsets on the few classes of <value> (the logits, e.g. the input of a final Softmax; every position a row) where the quantized model's top-1 disagrees most with the original's, on the --calib samples, written into <value>'s bias: removes a systematic pull between classes (PP-OCR rec's space against its blank)")
    .option('--data <path>', 'samples to check the result on: an ONNX test-data folder, .npy, .npz or .json (default: --calib, else generated inputs)')
    .option('--labels <file>', 'class ids of --data (.npy of integers or a JSON array): adds accuracy, and --max-drop')
    .option('--samples <n>', 'samples to compare (0 skips the check; default: all of --data, 4 generated)')
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples: name=value,...')
    .option('--external-data', 'store the weights in OUTPUT.data beside the model (automatic over 2 GiB)')
    .option('--json', 'print the report as one JSON object');
  addGateOptions(addBenchOption(command)).action(async (input: string, flags: QuantizeFlags, cmd: Command) => {
    const ctx = cliRecipeContext(cmd, context.io);
    if (flags.target !== undefined || flags.dtype !== undefined) {
      const settings = transformersJsSettingsFromFlags(flags as unknown as QuantizeTargetFlags);
      const result = await runTransformersJs(input, flags, settings, gateFromFlags(flags, flags.labels !== undefined), ctx);
      if (flags.json) for (const warning of result.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
      for (const o of result.outputs) if (o.report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${o.dtype}: ${o.report.verdict.message}\n`);
      context.io.stdout(flags.json ? `${JSON.stringify(result, null, 2)}\n` : `input      ${input}\noutput     ${result.output}\n${formatTransformersJsRun(result)}`);
      return;
    }
    const report = await runQuantize(input, flags, ctx);
    // The text report shows the warnings; with --json they go to stderr for the person watching.
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `input      ${input}\noutput     ${report.output}\n${formatQuantizeReport(report)}${formatSpeedLine(report.speed)}`);
  });
}

async function runQuantize(input: string, flags: QuantizeFlags, ctx: ReturnType<typeof cliRecipeContext>) {
  // Everything that can be wrong with the command line is found before any file is read.
  const config = flags.config === undefined ? undefined : readConfig(flags.config);
  const methodName = flags.method ?? config?.method;
  if (methodName === undefined) throw new UsageError(`quantize: give --method (${QUANTIZE_METHOD_NAMES.join(', ')}) or "method" in --config`);
  const method = quantizeMethod(methodName);
  const base = settingsFromFlags(flags, method.name);
  const settings = config === undefined ? base : settingsFromConfig(config, method.name, base, flags.config as string);
  const samples = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 0);
  const gate = gateFromFlags(flags, flags.labels !== undefined);
  if (flags.labels !== undefined && flags.data === undefined) throw new UsageError('--labels go with --data (the samples they label)');
  if (samples === 0 && Object.keys(gate).length > 0) throw new UsageError('--samples 0 skips the check that --min-cosine/--max-drop need');
  const fp32Search =
    flags.fp32Search === undefined
      ? undefined
      : { toleranceDb: positiveNumber(flags.fp32Search, '--fp32-search'), maxRounds: flags.fp32Rounds === undefined ? undefined : wholeNumber(flags.fp32Rounds, '--fp32-rounds', 1) };
  if (fp32Search === undefined && flags.fp32Rounds !== undefined) throw new UsageError('--fp32-rounds goes with --fp32-search');
  if (fp32Search !== undefined && flags.data === undefined && flags.calib === undefined) throw new UsageError('--fp32-search compares layer by layer on --data or --calib samples: give one');
  if (flags.fitOutputBias !== undefined && flags.calib === undefined) throw new UsageError('--fit-output-bias fits on the --calib samples: give --calib');
  if (method.name === 'static-int8' && flags.calib === undefined) throw new Error('quantize: static-int8 needs calibration data: give --calib DATA (an ONNX test-data folder, .npy, .npz or .json)');
  if ((flags.algorithm === 'gptq' || flags.algorithm === 'awq') && flags.calib === undefined) throw new UsageError(`--algorithm ${flags.algorithm} needs calibration data: give --calib DATA (an ONNX test-data folder, .npy, .npz or .json)`);
  if (flags.actOrder && flags.algorithm !== 'gptq') throw new UsageError('--act-order goes with --algorithm gptq');
  if (flags.clip === false && flags.algorithm !== 'awq') throw new UsageError('--no-clip goes with --algorithm awq');
  if (flags.placement === false && method.name !== 'static-int8') throw new UsageError('--no-placement goes with --method static-int8');
  if (flags.calibSamples !== undefined && flags.algorithm !== 'gptq' && flags.algorithm !== 'awq') throw new UsageError('--calib-samples goes with --algorithm gptq or awq');
  if (flags.queue !== undefined && method.name !== 'static-int8') throw new UsageError(`--queue shares calibration out to workers: it applies to --method static-int8, not ${method.name}`);
  if (flags.shards !== undefined && flags.queue === undefined) throw new UsageError('--shards goes with --queue');
  const shards = flags.shards === undefined ? undefined : wholeNumber(flags.shards, '--shards', 1);
  if (flags.queue !== undefined) {
    try {
      queueConnection(flags.queue);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data, flags.calib, flags.labels, flags.config], models: [input], folderAllowed: true });

  const original = loadModelFile(input);
  const output = outputFile(flags.output, outputFileName(input, method, settings), [input, flags.data, flags.calib, flags.labels, flags.config]);
  fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
  const spill = spillForLargeModel(original, output);
  const unmatched = unmatchedPatterns(original, settings);
  const labels = flags.labels === undefined ? undefined : readLabelsFile(flags.labels);
  const sources: SampleSource[] = [];
  try {
    const calibration = flags.calib === undefined ? undefined : await openSampleFile(flags.calib, modelSignature(original));
    if (calibration !== undefined) sources.push(calibration);
    const data = flags.data === undefined ? calibration : await openSampleFile(flags.data, modelSignature(original));
    if (data !== undefined && data !== calibration) sources.push(data);
    const fidelity = samples === 0 ? { skipped: '--samples 0' } : fidelitySamples(original, data, samples, flags.dims);
    const latencyPlacement = await placementOptions(method.name, flags, original, data ?? calibration);
    const options: QuantizeOptions = {
      ...settings,
      method: method.name,
      calibration,
      fp32Search,
      latencyPlacement,
      fidelity: 'samples' in fidelity ? { samples: fidelity.samples, limit: data === undefined ? undefined : samples, labels } : undefined,
      fidelitySkipped: 'skipped' in fidelity ? fidelity.skipped : undefined,
      gate,
      outputBias: flags.fitOutputBias === undefined || calibration === undefined ? undefined : { value: flags.fitOutputBias, samples: calibration },
    };
    // The queue's client (BullMQ) loads only when a run uses it.
    const queued =
      flags.queue === undefined
        ? ctx
        : { ...ctx, collectStatistics: (await import('../node/queue/sharded-calibration.js')).shardedCalibration({ url: flags.queue, data: flags.calib as string, shards, scratchBeside: output }) };
    const { model, report } = await quantize(original, options, queued);
    const speed = speedCheckWanted(flags.bench) ? { original: { file: input, model: original }, inputs: await firstInputs(data), dims: parseDims(flags.dims), slowerHint: SLOWER_HINTS[method.name] } : undefined;
    const saved = await writeModelOutput(model, output, { externalData: flags.externalData, speed });
    const before = modelFileBytes(input, original);
    return envelope(
      {
        command: 'quantize',
        input,
        output,
        size: sizeChange(before, saved.bytes),
        warnings: [...unmatched.map((pattern) => ({ code: 'unmatched-pattern', message: `'${pattern}' matches no node of ${input}` })), ...report.warnings, ...(report.fidelity?.warnings ?? []), ...saved.warnings],
      },
      { ...report, ...(saved.speed === undefined ? {} : { speed: saved.speed }) },
      nodeEnvironment(),
    );
  } finally {
    for (const source of sources) await source.close?.();
    spill?.dispose();
  }
}

/**
 * The latency placement runs with the speed check (it times too), for static int8 without
 * --fp32-search, on models small enough to run here, profiled on the first sample.
 */
async function placementOptions(method: QuantizeMethodName, flags: QuantizeFlags, original: Model, samples: SampleSource | undefined): Promise<LatencyPlacementOptions | undefined> {
  if (method !== 'static-int8' || flags.placement === false || flags.fp32Search !== undefined || !speedCheckWanted(flags.bench)) return undefined;
  if (modelBytes(original) > IN_PROCESS_BYTES) return undefined;
  const inputs = await firstInputs(samples);
  if (inputs === undefined) return undefined;
  const { profileNodes } = await import('../node/node-profile.js');
  return { inputs, profile: (model, feeds) => profileNodes(model, feeds, { runs: 10 }) };
}

/** What to try when a method's result runs slower than its original (the speed check's warning). */
const SLOWER_HINTS: Partial<Record<QuantizeMethodName, string>> = {
  'dynamic-int8': 'quantizing activations at run time pays off only on large MatMul/Gemm layers: --exclude MatMul or --exclude Gemm keeps small ones in float32',
  'static-int8': 'layers whose integer kernels are slower here can stay float32 with --exclude OP_TYPE; on small models (PP-OCR cls) int8 kernels do not beat float32\'s: keep the original, or --method dynamic-int8 for a smaller file at float32 speed',
  fp16: "onnxruntime's CPU provider has few float16 kernels: --compute none stores float16 weights and computes in float32",
  'int8-weight': 'weight-only formats make files smaller, not faster, on onnxruntime CPU',
  int4: 'weight-only formats make files smaller, not faster, on onnxruntime CPU',
  int2: 'weight-only formats make files smaller, not faster, on onnxruntime CPU',
};

/** The method's settings from the flags; options the method would ignore are refused (exit 2). */
function settingsFromFlags(flags: QuantizeFlags, method: QuantizeMethodName): QuantizeSettings {
  if (flags.symmetric && flags.asymmetric) throw new UsageError('--symmetric and --asymmetric contradict each other');
  if (flags.perTensor && flags.perChannel) throw new UsageError('--per-tensor and --per-channel contradict each other');
  for (const option of METHOD_OPTIONS) {
    if (option.given(flags) && !option.methods.includes(method)) {
      const fix = option.flag === '--calib' ? '; give fidelity samples with --data' : '';
      throw new UsageError(`${option.flag} has no effect with --method ${method} (it applies to ${option.methods.join(', ')})${fix}`);
    }
  }
  // onnxruntime's dynamic quantization has no int8 activations either: DynamicQuantizeLinear is uint8.
  if (method === 'dynamic-int8' && flags.activationType === 'int8') {
    throw new UsageError('--activation-type int8 has no effect with --method dynamic-int8 (its activations are quantized at run time by DynamicQuantizeLinear, which is uint8 only); use --method static-int8 for int8 activations');
  }
  for (const pattern of flags.exclude) checkPattern(pattern, '--exclude');
  for (const pattern of flags.only) checkPattern(pattern, '--only');
  const blockSize = flags.blockSize === undefined ? undefined : wholeNumber(flags.blockSize, '--block-size', 1);
  if (blockSize !== undefined && !isSupportedBlockSize(blockSize)) throw new UsageError(`--block-size must be 16, 32, 64, 128 or 256, got ${blockSize}`);
  return {
    exclude: flags.exclude,
    only: flags.only.length === 0 ? undefined : flags.only,
    keepFirstLast: flags.keepFirstLast === undefined ? undefined : flags.keepFirstLast === true ? 1 : wholeNumber(flags.keepFirstLast as string, '--keep-first-last', 0),
    blockSize,
    accuracyLevel: flags.accuracyLevel === undefined ? undefined : accuracyLevel(flags.accuracyLevel),
    symmetric: flags.asymmetric ? false : flags.symmetric ? true : undefined,
    compute: flags.compute,
    // Per-channel weights are the default for both int8 methods: per-tensor scales wrecked PP-OCRv4 rec.
    perChannel: flags.perTensor ? false : INT8.includes(method) ? true : undefined,
    calibrator: flags.calibrator,
    reduceRange: flags.reduceRange,
    weightType: flags.weightType,
    activationType: flags.activationType,
    format: flags.format,
    algorithm: flags.algorithm,
    rounding: flags.rounding,
    actOrder: flags.actOrder,
    awqClip: flags.clip,
    calibrationSamples: flags.calibSamples === undefined ? undefined : wholeNumber(flags.calibSamples, '--calib-samples', 1),
    smooth: smoothAlpha(flags.smooth),
    biasCorrection: flags.biasCorrection,
    deadZones: flags.deadZones,
    floatPrefix: floatPrefixFlag(flags.floatPrefix),
  };
}

/** --float-prefix: 'auto' or a whole number of layers. */
function floatPrefixFlag(value: string | undefined): number | 'auto' | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === 'auto') return 'auto';
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(Number(value))) throw new UsageError(`--float-prefix must be 'auto' or a whole number >= 0, got '${value}'`);
  return Number(value);
}

/** --smooth's alpha: 0.5 when given bare, else a number in [0, 1]. */
function smoothAlpha(value: string | boolean | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value === true) return 0.5;
  const alpha = Number(value);
  if (String(value).trim() === '' || !(alpha >= 0 && alpha <= 1)) throw new UsageError(`--smooth must be a number in [0, 1], got '${value}'`);
  return alpha;
}

/** --data, else generated inputs (4 by default), or why the check cannot run. */
function fidelitySamples(model: Model, data: SampleSource | undefined, count: number | undefined, dims: string | undefined): { samples: SampleSource } | { skipped: string } {
  if (data !== undefined) return { samples: data };
  try {
    return { samples: generatedSamples(modelSignature(model).inputs, { count: count ?? 4, dims: parseDims(dims), ranges: generatedRanges(model) }) };
  } catch (error) {
    return { skipped: `${(error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N')}, or pass --data` };
  }
}

/** Exclude patterns and config rules that select no node: a typo would silently do nothing. */
function unmatchedPatterns(model: Model, settings: QuantizeSettings): string[] {
  const patterns = [...(settings.exclude ?? []), ...(settings.only ?? []), ...(settings.force ?? []), ...(settings.mixed ?? []).map((r) => r.match)];
  const nodes = [...model.graph.allNodes()].map((n) => n.node);
  return [...new Set(patterns)].filter((pattern) => !nodes.some((node) => firstMatch([nodeSelector(pattern)], node) !== undefined));
}

function readConfig(file: string): QuantizeConfig {
  return parseQuantizeConfig(readTextFile(file), file);
}

function checkPattern(pattern: string, flag: string): void {
  try {
    nodeSelector(pattern, flag);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function accuracyLevel(text: string): number {
  const level = wholeNumber(text, '--accuracy-level', 0);
  if (level > 4) throw new UsageError(`--accuracy-level must be 0 to 4, got ${level}`);
  return level;
}
