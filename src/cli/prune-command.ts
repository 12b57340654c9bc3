// `shrink prune IN -o OUT --method magnitude|nm|channels`: parses the options, reads the files,
// runs the prune recipe step (src/pipeline/prune.ts) and writes the result only after it passed
// every check: the fidelity check on --data (its first --samples, default 256) or generated
// inputs, the gate (exit 3), and loading in onnxruntime. With --epochs, the pruned model trains on
// --data: fine-tuning with its labels, or distillation from the original without them. --json
// prints the report in the common envelope.
import { checkDataFlags, checkLayerPatterns } from './data-flags.js';
import { runStepAndWrite } from './step-output.js';
import { arrayCheckSamples, DEFAULT_CHECK_SAMPLES } from './array-check-samples.js';
import { type Command, Option } from 'commander';
import type { SampleSource } from '../eval/samples.js';
import { IMPORTANCE_NAMES, type ImportanceName } from '../methods/prune/importance.js';
import { parsePattern } from '../methods/prune/nm.js';
import type { LayerRatio } from '../methods/prune/channels.js';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { PRUNE_METHODS, type PruneMethodName } from '../methods/prune/registry.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import { type PruneData, type PruneOptions, checkSettings, prune } from '../pipeline/prune.js';
import { calibrationSamples } from './calibration-samples.js';
import { ONE_SHOT_SAMPLES } from '../methods/prune/one-shot.js';
import type { ArrayField } from '../train/array-data.js';
import { formatPruneReport } from '../pipeline/prune-report.js';
import { addDistillBlankOptions, type DistillBlankFlags, parseDistillBlank } from './distill-blank-options.js';
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

interface PruneFlags extends TrainingFlags, GateFlags, DistillBlankFlags {
  output: string;
  method?: PruneMethodName;
  dropLayers?: string;
  sparsity?: string;
  pattern?: string;
  scope?: 'layer' | 'global';
  importance?: ImportanceName;
  roundTo?: string;
  roundMode?: 'up' | 'nearest';
  maxRatio?: string;
  layerRatio: string[];
  compensate: boolean;
  compensation?: 'mean' | 'lstsq' | 'off';
  reconstruct?: boolean;
  exclude: string[];
  only: string[];
  data?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  calib?: string;
  calibSamples?: string;
  rounds?: string;
  roundSchedule?: 'cubic' | 'linear';
  distillValue?: string;
  distillLoss?: 'mse' | 'kl' | 'bce';
  bench?: boolean;
}

/** The methods each method-specific option means something to; elsewhere it is refused (exit 2). */
const METHOD_OPTIONS: readonly { flag: string; given: (f: PruneFlags) => boolean; methods: readonly PruneMethodName[] }[] = [
  { flag: '--sparsity', given: (f) => f.sparsity !== undefined, methods: ['magnitude', 'channels', 'wanda', 'sparsegpt'] },
  { flag: '--pattern', given: (f) => f.pattern !== undefined, methods: ['nm', 'wanda', 'sparsegpt'] },
  { flag: '--scope', given: (f) => f.scope !== undefined, methods: ['magnitude', 'channels'] },
  { flag: '--importance', given: (f) => f.importance !== undefined, methods: ['channels'] },
  { flag: '--round-to', given: (f) => f.roundTo !== undefined, methods: ['channels'] },
  { flag: '--round-mode', given: (f) => f.roundMode !== undefined, methods: ['channels'] },
  { flag: '--max-ratio', given: (f) => f.maxRatio !== undefined, methods: ['channels'] },
  { flag: '--layer-ratio', given: (f) => f.layerRatio.length > 0, methods: ['channels'] },
  { flag: '--no-compensate', given: (f) => f.compensate === false, methods: ['channels'] },
  { flag: '--compensation', given: (f) => f.compensation !== undefined, methods: ['channels'] },
  { flag: '--reconstruct', given: (f) => f.reconstruct === true, methods: ['channels'] },
  { flag: '--calib', given: (f) => f.calib !== undefined, methods: ['wanda', 'sparsegpt', 'channels'] },
  { flag: '--calib-samples', given: (f) => f.calibSamples !== undefined, methods: ['wanda', 'sparsegpt'] },
  { flag: '--drop-layers', given: (f) => f.dropLayers !== undefined, methods: ['layers'] },
];


