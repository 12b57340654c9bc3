// `shrink cluster IN -o OUT --bits B`: weight sharing. Parses the options, reads the files, runs the
// cluster recipe step (src/pipeline/cluster.ts) and writes the result only after it passed every
// check: the fidelity check on --data (its first --samples, default 256) or generated inputs, the
// gate (exit 3), and loading in onnxruntime. With --epochs the centroids train on --data:
// fine-tuning with its labels, or distillation from the original without them. --json prints the
// report in the common envelope.
import { checkDataFlags, checkLayerPatterns } from './data-flags.js';
import { addDistillBlankOptions, addDistillCtcExtrasOptions, type DistillBlankFlags, type DistillCtcExtrasFlags, parseDistillBlank, parseDistillCtcExtras } from './distill-blank-options.js';
import { runStepAndWrite } from './step-output.js';
import { arrayCheckSamples, DEFAULT_CHECK_SAMPLES } from './array-check-samples.js';
import { type Command, Option } from 'commander';
import { type LayerSetting, MAX_BITS, MIN_BITS } from '../methods/cluster/cluster.js';
import { type ClusterData, type ClusterStepOptions, checkClusterSettings, cluster } from '../pipeline/cluster.js';
import { formatClusterReport } from '../pipeline/cluster-report.js';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import { OBS_CODE_SAMPLES } from '../methods/cluster/obs-assignment.js';
import { calibrationSamples } from './calibration-samples.js';
import { UsageError } from './errors.js';
import { addGateOptions, type GateFlags, } from './gate-options.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { collect, wholeNumber } from './options.js';
import { checkOutput } from './output-checks.js';
import { cliRecipeContext } from './recipe-context.js';
import { addBenchOption, formatSpeedLine } from './speed-check.js';
import { LABELS_KEY, readLabelledArrays } from './training-data.js';
import { addTrainingOptions, parseTrainingOptions, stepTraining, type TrainingFlags } from './training-options.js';

interface ClusterFlags extends TrainingFlags, GateFlags, DistillBlankFlags, DistillCtcExtrasFlags {
  output: string;
  bits?: string;
  step?: string;
  layerStep: string[];
  distillLoss?: 'mse' | 'kl';
  perChannel?: boolean;
  group?: string;
  init: 'linear' | 'kmeans++';
  keepZeros: 'auto' | 'yes' | 'no';
  importance?: boolean;
  codes: 'nearest' | 'obs';
  codeTarget?: 'layer' | 'original';
  exclude: string[];
  only: string[];
  layerBits: string[];
  halfCodebooks?: boolean;
  codebookMantissaBits?: string;
  layerMantissaBits: string[];
  layerGroup: string[];
  distillValue?: string;
  data?: string;
  calib?: string;
  calibSamples?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  bench?: boolean;
}


