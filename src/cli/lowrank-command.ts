// `shrink lowrank IN -o OUT (--energy E | --rank R | --ratio P)`: parses the options, reads the
// files, runs the low-rank recipe step (src/pipeline/lowrank.ts) and writes the result only after
// it passed every check: the fidelity check on --data (its first --samples, default 256) or
// generated inputs, the gate (exit 3), and loading in onnxruntime. With --epochs, the factored
// model trains on --data: fine-tuning with its labels, or distillation from the original without
// them (AdamW by default: SGD at its default rate 0.05 cost the Fashion-MNIST MLP 0.7 points
// where AdamW at 1e-3 gained 0.3). --json prints the report in the common envelope.
import { checkDataFlags, checkLayerPatterns } from './data-flags.js';
import { runStepAndWrite } from './step-output.js';
import { arrayCheckSamples, DEFAULT_CHECK_SAMPLES } from './array-check-samples.js';
import type { Command } from 'commander';
import { debugPhase } from '../pipeline/debug-phase.js';
import { checkLowRankSettings, type LowRankStepOptions, lowRank } from '../pipeline/lowrank.js';
import { formatLowRankReport } from '../pipeline/lowrank-report.js';
import type { RecoveryData } from '../pipeline/recovery.js';
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

interface LowRankFlags extends TrainingFlags, GateFlags {
  output: string;
  energy?: string;
  rank?: string;
  ratio?: string;
  exclude: string[];
  only: string[];
  data?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  bench?: boolean;
}


export function registerLowRank(program: Command, context: CliContext): void {
  const command = program
    .command('lowrank')
    .description('factor MatMul/Gemm/Conv weights into two smaller layers by SVD (where that saves parameters), optionally recover by training, check it, and write it')
    .argument('<input>', 'the ONNX model to factor')
    .requiredOption('-o, --output <file>', 'where to write the factored model')
    .option('--energy <e>', "keep this share of each layer's squared singular values (0 < e <= 1), e.g. 0.99")
    .option('--rank <r>', 'keep r singular values in every layer (r >= 1)')
    .option('--ratio <p>', "the model's parameters after, as a share of before (0 < p < 1): ranks chosen together, least energy lost per parameter saved")
    .option('--exclude <pattern>', 'leave these layers alone: an op type or a node-name regex (repeatable)', collect, [])
    .option('--only <pattern>', 'factor only these layers (repeatable; --exclude still applies)', collect, [])
    .option('--data <file>', `samples: an .npz keyed by input name (plus '${LABELS_KEY}') or an .npy for a one-input model; checks the result and feeds --epochs`)
    .option('--labels <file>', 'class ids of --data (.npy of integers): fine-tuning instead of distillation, and accuracy')
    .option('--samples <n>', `samples of --data compared with the original (default ${DEFAULT_CHECK_SAMPLES}; 0 skips the check), or generated inputs without --data (default 4)`)
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples: name=value,...');
  addGateOptions(addBenchOption(addTrainingOptions(command, { optimizer: 'adamw' }))).action(async (input: string, flags: LowRankFlags, cmd: Command) => {
    const ctx = cliRecipeContext(cmd, context.io);
    const recover = cmd.getOptionValueSource('epochs') === 'cli';
    const report = await runLowRank(input, flags, recover, ctx);
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `input      ${input}\noutput     ${report.output}\n${formatLowRankReport(report)}${formatSpeedLine(report.speed)}`);
  });
}

/** A number option, or a usage error naming the flag and the range. */
function numberOption(text: string | undefined, flag: string, range: string, ok: (x: number) => boolean): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/\S/.test(text) || !ok(value)) throw new UsageError(`${flag} must be a number with ${range}, got '${text}'`);
  return value;
}

async function runLowRank(input: string, flags: LowRankFlags, recover: boolean, cliCtx: ReturnType<typeof cliRecipeContext>) {
  // Everything that can be wrong with the command line is found before any file is read.
  const given = [flags.energy, flags.rank, flags.ratio].filter((x) => x !== undefined).length;
  if (given !== 1) throw new UsageError(given === 0 ? 'lowrank needs one of --energy E (0 < E <= 1), --rank R (R >= 1), --ratio P (0 < P < 1)' : 'give only one of --energy, --rank, --ratio');
  const energy = numberOption(flags.energy, '--energy', '0 < e <= 1', (x) => x > 0 && x <= 1);
  const rank = flags.rank === undefined ? undefined : wholeNumber(flags.rank, '--rank', 1);
  const ratio = numberOption(flags.ratio, '--ratio', '0 < p < 1', (x) => x > 0 && x < 1);
  checkLayerPatterns(flags.exclude, flags.only);
  const { samples, gate } = checkDataFlags(flags, recover, 'the factored model');
  const training = parseTrainingOptions(flags);
  try {
    checkLowRankSettings({ energy, rank, ratio });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data, flags.labels], models: [input] });
  const ctx = { ...cliCtx, threads: training.threads };

  const original = loadModelFile(input);
  const arrays =
    flags.data === undefined
      ? undefined
      : await debugPhase(ctx.debug, `lowrank: read ${flags.data}`, () => readLabelledArrays({ data: flags.data as string, labels: flags.labels, models: [original], scale: training.scale, requireLabels: false }));
  const data: RecoveryData | undefined = arrays === undefined ? undefined : { inputs: arrays.inputs, labels: arrays.labels };
  if (flags.maxDrop !== undefined && arrays?.labels === undefined) throw new UsageError('--max-drop measures accuracy: give labels (in --data or with --labels)');
  const fidelity = arrayCheckSamples(original, flags, data, samples);
  const options: LowRankStepOptions = {
    energy,
    rank,
    ratio,
    exclude: flags.exclude,
    only: flags.only.length === 0 ? undefined : flags.only,
    data,
    recovery: recover ? stepTraining(training) : undefined,
    fidelity: 'samples' in fidelity ? { samples: fidelity.samples, labels: fidelity.labels } : undefined,
    fidelitySkipped: 'skipped' in fidelity ? fidelity.skipped : undefined,
    gate,
  };
  return runStepAndWrite(
    'lowrank',
    { input, output: flags.output, exclude: flags.exclude, only: flags.only },
    original,
    () => lowRank(original, options, ctx),
    ctx,
    [],
    { flags, arrays: data?.inputs, slowerHint: 'two thin matrix products can take longer than one: a lower --energy or --ratio factors fewer, smaller layers' },
  );
}

