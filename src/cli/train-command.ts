// `shrink train IN -o OUT --data FILE.npz`: trains (or fine-tunes, e.g. after compression) a
// classifier's weights with cross-entropy on the data's labels, in onnxruntime, and writes the
// model with its new weights and nothing else changed. Checkpoints after each epoch with
// --checkpoint DIR; --resume DIR continues one. Accuracy is reported before and after, on
// --eval-data when given, else on the training data. --json prints the report in the common
// envelope (src/pipeline/report-envelope.ts).
import { type Command } from 'commander';
import { DataType, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { loadCheckpointState, saveCheckpoint } from '../node/checkpoint.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes, type SavedModel, saveModel } from '../node/model-files.js';
import { nodeOrt } from '../node/ort-node.js';
import type { RecipeContext } from '../pipeline/context.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import { arrayTrainingData } from '../train/array-data.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import { dataAccuracy } from '../train/qat-accuracy.js';
import { type TrainingData, Trainer } from '../train/trainer.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import { debugPhase } from './debug-phase.js';
import { checkOutput } from './output-checks.js';
import type { CliContext } from './main.js';
import { cliRecipeContext } from './recipe-context.js';
import { addTrainingOptions, type EpochSummary, epochSummaries, formatEpoch, parseTrainingOptions, type TrainingFlags } from './training-options.js';
import { collect, positiveNumber } from './options.js';
import { LABELS_KEY, type LabelledArrays, readLabelledArrays } from './training-data.js';

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

/** What training found, inside the envelope of `--json`. */
export interface TrainResult {
  samples: number;
  trained_weights: number;
  parameters: number;
  epochs: EpochSummary[];
  steps: number;
  accuracy: { data: string; before: number; after: number };
  checkpoint?: string;
}

/** What `--json` prints: the result in the common envelope, the size as before/after/ratio. */
export type TrainReport = ReportEnvelope & TrainResult;

/** The trainer's label input (training-graph.ts adds it for cross-entropy). */
const LABEL_INPUT = 'train/labels';

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

async function runTrain(input: string, flags: TrainFlags, ctx: RecipeContext): Promise<TrainReport> {
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
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data, flags.labels, flags.evalData, flags.evalLabels], models: [input] });

  const model = await debugPhase(ctx.debug, `train: read ${input}`, () => loadModelFile(input));
  const logits = flags.logits ?? model.graph.outputs[0]?.name;
  if (logits === undefined || !model.graph.isGraphOutput(logits))
    throw new Error(`${input}: no output '${flags.logits}' (outputs: ${model.graph.outputs.map((o) => o.name).join(', ')})`);
  const train = labelledData(
    await debugPhase(ctx.debug, `train: read ${flags.data}`, () => readLabelledArrays({
      data: flags.data,
      labels: flags.labels,
      models: [model],
      scale,
      requireLabels: true,
      output: logits,
    })),
  );
  const evaluation =
    flags.evalData === undefined
      ? train
      : labelledData(
          await readLabelledArrays({
            data: flags.evalData,
            labels: flags.evalLabels,
            models: [model],
            scale,
            requireLabels: true,
            output: logits,
          }),
        );
  if (batchSize > train.size) throw new UsageError(`--batch-size ${batchSize} is larger than the ${train.size} samples in ${flags.data}`);
  const accuracy = (m: Model, which: string) =>
    debugPhase(ctx.debug, `train: accuracy ${which}`, () =>
      dataAccuracy(nodeOrt, m, evaluation, {
        labels: LABEL_INPUT,
        output: logits,
        threads,
      }),
    );

  const optimizer: OptimizerSpec = flags.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9, weightDecay } : { kind: 'adamw', weightDecay };
  // Failures to load the model or to build and load its training graph are about the input file.
  let before: number;
  let trainer: Trainer;
  try {
    before = await accuracy(model, 'before');
    trainer = await Trainer.create(nodeOrt, model, { loss: { kind: 'cross-entropy', output: logits, labelSmoothing: smoothing }, optimizer, clipNorm, frozen }, { threads });
  } catch (error) {
    throw inFile(input, error);
  }
  try {
    if (flags.resume !== undefined) trainer.restore(await loadCheckpointState(flags.resume));
    const history = await trainer.fit(train, {
      epochs,
      batchSize,
      schedule,
      seed,
      progress: ctx.progress,
      afterEpoch: (epoch, t) => {
        ctx.debug?.(1, `train: epoch ${epoch + 1} done at step ${t.stepCount}`);
        if (flags.checkpoint !== undefined) saveCheckpoint(t, flags.checkpoint);
        return {};
      },
    });
    const trained = trainer.exportModel();
    let saved: SavedModel;
    try {
      saved = await debugPhase(ctx.debug, `train: save ${flags.output}`, () => saveModel(trained, flags.output));
    } catch (error) {
      throw inFile(flags.output, error);
    }
    const parameters = trainer.training.weights.reduce((n, w) => n + w.initial.elementCount, 0);
    const result: TrainResult = {
      samples: train.size,
      trained_weights: trainer.training.weights.length,
      parameters,
      epochs: epochSummaries(history),
      steps: trainer.stepCount,
      accuracy: {
        data: flags.evalData ?? flags.data,
        before,
        after: await accuracy(trained, 'after'),
      },
      ...(flags.checkpoint === undefined ? {} : { checkpoint: flags.checkpoint }),
    };
    return envelope(
      { command: 'train', input, output: saved.file, size: sizeChange(modelFileBytes(input, model), saved.bytes), warnings: [] },
      result,
      nodeEnvironment(),
    );
  } finally {
    await trainer.release();
  }
}

function labelledData(arrays: LabelledArrays): TrainingData {
  return arrayTrainingData({
    ...arrays.inputs,
    [LABEL_INPUT]: {
      data: arrays.labels as TypedArray,
      sampleDims: [],
      dataType: DataType.INT64,
    },
  });
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
