// `shrink train IN -o OUT --data FILE.npz`: trains (or fine-tunes, e.g. after compression) a
// classifier's weights with cross-entropy on the data's labels, in onnxruntime, and writes the
// model with its new weights and nothing else changed. Checkpoints after each epoch with
// --checkpoint DIR; --resume DIR continues one. Accuracy is reported before and after, on
// --eval-data when given, else on the training data. The work is the train recipe step
// (src/pipeline/train.ts); this file parses, reads the files, calls it, and writes the result only
// once it loads in onnxruntime. --json prints the report in the common envelope
// (src/pipeline/report-envelope.ts).
import { type Command } from 'commander';
import { loadCheckpointState, saveCheckpoint } from '../node/checkpoint.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import type { RecipeContext } from '../pipeline/context.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import { InputModelError, train, type TrainStepReport } from '../pipeline/train.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import type { TrainerState } from '../train/trainer.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { writeModelOutput } from './model-output.js';
import { collect, positiveNumber } from './options.js';
import { checkOutput } from './output-checks.js';
import { cliRecipeContext } from './recipe-context.js';
import { addTrainingOptions, formatEpoch, parseTrainingOptions, type TrainingFlags } from './training-options.js';
import { LABELS_KEY, labelledTrainingData, readLabelledArrays } from './training-data.js';

interface TrainFlags extends TrainingFlags {
  output: string;
  data: string;
  labels?: string;
  evalData?: string;
  evalLabels?: string;
  logits?: string;
  weightDecay?: string;
  labelSmoothing: string;
  clipNorm?: string;
  freeze: string[];
  checkpoint?: string;
  resume?: string;
}

/** What training found, inside the envelope of `--json`: the step's report, the data it was measured on, the checkpoint. */
export interface TrainResult extends Omit<TrainStepReport, 'accuracy'> {
  accuracy: { data: string } & TrainStepReport['accuracy'];
  checkpoint?: string;
}

/** What `--json` prints: the result in the common envelope, the size as before/after/ratio. */
export type TrainReport = ReportEnvelope & TrainResult;

export function registerTrain(program: Command, context: CliContext): void {
  addTrainingOptions(
    program
      .command('train')
      .description("train or fine-tune a classifier's weights (cross-entropy) in onnxruntime and write the model with the new weights")
      .argument('<input>', 'the ONNX classifier to train (its weights are the starting point)')
      .requiredOption('-o, --output <file>', 'where to write the trained model')
      .requiredOption('--data <file>', `training data: an .npz with one array per model input (named after it) and '${LABELS_KEY}', or an .npy with --labels`)
      .option('--labels <file>', 'class ids (.npy of integers), one per sample')
      .option('--eval-data <file>', 'held-out data for the accuracy report (same form as --data; default: the training data)')
      .option('--eval-labels <file>', 'class ids of --eval-data')
      .option('--logits <name>', 'the output trained with cross-entropy (default: the first output)')
      .option('--weight-decay <w>', 'weight decay (sgd: L2 added to the gradient; adamw: decoupled, default 0.01)')
      .option('--label-smoothing <e>', 'share of the target spread over all classes', '0')
      .option('--clip-norm <n>', 'clip gradients to this global L2 norm')
      .option('--freeze <pattern>', 'keep weights whose name matches this regex unchanged (repeatable)', collect, [])
      .option('--checkpoint <dir>', 'write model.onnx and trainer-state.npz there after every epoch')
      .option('--resume <dir>', 'continue from a checkpoint folder (same model, data and settings)'),
    { optimizer: 'sgd' },
  ).action(async (input: string, flags: TrainFlags, command: Command) => {
    const report = await runTrain(input, flags, cliRecipeContext(command, context.io));
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(input, report));
  });
}

