// `shrink qat IN -o OUT --method int4|int8-weight|int2 --data FILE.npz`: quantization-aware
// training (src/train/qat.ts). The model is fine-tuned with fake quantization on the weights the
// method quantizes, then written in the same format `shrink quantize --method M` writes, with
// accuracy of the float model, of plain PTQ and of QAT measured on the training data. The data is
// an .npz holding one array per model input (named after it) and the class ids as 'labels' (or
// --labels FILE.npy). --json prints the report in the common envelope.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { DataType, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { quantizeMethod } from '../methods/quantize/registry.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes, type SavedModel, saveModel } from '../node/model-files.js';
import { nodeOrt } from '../node/ort-node.js';
import type { RecipeContext } from '../pipeline/context.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { formatSizeChange, sizeChange } from '../pipeline/size-change.js';
import { arrayTrainingData } from '../train/array-data.js';
import { dataAccuracy } from '../train/qat-accuracy.js';
import { QAT_METHODS, type WeightGrouping } from '../train/qat-plan.js';
import { type QatMethod, quantizationAwareTraining } from '../train/qat.js';
import { debugPhase } from './debug-phase.js';
import { inFile, UsageError } from './errors.js';
import type { CliContext } from './main.js';
import { checkOutput, refuseInputs } from './output-checks.js';
import { addTrainingOptions, type EpochSummary, epochSummaries, formatEpoch, parseTrainingOptions, type TrainingFlags } from './training-options.js';
import { loadModelFile } from './input-files.js';
import { collect, wholeNumber } from './options.js';
import { readLabelledArrays } from './training-data.js';
import { cliRecipeContext } from './recipe-context.js';

interface QatFlags extends TrainingFlags {
  output: string;
  method: QatMethod;
  data: string;
  labels?: string;
  maxSteps?: string;
  blockSize?: string;
  asymmetric?: boolean;
  exclude: string[];
}

/** What QAT found, inside the envelope of `--json`. */
export interface QatResult {
  method: QatMethod;
  samples: number;
  epochs: EpochSummary[];
  steps: number;
  /** The weights trained under fake quantization and the format each is written in. */
  weights: {
    name: string;
    format: string;
    bits: number;
    symmetric: boolean;
    grouping: WeightGrouping;
  }[];
  /** Top-1 accuracy (percent) on the training data. */
  accuracy: { float: number; ptq: number; qat: number };
}

/** What `--json` prints: the result in the common envelope (size before/after/ratio, structured warnings). */
export type QatCommandReport = ReportEnvelope & QatResult;

/** The array key holding class ids in the .npz, and the trainer's label input. */
const LABELS_KEY = 'labels';
const LABEL_INPUT = 'train/labels';

export function registerQat(program: Command, context: CliContext): void {
  addTrainingOptions(
    program
      .command('qat')
      .description('quantization-aware training: fine-tune under fake quantization, then quantize (int8-weight, int4, int2) as `quantize` does')
      .argument('<input>', 'the trained float ONNX classifier')
      .requiredOption('-o, --output <path>', 'output file, or a folder (gets the transformers.js file name, e.g. model_q4.onnx)')
      .addOption(new Option('--method <method>', 'weight-only quantization method').choices([...QAT_METHODS]).makeOptionMandatory())
      .requiredOption('--data <file>', `training data: an .npz with one array per model input (named after it) and '${LABELS_KEY}'`)
      .option('--labels <file>', "class ids (.npy of integers), one per sample, instead of the archive's labels")
      .option('--max-steps <n>', 'stop after this many steps')
      .option('--block-size <n>', 'block size along K (16-256, default 32), as for quantize')
      .option('--asymmetric', 'asymmetric quantization with zero points (default symmetric)')
      .option('--exclude <pattern>', 'keep nodes in float32: an op type or a node-name regex (repeatable)', collect, []),
    { optimizer: 'adamw' },
  ).action(async (input: string, flags: QatFlags, command: Command) => {
    const report = await runQat(input, flags, cliRecipeContext(command, context.io));
    // The text report shows the warnings; with --json they go to stderr for the person watching.
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  });
}

async function runQat(input: string, flags: QatFlags, ctx: RecipeContext): Promise<QatCommandReport> {
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
  const outputCheck = { output: flags.output, flag: '-o', inputs: [input, flags.data, flags.labels], models: [input] };
  checkOutput({ ...outputCheck, folderAllowed: true });
  const output = outputPath(flags.output, quantizeMethod(flags.method).outputFileName({ blockSize }));
  // checkOutput passes a folder as is; the file the method names inside it must not be an input either.
  if (output.folder !== undefined) refuseInputs(path.resolve(output.file), { ...outputCheck, output: output.file });

  const model = await debugPhase(ctx.debug, `qat: read ${input}`, () => loadModelFile(input));
  const arrays = await debugPhase(ctx.debug, `qat: read ${flags.data}`, () =>
    readLabelledArrays({
      data: flags.data,
      labels: flags.labels,
      models: [model],
      scale,
      requireLabels: true,
    }),
  );
  const data = arrayTrainingData({
    ...arrays.inputs,
    [LABEL_INPUT]: {
      data: arrays.labels as TypedArray,
      sampleDims: [],
      dataType: DataType.INT64,
    },
  });
  if (batchSize > data.size) throw new UsageError(`--batch-size ${batchSize} is larger than the ${data.size} samples in ${flags.data}`);
  const accuracy = (m: Model) => debugPhase(ctx.debug, 'qat: accuracy', () => dataAccuracy(nodeOrt, m, data, { labels: LABEL_INPUT, threads }));
  let result: Awaited<ReturnType<typeof quantizationAwareTraining>>;
  try {
    result = await quantizationAwareTraining(nodeOrt, model, {
      method: flags.method,
      blockSize,
      symmetric: flags.asymmetric ? false : undefined,
      exclude: flags.exclude,
      data,
      epochs,
      batchSize,
      schedule,
      optimizer: flags.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9 } : { kind: 'adamw' },
      seed,
      maxSteps,
      threads,
      progress: ctx.progress,
      evaluate: accuracy,
    });
  } catch (error) {
    throw inFile(input, error);
  }
  let saved: SavedModel;
  try {
    if (output.folder !== undefined) fs.mkdirSync(output.folder, { recursive: true });
    saved = await debugPhase(ctx.debug, `qat: save ${output.file}`, () => saveModel(result.model, output.file));
  } catch (error) {
    throw inFile(output.file, error);
  }
  const { report } = result;
  const body: QatResult = {
    method: flags.method,
    samples: data.size,
    epochs: epochSummaries(report.history),
    steps: report.steps,
    weights: report.targets.map((t) => ({
      name: t.weight,
      format: t.format,
      bits: t.bits,
      symmetric: t.symmetric,
      grouping: t.grouping,
    })),
    accuracy: report.metric as { float: number; ptq: number; qat: number },
  };
  return envelope(
    {
      command: 'qat',
      input,
      output: saved.file,
      size: sizeChange(modelFileBytes(input, model), saved.bytes),
      warnings: [...report.warnings, ...report.quantization.warnings],
    },
    body,
    nodeEnvironment(),
  );
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

/**
 * The file to write: a folder (existing, or named with a trailing slash) gets the method's file
 * name, and `folder` is set to create it when the model is written.
 */
function outputPath(output: string, fileName: string): { file: string; folder?: string } {
  const isFolder = output.endsWith('/') || output.endsWith(path.sep) || (fs.existsSync(output) && fs.statSync(output).isDirectory());
  return isFolder ? { file: path.join(output, fileName), folder: output } : { file: output };
}