export function registerPrune(program: Command, context: CliContext): void {
  const methods = PRUNE_METHODS.filter((m) => m.run !== undefined).map((m) => m.name);
  const command = program
    .command('prune')
    .description('prune a model: zero weights (magnitude, N:M) or remove whole channels (a smaller, faster graph), optionally recover by training, check it, and write it')
    .argument('<input>', 'the ONNX model to prune')
    .requiredOption('-o, --output <file>', 'where to write the pruned model')
    .addOption(
      new Option('--method <method>', 'magnitude: smallest weights to zero; nm: N of every M kept; channels: remove channels; wanda, sparsegpt: one-shot from calibration activations; layers: remove the --drop-layers (the default with --drop-layers)').choices(methods),
    )
    .option('--drop-layers <list>', 'layers: node names, comma-separated, of residual blocks (the Add that closes each: its branch goes) or layers whose input and output shapes agree; train the shallower student back with --data --epochs')
    .option('--sparsity <s>', 'magnitude, wanda, sparsegpt: share of weights zeroed; channels: share of each group\'s channels removed (0 <= s < 1)')
    .option('--pattern <N:M>', 'nm (default 2:4), wanda, sparsegpt: keep N of every M weights along the reduction axis')
    .addOption(new Option('--scope <scope>', 'rank each layer on its own, or all layers together').choices(['layer', 'global']))
    .addOption(new Option('--importance <criterion>', 'channels: rank channels by l1/l2 of their weights in every layer of the group, BatchNorm |scale|, first-order Taylor (needs labelled --data), or mean |activation| on the samples (--calib or --data)').choices([...IMPORTANCE_NAMES]))
    .option('--round-to <n>', 'channels: keep channel counts multiples of n (4, 8, 16 suit fast kernels)')
    .addOption(new Option('--round-mode <mode>', "channels, with --round-to: 'up' rounds every kept count up (fewer channels removed); 'nearest' to the nearest multiple, some groups up and some down, the total removed held at --sparsity").choices(['up', 'nearest']))
    .option('--max-ratio <r>', 'channels: no group loses more than this share of its channels (with --scope global)')
    .option('--layer-ratio <pattern=r>', "channels: share of the channels removed from the groups of the layers a pattern matches (op type or node-name regex; repeatable, the first match wins), instead of --sparsity; with --scope global the ranking fills the rest of the total", collect, [])
    .option('--no-compensate', "channels: do not fold the removed channels' means (measured on --data) into the next layers' biases (as --compensation off)")
    .addOption(new Option('--compensation <mode>', "channels: what replaces a removed channel in the layers reading it, measured on the samples (--calib or --data): its mean folded into their biases (default), 'lstsq' its least-squares fit from the kept channels of the same activation folded into their weights and biases (a Conv/ConvTranspose of group 1, Gemm, MatMul; the mean elsewhere), or 'off'").choices(['mean', 'lstsq', 'off']))
    .option('--reconstruct', "channels: after compensation, refit every MatMul, Gemm and Conv of group 1 by least squares so that its outputs match the original's outputs of that layer, in rounds by depth on the samples (--calib or --data): each layer also takes out the drift of the layers before it")
    .option('--exclude <pattern>', 'leave these layers alone (channels: their output channels stay): an op type or a node-name regex (repeatable)', collect, [])
    .option('--only <pattern>', 'prune only these layers (repeatable; --exclude still applies)', collect, [])
    .option('--data <file>', `samples: an .npz keyed by input name (plus '${LABELS_KEY}') or an .npy for a one-input model; checks the result, feeds --epochs and taylor importance`)
    .option('--labels <file>', 'class ids of --data (.npy of integers): fine-tuning instead of distillation, and accuracy')
    .option('--samples <n>', `samples of --data compared with the original (default ${DEFAULT_CHECK_SAMPLES}; 0 skips the check), or generated inputs without --data (default 4)`)
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples and MAC counts: name=value,...')
    .option('--calib <file>', `wanda, sparsegpt: calibration samples (.npz keyed by input name, or .npy), scaled as --data (default: --data samples after the ones checked); channels: samples whose means compensation folds`)
    .option('--calib-samples <n>', `wanda, sparsegpt: calibration samples used (default ${ONE_SHOT_SAMPLES})`)
    .option('--rounds <n>', 'with --epochs: prune gradually, in n rounds with the sparsity rising on a cubic schedule (AGP), each followed by --epochs of training (channels: each round plans on the model the last one trained)')
    .addOption(new Option('--round-schedule <schedule>', "with --rounds: how the sparsity rises, 'cubic' (default; most of it early) or 'linear' (equal steps)").choices(['cubic', 'linear']))
    .option('--distill-value <name>', 'with --epochs and no labels: distil this value of the original (e.g. the logits before a softmax output) instead of the output')
    .addOption(new Option('--distill-loss <loss>', 'with --distill-value: mean squared error, KL of the softmax over the last axis at every position (e.g. per time step of CTC logits), or binary cross-entropy of the sigmoids (logits before a sigmoid map, e.g. a text detector\'s)').choices(['mse', 'kl', 'bce']));
  addGateOptions(addBenchOption(addTrainingOptions(addDistillBlankOptions(command), { optimizer: 'sgd' }))).action(async (input: string, flags: PruneFlags, cmd: Command) => {
    const ctx = cliRecipeContext(cmd, context.io);
    const recover = cmd.getOptionValueSource('epochs') === 'cli';
    const report = await runPrune(input, flags, recover, ctx);
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `input      ${input}\noutput     ${report.output}\n${formatPruneReport(report)}${formatSpeedLine(report.speed)}`);
  });
}