export function registerCluster(program: Command, context: CliContext): void {
  const command = program
    .command('cluster')
    .description('share weights: k-means codebooks of 2^bits centroids per tensor, channel or group of channels (uint8 codes + a codebook, decoded by Gather in standard ONNX), optionally fine-tune the centroids, check it, and write it')
    .argument('<input>', 'the ONNX model to cluster')
    .requiredOption('-o, --output <file>', 'where to write the clustered model')
    .option('--bits <b>', `bits per code: at most 2^b centroids per codebook (${MIN_BITS} to ${MAX_BITS}); or --step`)
    .option('--step <s>', 'uniform codes instead of k-means: round each group (channel, --group, tensor) to multiples of s times its RMS (up to 256 levels, DequantizeLinear, one scale per group); a pack entropy-codes the codes, e.g. 0.3')
    .option('--per-channel', 'one codebook per output channel (default: one per tensor)')
    .option('--group <n>', 'one codebook per n neighbouring output channels')
    .addOption(new Option('--init <kind>', 'k-means start: linear between min and max (Deep Compression\'s choice) or kmeans++ (seeded by --seed)').choices(['linear', 'kmeans++']).default('linear'))
    .addOption(new Option('--keep-zeros <when>', 'keep exact zeros exact with a zero centroid of their own: auto (tensors at least 5% zero, e.g. pruned), yes, no').choices(['auto', 'yes', 'no']).default('auto'))
    .option('--importance', 'weigh each weight by the mean square of the input it multiplies, measured on --data (or generated inputs)')
    .addOption(new Option('--codes <rule>', "how each weight picks its centroid: nearest, or obs (GPTQ's column sweep on 64 samples of --calib, else of --data after the checked ones: each rounding error taken up by the layer's later weights, so its outputs stay close)").choices(['nearest', 'obs']).default('nearest'))
    .addOption(new Option('--code-target <target>', "with --codes obs, what each layer's codes keep: layer (its own float outputs on the inputs the clustered layers before it give) or original (the original model's outputs of that layer, which also takes out the drift of the layers before)").choices(['layer', 'original']))
    .option('--exclude <pattern>', 'leave these layers alone: an op type or a node-name regex (repeatable)', collect, [])
    .option('--only <pattern>', 'cluster only these layers (repeatable; --exclude still applies)', collect, [])
    .option('--layer-bits <pattern=b>', 'bits of the layers a pattern matches (op type or node-name regex; repeatable, the first match wins), e.g. a head at more bits', collect, [])
    .option('--layer-step <pattern=s>', 'uniform-code step of the layers a pattern matches (repeatable, the first match setting bits or a step wins)', collect, [])
    .option('--layer-group <pattern=n>', 'channels per codebook of the layers a pattern matches (1: per channel; repeatable, the first match wins)', collect, [])
    .option('--half-codebooks', 'round the centroids to float16 values (kept as float32): a smaller pack, at 2^-11 relative error per centroid')
    .option('--codebook-mantissa-bits <n>', 'round the k-means centroids to n mantissa bits (1-23, kept as float32): 6 stores a centroid in a pack in about 1.2 bytes (float16: 2.1), at 2^-7 relative error')
    .option('--layer-mantissa-bits <pattern=n>', 'centroid mantissa bits of the layers a pattern matches (repeatable, the first match wins), e.g. 10 for 256-centroid codebooks whose neighbours are closer than 2^-7', collect, [])
    .option('--distill-value <name>', 'without labels, distil this value of the original (e.g. the logits before a softmax output) by mean squared error instead of the output')
    .addOption(new Option('--distill-loss <loss>', 'how --distill-value is matched: mse, or kl per position over its last axis (e.g. each time step of CTC logits)').choices(['mse', 'kl']))
    .option('--data <file>', `samples: an .npz keyed by input name (plus '${LABELS_KEY}') or an .npy for a one-input model; checks the result, feeds --epochs and --importance`)
    .option('--calib <file>', 'samples --codes obs and --importance measure (.npz keyed by input name, or .npy), scaled as --data (default: the --data samples after the ones checked)')
    .option('--calib-samples <n>', `samples --codes obs calibrates on (default ${OBS_CODE_SAMPLES})`)
    .option('--labels <file>', 'class ids of --data (.npy of integers): fine-tuning instead of distillation, and accuracy')
    .option('--samples <n>', `samples of --data compared with the original (default ${DEFAULT_CHECK_SAMPLES}; 0 skips the check), or generated inputs without --data (default 4)`)
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples: name=value,...');
  // AdamW by default: a centroid's gradient sums those of every weight it stands for (thousands),
  // so plain SGD at the usual rates diverges; Adam's steps do not scale with that sum.
  addGateOptions(addBenchOption(addTrainingOptions(addDistillCtcExtrasOptions(addDistillBlankOptions(command)), { optimizer: 'adamw' }))).action(async (input: string, flags: ClusterFlags, cmd: Command) => {
    const ctx = cliRecipeContext(cmd, context.io);
    const finetune = cmd.getOptionValueSource('epochs') === 'cli';
    const report = await runCluster(input, flags, finetune, ctx);
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `input      ${input}\noutput     ${report.output}\n${formatClusterReport(report)}${formatSpeedLine(report.speed)}`);
  });
}