async function runTrain(input: string, flags: TrainFlags, cliCtx: RecipeContext): Promise<TrainReport> {
  const { epochs, batchSize, schedule, scale, seed, threads } = parseTrainingOptions(flags);
  const smoothing = Number(flags.labelSmoothing);
  if (!(smoothing >= 0 && smoothing < 1)) throw new UsageError(`--label-smoothing must be in [0, 1), got '${flags.labelSmoothing}'`);
  const weightDecay = flags.weightDecay === undefined ? undefined : Number(flags.weightDecay);
  if (weightDecay !== undefined && !(weightDecay >= 0)) throw new UsageError(`--weight-decay must be a number >= 0, got '${flags.weightDecay}'`);
  const clipNorm = flags.clipNorm === undefined ? undefined : positiveNumber(flags.clipNorm, '--clip-norm');
  const frozen = flags.freeze.map((pattern) => {
    try {
      return new RegExp(pattern);
    } catch {
      throw new UsageError(`--freeze: '${pattern}' is not a regular expression`);
    }
  });
  const optimizer: OptimizerSpec = flags.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9, weightDecay } : { kind: 'adamw', weightDecay };
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data, flags.labels, flags.evalData, flags.evalLabels], models: [input] });
  const ctx: RecipeContext = { ...cliCtx, threads };

  const model = await debugPhase(ctx.debug, `train: read ${input}`, () => loadModelFile(input));
  const logits = flags.logits ?? model.graph.outputs[0]?.name;
  if (logits === undefined || !model.graph.isGraphOutput(logits))
    throw new Error(`${input}: no output '${flags.logits}' (outputs: ${model.graph.outputs.map((o) => o.name).join(', ')})`);
  const read = (data: string, labels: string | undefined) =>
    debugPhase(ctx.debug, `train: read ${data}`, async () =>
      labelledTrainingData(await readLabelledArrays({ data, labels, models: [model], scale, requireLabels: true, output: logits })),
    );
  const data = await read(flags.data, flags.labels);
  const evaluation = flags.evalData === undefined ? undefined : await read(flags.evalData, flags.evalLabels);
  if (batchSize > data.size) throw new UsageError(`--batch-size ${batchSize} is larger than the ${data.size} samples in ${flags.data}`);
  const resume: TrainerState | undefined = flags.resume === undefined ? undefined : await loadCheckpointState(flags.resume);

  let result: Awaited<ReturnType<typeof train>>;
  try {
    result = await train(
      model,
      {
        data,
        evaluation,
        logits,
        epochs,
        batchSize,
        schedule,
        optimizer,
        labelSmoothing: smoothing,
        clipNorm,
        frozen,
        seed,
        resume,
        afterEpoch: flags.checkpoint === undefined ? undefined : (_epoch, trainer) => saveCheckpoint(trainer, flags.checkpoint as string),
      },
      ctx,
    );
  } catch (error) {
    if (error instanceof InputModelError) throw inFile(input, error.error);
    throw error;
  }
  // The accuracy after was measured on the model in memory; the file is written only once it loads.
  const saved = await debugPhase(ctx.debug, `train: save ${flags.output}`, () => writeModelOutput(result.model, flags.output));
  const { report } = result;
  const body: TrainResult = {
    ...report,
    accuracy: { data: flags.evalData ?? flags.data, ...report.accuracy },
    ...(flags.checkpoint === undefined ? {} : { checkpoint: flags.checkpoint }),
  };
  return envelope({ command: 'train', input, output: saved.file, size: sizeChange(modelFileBytes(input, model), saved.bytes), warnings: saved.warnings }, body, nodeEnvironment());
}

function formatReport(input: string, r: TrainReport): string {
  return [
    `trained ${r.trained_weights} weights (${r.parameters} parameters) of ${input} on ${r.samples} samples`,
    ...r.epochs.map(formatEpoch),
    `accuracy on ${r.accuracy.data}: ${r.accuracy.before.toFixed(2)}% -> ${r.accuracy.after.toFixed(2)}%`,
    `wrote ${r.output} (${r.size?.after} bytes) after ${r.steps} steps${r.checkpoint === undefined ? '' : `; checkpoint in ${r.checkpoint}`}`,
    '',
  ].join('\n');
}
