// `shrink qat IN -o OUT --method int4|int8-weight|int2 --data FILE.npz`: quantization-aware
// training, run by the qat recipe step (src/pipeline/qat.ts). The model is fine-tuned with fake
// quantization on the weights the method quantizes, then written in the same format `shrink
// quantize --method M` writes (only once it loads in onnxruntime), with accuracy of the float model,
// of plain PTQ and of QAT measured on the training data. The data is an .npz holding one array per
// model input (named after it) and the class ids as 'labels' (or --labels FILE.npy). --json prints
// the report in the common envelope. `--method static-int8` trains activations too, by
// distillation on unlabelled data (qat-static-command.ts).
import { type Command, Option } from 'commander';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { outputFileName, quantizeMethod } from '../methods/quantize/registry.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import type { RecipeContext } from '../pipeline/context.js';
import { qat, type QatStepReport } from '../pipeline/qat.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { formatSizeChange, sizeChange } from '../pipeline/size-change.js';
import { InputModelError } from '../pipeline/train.js';
import { QAT_METHODS } from '../train/qat-plan.js';
import type { QatMethod } from '../train/qat.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import { addDistillBlankOptions, type DistillBlankFlags, parseDistillBlank } from './distill-blank-options.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { outputFile, writeModelOutput } from './model-output.js';
import { collect, positiveNumber, wholeNumber } from './options.js';
import { checkOutput } from './output-checks.js';
import { cliRecipeContext } from './recipe-context.js';
import { addTrainingOptions, formatEpoch, optimizerSpec, parseTrainingOptions, type TrainingFlags } from './training-options.js';
import { LABELS_KEY, labelledTrainingData, readLabelledArrays } from './training-data.js';
import { formatStaticQatReport, runStaticQat, type StaticQatCommandReport } from './qat-static-command.js';

interface QatFlags extends TrainingFlags, DistillBlankFlags {
  output: string;
  method: QatMethod | 'static-int8';
  calib?: string;
  distillValue?: string;
  distillLoss?: 'mse' | 'kl';
  temperature?: string;
  teacher?: string;
  scheduleSpan?: 'run' | 'epoch';
  metric?: string;
  tune?: string;
  fitOutputBias?: boolean;
  data: string;
  labels?: string;
  maxSteps?: string;
  blockSize?: string;
  asymmetric?: boolean;
  exclude: string[];
}

/** What `--json` prints: the step's report in the common envelope (size before/after/ratio, structured warnings). */
export type QatCommandReport = ReportEnvelope & Omit<QatStepReport, 'warnings'>;

export function registerQat(program: Command, context: CliContext): void {
  addTrainingOptions(
    addDistillBlankOptions(program
      .command('qat')
      .description('quantization-aware training: fine-tune under fake quantization, then quantize (int8-weight, int4, int2) as `quantize` does; static-int8: train the PTQ graph itself, activations fake-quantized, by distillation from the float model')
      .argument('<input>', 'the trained float ONNX model (a classifier with labels for the weight-only methods)')
      .requiredOption('-o, --output <path>', 'output file, or a folder (gets the transformers.js file name, e.g. model_q4.onnx)')
      .addOption(new Option('--method <method>', 'quantization method: weight-only, or static-int8 (weights and activations)').choices([...QAT_METHODS, 'static-int8']).makeOptionMandatory())
      .requiredOption('--data <file>', `training data: an .npz with one array per model input (named after it) and '${LABELS_KEY}' (static-int8: no labels needed)`)
      .option('--calib <path>', 'static-int8: calibration samples of the PTQ pass, as for quantize (default: --data); its weights and biases train in quantization steps, --lr default 0.01 (1/100 of a step per step)')
      .option('--distill-value <name>', 'static-int8: the value of the float model distilled (default its first output; e.g. the logits before a softmax output)')
      .addOption(new Option('--distill-loss <loss>', 'static-int8: KL of the softmax over the last axis at every position (default; e.g. per time step of CTC logits), or mean squared error').choices(['kl', 'mse']))
      .option('--temperature <t>', 'static-int8: softmax temperature of --distill-loss kl (default 1)'))
      .option('--teacher <file>', 'static-int8: the float model distilled from (default the input), e.g. the original when the input is a pruned student of it')
      .addOption(new Option('--schedule-span <span>', 'static-int8: the rate schedule spans all epochs (run, default: a cosine decays once) or restarts each epoch').choices(['run', 'epoch']))
      .option('--metric <module>', 'static-int8: a .js/.ts module exporting (reference, candidate, sample) => number (higher is better, e.g. a text-mask IoU): the epoch kept is the best by its mean on the calibration samples instead of by SQNR')
      .option('--tune <path>', 'static-int8: samples the epoch kept is chosen on, all of them (default: the first 64 calibration samples); a split neither calibrated nor trained on')
      .option('--fit-output-bias', "static-int8: after every epoch fit additive offsets on the few classes of --distill-value (the logits) where the int8 model's top-1 disagrees most with the float model's, on --data, and keep them for the epoch when they score higher (on --tune with --metric)")
      .option('--labels <file>', "class ids (.npy of integers), one per sample, instead of the archive's labels")
      .option('--max-steps <n>', 'stop after this many steps')
      .option('--block-size <n>', 'block size along K (16-256, default 32), as for quantize')
      .option('--asymmetric', 'asymmetric quantization with zero points (default symmetric)')
      .option('--exclude <pattern>', 'keep nodes in float32: an op type or a node-name regex (repeatable)', collect, []),
    { optimizer: 'adamw' },
  ).action(async (input: string, flags: QatFlags, command: Command) => {
    if (flags.method === 'static-int8') {
      const staticReport = await runStaticQatFlags(input, flags, cliRecipeContext(command, context.io));
      context.io.stdout(flags.json ? `${JSON.stringify(staticReport, null, 2)}\n` : formatStaticQatReport(staticReport));
      return;
    }
    const report = await runQat(input, flags, cliRecipeContext(command, context.io));
    // The text report shows the warnings; with --json they go to stderr for the person watching.
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  });
}