async function runCluster(input: string, flags: ClusterFlags, finetune: boolean, cliCtx: ReturnType<typeof cliRecipeContext>) {
  // Everything that can be wrong with the command line is found before any file is read.
  if (flags.bits === undefined && flags.step === undefined) throw new UsageError('give --bits (k-means codebooks) or --step (uniform codes)');
  const bits = flags.bits === undefined ? MAX_BITS : Number(flags.bits);
  if (flags.bits !== undefined && (!/^\s*\d+\s*$/.test(flags.bits) || !(bits >= MIN_BITS && bits <= MAX_BITS))) throw new UsageError(`--bits must be a whole number from ${MIN_BITS} to ${MAX_BITS}, got '${flags.bits}'`);
  const step = flags.step === undefined ? undefined : positiveNumber(flags.step, '--step');
  if (flags.perChannel === true && flags.group !== undefined) throw new UsageError('--per-channel and --group are two groupings: give one (--group 1 is --per-channel)');
  const channelsPerGroup = flags.group === undefined ? undefined : wholeNumber(flags.group, '--group', 1);
  checkLayerPatterns(flags.exclude, flags.only);
  const layers = [
    ...flags.layerBits.map((text) => layerSetting(text, '--layer-bits')),
    ...flags.layerStep.map((text) => layerSetting(text, '--layer-step')),
    ...flags.layerGroup.map((text) => layerSetting(text, '--layer-group')),
    ...flags.layerMantissaBits.map((text) => layerSetting(text, '--layer-mantissa-bits')),
  ];
  const codebookMantissaBits = flags.codebookMantissaBits === undefined ? undefined : wholeNumber(flags.codebookMantissaBits, '--codebook-mantissa-bits', 1);
  if (flags.distillValue !== undefined && !finetune) throw new UsageError('--distill-value goes with --epochs (centroid fine-tuning)');
  if (flags.distillLoss !== undefined && flags.distillValue === undefined) throw new UsageError('--distill-loss goes with --distill-value');
  const blank = { ...parseDistillBlank(flags, flags.distillLoss), ...parseDistillCtcExtras(flags) };
  const { samples, gate } = checkDataFlags(flags, finetune, 'the centroids');
  if (samples === 0 && flags.importance === true && flags.data === undefined) throw new UsageError('--importance measures activations: give --data, or leave --samples above 0');
  if (flags.codes === 'obs' && flags.data === undefined && flags.calib === undefined) throw new UsageError('--codes obs calibrates each layer on real inputs: give --calib FILE (or --data)');
  const codeSamples = flags.calibSamples === undefined ? undefined : wholeNumber(flags.calibSamples, '--calib-samples', 1);
  if (codeSamples !== undefined && flags.codes !== 'obs') throw new UsageError('--calib-samples goes with --codes obs');
  if (flags.codeTarget !== undefined && flags.codes !== 'obs') throw new UsageError('--code-target goes with --codes obs');
  if (flags.calib !== undefined && flags.codes !== 'obs' && flags.importance !== true) throw new UsageError('--calib goes with --codes obs or --importance (the samples they measure)');
  const training = parseTrainingOptions(flags);
  const grouping = flags.perChannel === true || channelsPerGroup === 1 ? 'channel' : 'tensor';
  const perGroup = channelsPerGroup !== undefined && channelsPerGroup > 1 ? channelsPerGroup : undefined;
  try {
    checkClusterSettings({ bits, step, channelsPerGroup: perGroup, layers, codebookMantissaBits });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data, flags.labels, flags.calib], models: [input] });
  const ctx = { ...cliCtx, threads: training.threads };

  const original = loadModelFile(input);
  const arrays =
    flags.data === undefined
      ? undefined
      : await debugPhase(ctx.debug, `cluster: read ${flags.data}`, () =>
          readLabelledArrays({ data: flags.data as string, labels: flags.labels, models: [original], scale: training.scale, requireLabels: false }),
        );
  const data: ClusterData | undefined = arrays === undefined ? undefined : { inputs: arrays.inputs, labels: arrays.labels };
  if (flags.maxDrop !== undefined && arrays?.labels === undefined) throw new UsageError('--max-drop measures accuracy: give labels (in --data or with --labels)');
  const fidelity = arrayCheckSamples(original, flags, data, samples);
  // Importance reads real samples when there are any (all of --data's first ones), else the generated check inputs.
  // Importance and OBS codes measure --calib, else --data's samples after the checked ones; importance alone may read the generated check inputs.
  const measures = flags.importance === true || flags.codes === 'obs';
  const calib = flags.calib === undefined ? undefined : await debugPhase(ctx.debug, `cluster: read ${flags.calib}`, () => readLabelledArrays({ data: flags.calib as string, models: [original], scale: training.scale, requireLabels: false }));
  const chosen = measures ? calibrationSamples({ calibFile: flags.calib, calib: calib?.inputs, dataFile: flags.data, data: data?.inputs, checked: 'samples' in fidelity ? (samples ?? DEFAULT_CHECK_SAMPLES) : 0, wanted: codeSamples ?? OBS_CODE_SAMPLES }) : undefined;
  const calibration = chosen?.samples ?? (measures && 'samples' in fidelity ? fidelity.samples : undefined);
  const options: ClusterStepOptions = {
    bits,
    ...(step === undefined ? {} : { step }),
    grouping,
    channelsPerGroup: perGroup,
    init: flags.init,
    seed: training.seed,
    keepZeros: flags.keepZeros === 'auto' ? 'auto' : flags.keepZeros === 'yes',
    importance: flags.importance === true,
    ...(flags.codes === 'obs' ? { codes: 'obs' as const, ...(codeSamples === undefined ? {} : { codeSamples }), ...(flags.codeTarget === undefined ? {} : { codeTarget: flags.codeTarget }) } : {}),
    calibration,
    exclude: flags.exclude,
    only: flags.only.length === 0 ? undefined : flags.only,
    layers: layers.length === 0 ? undefined : layers,
    halfCodebooks: flags.halfCodebooks,
    ...(codebookMantissaBits === undefined ? {} : { codebookMantissaBits }),
    data,
    finetune: finetune ? { ...stepTraining(training), distillValue: flags.distillValue, ...(flags.distillLoss === undefined ? {} : { distillLoss: flags.distillLoss }), ...blank } : undefined,
    fidelity: 'samples' in fidelity ? { samples: fidelity.samples, labels: fidelity.labels } : undefined,
    fidelitySkipped: 'skipped' in fidelity ? fidelity.skipped : undefined,
    gate,
  };
  return runStepAndWrite(
    'cluster',
    { input, output: flags.output, exclude: flags.exclude, only: flags.only },
    original,
    () => cluster(original, options, ctx),
    ctx,
    chosen?.warning === undefined ? [] : [{ code: 'calibration-is-check', message: chosen.warning }],
    { flags, arrays: data?.inputs, slowerHint: 'codebooks decode with Gather: onnxruntime folds them once at load with graph optimizations on' },
  );
}