async function runPrune(input: string, flags: PruneFlags, recover: boolean, cliCtx: ReturnType<typeof cliRecipeContext>) {
  // Everything that can be wrong with the command line is found before any file is read.
  if (flags.method === undefined && flags.dropLayers === undefined) throw new UsageError("required option '--method <method>' not specified");
  const method: PruneMethodName = flags.method ?? 'layers';
  const dropLayers = flags.dropLayers?.split(',').map((n) => n.trim()).filter((n) => n !== '');
  if (method === 'layers' && (dropLayers === undefined || dropLayers.length === 0)) throw new UsageError('--method layers needs --drop-layers NAME[,NAME...] (node names of residual blocks\' Adds or of shape-preserving layers)');
  for (const option of METHOD_OPTIONS) {
    if (option.given(flags) && !option.methods.includes(method)) throw new UsageError(`${option.flag} has no effect with --method ${method} (it applies to ${option.methods.filter((m) => PRUNE_METHODS.find((x) => x.name === m)?.run !== undefined).join(', ')})`);
  }
  const sparsity = flags.sparsity === undefined ? undefined : Number(flags.sparsity);
  if (flags.sparsity !== undefined && (!/\S/.test(flags.sparsity) || !(sparsity !== undefined && sparsity >= 0 && sparsity < 1))) {
    throw new UsageError(`--sparsity must be a number with 0 <= s < 1, got '${flags.sparsity}'`);
  }
  const oneShot = method === 'wanda' || method === 'sparsegpt';
  if (oneShot && sparsity !== undefined && flags.pattern !== undefined) throw new UsageError(`--method ${method} takes --sparsity or --pattern, not both`);
  if (method !== 'nm' && method !== 'layers' && sparsity === undefined && !(oneShot && flags.pattern !== undefined)) throw new UsageError(`--method ${method} needs --sparsity S (0 <= S < 1)${oneShot ? ' or --pattern N:M' : ''}`);
  let pattern: { n: number; m: number } | undefined;
  try {
    pattern = method === 'nm' ? parsePattern(flags.pattern ?? '2:4') : flags.pattern === undefined ? undefined : parsePattern(flags.pattern);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const calibrationSamples = flags.calibSamples === undefined ? undefined : wholeNumber(flags.calibSamples, '--calib-samples', 1);
  const rounds = flags.rounds === undefined ? undefined : wholeNumber(flags.rounds, '--rounds', 1);
  if (rounds !== undefined && !recover) throw new UsageError('--rounds prunes gradually with training between rounds: give --epochs (and --data)');
  if (rounds !== undefined && rounds > 1 && (pattern !== undefined || !['magnitude', 'wanda', 'sparsegpt', 'channels'].includes(method))) throw new UsageError(`--rounds needs a sparsity that can rise: --method magnitude, wanda, sparsegpt or channels with --sparsity`);
  if (flags.roundSchedule !== undefined && rounds === undefined) throw new UsageError('--round-schedule says how the sparsity rises over --rounds: give --rounds N');
  if ((flags.distillValue !== undefined || flags.distillLoss !== undefined) && !recover) throw new UsageError('--distill-value and --distill-loss go with --epochs (distillation from the original on unlabelled --data)');
  if (flags.distillLoss !== undefined && flags.distillValue === undefined) throw new UsageError('--distill-loss goes with --distill-value');
  const blank = parseDistillBlank(flags, flags.distillLoss);
  if (flags.distillValue !== undefined && flags.labels !== undefined) throw new UsageError('--distill-value distils without labels: --labels makes --epochs fine-tune instead');
  if (oneShot && flags.calib === undefined && flags.data === undefined) throw new UsageError(`--method ${method} needs calibration samples: give --calib FILE (or --data)`);
  if (flags.reconstruct === true && flags.calib === undefined && flags.data === undefined) throw new UsageError('--reconstruct refits layers on real samples: give --calib FILE (or --data)');
  if (flags.compensate === false && flags.compensation !== undefined && flags.compensation !== 'off') throw new UsageError(`--no-compensate and --compensation ${flags.compensation} contradict each other`);
  const roundTo = flags.roundTo === undefined ? undefined : wholeNumber(flags.roundTo, '--round-to', 1);
  if (flags.roundMode !== undefined && roundTo === undefined) throw new UsageError('--round-mode says how --round-to rounds: give --round-to N');
  const maxRatio = flags.maxRatio === undefined ? undefined : Number(flags.maxRatio);
  if (maxRatio !== undefined && !(maxRatio > 0 && maxRatio <= 1)) throw new UsageError(`--max-ratio must be a number with 0 < r <= 1, got '${flags.maxRatio}'`);
  const layerRatios = flags.layerRatio.map(layerRatio);
  checkLayerPatterns(flags.exclude, flags.only);
  const { samples, gate } = checkDataFlags(flags, recover, 'the pruned model');
  if (flags.importance === 'taylor' && flags.data === undefined) throw new UsageError('--importance taylor needs labelled --data (its gradients rank the channels)');
  if (flags.importance === 'activation' && flags.data === undefined && flags.calib === undefined) throw new UsageError('--importance activation needs samples to measure: give --calib FILE (or --data)');
  const training = parseTrainingOptions(flags);
  checkSettings({ method, sparsity, pattern, roundTo, maxRatio, calibrationSamples });
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data, flags.labels, flags.calib], models: [input] });
  const ctx = { ...cliCtx, threads: training.threads };

  const original = loadModelFile(input);
  const arrays =
    flags.data === undefined
      ? undefined
      : await debugPhase(ctx.debug, `prune: read ${flags.data}`, () =>
          readLabelledArrays({ data: flags.data as string, labels: flags.labels, models: [original], scale: training.scale, requireLabels: flags.importance === 'taylor', labelsHint: '(taylor importance ranks by the gradients of the labelled loss)' }),
        );
  const data: PruneData | undefined = arrays === undefined ? undefined : { inputs: arrays.inputs, labels: arrays.labels };
  if (flags.distillValue !== undefined && arrays?.labels !== undefined) throw new UsageError(`--distill-value distils without labels, but ${flags.data} has labels: --epochs would fine-tune on them`);
  if (flags.maxDrop !== undefined && arrays?.labels === undefined) throw new UsageError('--max-drop measures accuracy: give labels (in --data or with --labels)');
  const fidelity = arrayCheckSamples(original, flags, data, samples);
  const calib = flags.calib === undefined ? undefined : await debugPhase(ctx.debug, `prune: read ${flags.calib}`, () => readLabelledArrays({ data: flags.calib as string, models: [original], scale: training.scale, requireLabels: false }));
  const calibration = calibrationFor(flags, calib?.inputs, data, 'samples' in fidelity ? samples ?? DEFAULT_CHECK_SAMPLES : 0, calibrationSamples);
  const options: PruneOptions = {
    method,
    sparsity,
    pattern,
    scope: flags.scope,
    importance: flags.importance,
    roundTo,
    roundMode: flags.roundMode,
    maxRatio,
    layerRatios: layerRatios.length === 0 ? undefined : layerRatios,
    compensate: flags.compensate && flags.compensation !== 'off',
    ...(flags.compensation === undefined || flags.compensation === 'off' ? {} : { compensation: flags.compensation }),
    ...(flags.reconstruct === true ? { reconstruct: true } : {}),
    calibration: calibration?.samples,
    calibrationSamples,
    dropLayers,
    exclude: flags.exclude,
    only: flags.only.length === 0 ? undefined : flags.only,
    data,
    recovery: recover ? { ...stepTraining(training), rounds, roundSchedule: flags.roundSchedule, distillValue: flags.distillValue, distillLoss: flags.distillLoss, ...blank } : undefined,
    fidelity: 'samples' in fidelity ? { samples: fidelity.samples, labels: fidelity.labels } : undefined,
    fidelitySkipped: 'skipped' in fidelity ? fidelity.skipped : undefined,
    gate,
  };
  return runStepAndWrite(
    'prune',
    { input, output: flags.output, exclude: flags.exclude, only: flags.only },
    original,
    () => prune(original, options, ctx),
    ctx,
    calibration?.warning === undefined ? [] : [{ code: 'calibration-is-check', message: calibration.warning }],
    { flags, arrays: data?.inputs, slowerHint: PRUNE_SLOWER_HINT[method] },
  );
}