/** static-int8's default --lr: 1/100 of a quantization step per step (the rate at which rec and the Fashion-MNIST CNN gained). */
const STATIC_INT8_RATE = 0.01;

/** static-int8: the flags of the weight-only methods do not apply, and its own only to it. */
function runStaticQatFlags(input: string, flags: QatFlags, cliCtx: RecipeContext): Promise<StaticQatCommandReport> {
  const other = [flags.labels && '--labels', flags.blockSize && '--block-size', flags.asymmetric && '--asymmetric', flags.exclude.length > 0 && '--exclude'].filter((f) => typeof f === 'string');
  if (other.length > 0) throw new UsageError(`${other.join(', ')}: not with --method static-int8 (it distils without labels and quantizes as \`quantize --method static-int8\` does by default)`);
  const maxSteps = flags.maxSteps === undefined ? undefined : wholeNumber(flags.maxSteps, '--max-steps', 1);
  const { threads } = parseTrainingOptions(flags);
  // Its values train in quantization steps: the rate is a share of each one's own step per step.
  const temperature = flags.temperature === undefined ? undefined : positiveNumber(flags.temperature, '--temperature');
  const blank = parseDistillBlank(flags, flags.distillLoss ?? 'kl');
  return runStaticQat(input, { ...flags, lr: flags.lr ?? String(STATIC_INT8_RATE), maxSteps, temperature, distillBlank: undefined, distillBlankWeight: undefined, ...blank }, { ...cliCtx, threads });
}

async function runQat(input: string, flags: QatFlags, cliCtx: RecipeContext): Promise<QatCommandReport> {
  const method = flags.method as QatMethod;
  const own = [flags.calib && '--calib', flags.distillValue && '--distill-value', flags.distillLoss && '--distill-loss', flags.temperature && '--temperature', flags.distillBlank && '--distill-blank', flags.distillBlankWeight && '--distill-blank-weight', flags.teacher && '--teacher', flags.scheduleSpan && '--schedule-span', flags.metric && '--metric', flags.tune && '--tune', flags.fitOutputBias && '--fit-output-bias'].filter((f) => typeof f === 'string');
  if (own.length > 0) throw new UsageError(`${own.join(', ')}: only with --method static-int8`);
  const { epochs, batchSize, schedule, scale, seed, threads } = parseTrainingOptions(flags);
  const maxSteps = flags.maxSteps === undefined ? undefined : wholeNumber(flags.maxSteps, '--max-steps', 1);
  const blockSize = flags.blockSize === undefined ? undefined : wholeNumber(flags.blockSize, '--block-size', 1);
  for (const pattern of flags.exclude) {
    try {
      nodeSelector(pattern, '--exclude');
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const inputs = [input, flags.data, flags.labels];
  checkOutput({ output: flags.output, flag: '-o', inputs, models: [input], folderAllowed: true });
  // A folder gets the method's file name; that file must not be an input either.
  const output = outputFile(flags.output, outputFileName(input, quantizeMethod(method), { blockSize }), inputs);
  const ctx: RecipeContext = { ...cliCtx, threads };

  const model = await debugPhase(ctx.debug, `qat: read ${input}`, () => loadModelFile(input));
  const data = await debugPhase(ctx.debug, `qat: read ${flags.data}`, async () =>
    labelledTrainingData(await readLabelledArrays({ data: flags.data, labels: flags.labels, models: [model], scale, requireLabels: true })),
  );
  if (batchSize > data.size) throw new UsageError(`--batch-size ${batchSize} is larger than the ${data.size} samples in ${flags.data}`);
  let result: Awaited<ReturnType<typeof qat>>;
  try {
    result = await qat(
      model,
      {
        method,
        blockSize,
        symmetric: flags.asymmetric ? false : undefined,
        exclude: flags.exclude,
        data,
        epochs,
        batchSize,
        schedule,
        optimizer: optimizerSpec(flags.optimizer),
        seed,
        maxSteps,
      },
      ctx,
    );
  } catch (error) {
    if (error instanceof InputModelError) throw inFile(input, error.error);
    throw error;
  }
  // Every accuracy was measured on models in memory; the file is written only once it loads.
  const saved = await debugPhase(ctx.debug, `qat: save ${output}`, () => writeModelOutput(result.model, output));
  const { warnings, ...body } = result.report;
  return envelope({ command: 'qat', input, output: saved.file, size: sizeChange(modelFileBytes(input, model), saved.bytes), warnings: [...warnings, ...saved.warnings] }, body, nodeEnvironment());
}

function formatReport(r: QatCommandReport): string {
  const formats = new Map<string, number>();
  for (const w of r.weights) formats.set(`${w.format} ${w.bits}-bit`, (formats.get(`${w.format} ${w.bits}-bit`) ?? 0) + 1);
  const percent = (v: number) => `${v.toFixed(2)}%`;
  return [
    `qat ${r.method}: ${r.weights.length} weights trained under fake quantization (${[...formats].map(([f, n]) => `${n} ${f}`).join(', ')})`,
    ...r.epochs.map(formatEpoch),
    `accuracy on the training data (${r.samples} samples): float ${percent(r.accuracy.float)}, PTQ ${percent(r.accuracy.ptq)}, QAT ${percent(r.accuracy.qat)}`,
    ...r.warnings.map((w) => `  warning: ${w.message}`),
    `wrote ${r.output}: ${r.size === undefined ? '' : formatSizeChange(r.size)}`,
    '',
  ].join('\n');
}