/** A number > 0 given as `text` to `flag`. */
function positiveNumber(text: string, flag: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(Number.isFinite(value) && value > 0)) throw new UsageError(`${flag} must be a number > 0, got '${text}'`);
  return value;
}

/** `PATTERN=N` of --layer-bits (bits), --layer-step (step) or --layer-group (group); the pattern may itself hold '=' (the last one splits). */
const LAYER_VALUE_NAMES = { '--layer-bits': 'BITS', '--layer-step': 'STEP', '--layer-group': 'CHANNELS', '--layer-mantissa-bits': 'BITS' } as const;

function layerSetting(text: string, flag: keyof typeof LAYER_VALUE_NAMES): LayerSetting {
  const at = text.lastIndexOf('=');
  const value = at < 0 ? '' : text.slice(at + 1);
  const number = flag === '--layer-step' ? /^\s*\d*\.?\d+(e-?\d+)?\s*$/i.test(value) && Number(value) > 0 : /^\s*\d+\s*$/.test(value);
  if (at <= 0 || !number) throw new UsageError(`${flag} takes PATTERN=${LAYER_VALUE_NAMES[flag]}, got '${text}'`);
  const pattern = text.slice(0, at);
  try {
    nodeSelector(pattern, flag);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const n = Number(value);
  return flag === '--layer-bits' ? { pattern, bits: n } : flag === '--layer-step' ? { pattern, step: n } : flag === '--layer-group' ? { pattern, group: n } : { pattern, mantissaBits: n };
}