/** Why a pruned model can run slower than its original, for the speed check's warning. */
const PRUNE_SLOWER_HINT: Partial<Record<PruneMethodName, string>> = {
  magnitude: 'zeroed weights make files compress better, not faster: onnxruntime CPU has no sparse kernels (--method channels removes whole channels)',
  nm: 'onnxruntime CPU has no N:M sparse kernels: the zeros make files compress better, not faster',
  wanda: 'onnxruntime CPU has no sparse kernels: the zeros make files compress better, not faster',
  sparsegpt: 'onnxruntime CPU has no sparse kernels: the zeros make files compress better, not faster',
};

/** Calibration samples (calibration-samples.ts); without --calib only the one-shot methods take --data's. */
function calibrationFor(flags: PruneFlags, calib: Record<string, ArrayField> | undefined, data: PruneData | undefined, checked: number, count: number | undefined): { samples: SampleSource; warning?: string } | undefined {
  if (calib === undefined && !(flags.method === 'wanda' || flags.method === 'sparsegpt')) return undefined;
  return calibrationSamples({ calibFile: flags.calib, calib, dataFile: flags.data, data: data?.inputs, checked, wanted: count ?? ONE_SHOT_SAMPLES });
}

/** `PATTERN=R` of --layer-ratio (0 <= R < 1); the pattern may itself hold '=' (the last one splits). */
function layerRatio(text: string): LayerRatio {
  const at = text.lastIndexOf('=');
  const value = at < 0 ? '' : text.slice(at + 1);
  const ratio = Number(value);
  if (at <= 0 || value.trim() === '' || !(ratio >= 0 && ratio < 1)) throw new UsageError(`--layer-ratio takes PATTERN=R with 0 <= R < 1, got '${text}'`);
  const pattern = text.slice(0, at);
  try {
    nodeSelector(pattern, '--layer-ratio');
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return { pattern, ratio };
}
