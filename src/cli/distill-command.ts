// `shrink distill --teacher T.onnx --student S.onnx -o OUT --data FILE.npz`: trains the student on
// the teacher's softened outputs plus the hard labels (the distill recipe step,
// src/pipeline/distill.ts) and writes the student with its new weights, atomically, once it loads
// in onnxruntime. The data is an .npz whose keys are the models' input names (and
// 'labels' for the class ids, unless --labels gives them), or an .npy for a single-input student.
// Training data is held in memory, as the teacher's outputs for every sample are. --json prints
// the report in the common envelope (input: the teacher and the student; size: student -> output).
import { type Command } from 'commander';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import type { RecipeContext } from '../pipeline/context.js';
import { distill, type DistillStepReport } from '../pipeline/distill.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import { InputModelError } from '../pipeline/train.js';
import type { DistillData, FeatureMatch } from '../train/distill.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { writeModelOutput } from './model-output.js';
import { collect, positiveNumber } from './options.js';
import { checkOutput } from './output-checks.js';
import { cliRecipeContext } from './recipe-context.js';
import { addTrainingOptions, formatEpoch, optimizerSpec, parseTrainingOptions, type TrainingFlags } from './training-options.js';
import { LABELS_KEY, readLabelledArrays } from './training-data.js';

interface DistillFlags extends TrainingFlags {
  teacher: string;
  student: string;
  output: string;
  data: string;
  labels?: string;
  temperature: string;
  alpha: string;
  feature: string[];
  teacherOutput?: string;
  studentOutput?: string;
}

/** What `--json` prints: input {teacher, student}, output, size (student -> output), then the step's report. */
export type DistillReport = ReportEnvelope & DistillStepReport;

export function registerDistill(program: Command, context: CliContext): void {
  addTrainingOptions(
    program
      .command('distill')
      .description("train a student model on a teacher's softened outputs and the hard labels (knowledge distillation)")
      .requiredOption('--teacher <file>', 'the trained ONNX model to learn from')
      .requiredOption('--student <file>', 'the ONNX model to train (its current weights are the starting point)')
      .requiredOption('-o, --output <file>', 'where to write the trained student')
      .requiredOption('--data <file>', `training inputs: an .npz keyed by input name (plus '${LABELS_KEY}'), or an .npy for a single-input student`)
      .option('--labels <file>', 'class ids (.npy of integers), one per sample')
      .option('--temperature <t>', 'softmax temperature of the distillation term', '4')
      .option('--alpha <a>', 'weight of the hard-label loss; the distillation term gets 1 - alpha', '0.5')
      .option('--feature <teacher=student[@weight]>', 'also match an intermediate value (mean squared error; same shape); repeatable', collect, [])
      .option('--teacher-output <name>', "the teacher's logits output (default: its only output)")
      .option('--student-output <name>', "the student's logits output (default: its only output)"),
    { optimizer: 'sgd' },
  ).action(async (flags: DistillFlags, command: Command) => {
    const report = await runDistill(flags, cliRecipeContext(command, context.io));
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(flags, report));
  });
}

async function runDistill(flags: DistillFlags, cliCtx: RecipeContext): Promise<DistillReport> {
  const temperature = positiveNumber(flags.temperature, '--temperature');
  const alpha = Number(flags.alpha);
  if (!/\S/.test(flags.alpha) || !(alpha >= 0 && alpha <= 1)) throw new UsageError(`--alpha must be a number in [0, 1], got '${flags.alpha}'`);
  const { epochs, batchSize, schedule, scale, seed, threads } = parseTrainingOptions(flags);
  const features = flags.feature.map(parseFeature);
  const optimizer = optimizerSpec(flags.optimizer);
  checkOutput({ output: flags.output, flag: '-o', inputs: [flags.teacher, flags.student, flags.data, flags.labels], models: [flags.teacher, flags.student] });
  const ctx: RecipeContext = { ...cliCtx, threads };

  const teacher = loadModelFile(flags.teacher);
  const student = loadModelFile(flags.student);
  const data: DistillData = await debugPhase(ctx.debug, `distill: read ${flags.data}`, () =>
    readLabelledArrays({
      data: flags.data,
      labels: flags.labels,
      models: [student, teacher],
      scale,
      // The hard-label term needs class ids; with alpha 0 the teacher alone teaches.
      requireLabels: alpha > 0,
      labelsHint: `(--alpha ${flags.alpha} weights a hard-label loss; --alpha 0 learns from the teacher alone)`,
      output: flags.studentOutput,
    }),
  );
  let result: Awaited<ReturnType<typeof distill>>;
  try {
    result = await distill(
      teacher,
      student,
      { data, temperature, alpha, features, epochs, batchSize, schedule, optimizer, seed, teacherOutput: flags.teacherOutput, studentOutput: flags.studentOutput },
      ctx,
    );
  } catch (error) {
    if (error instanceof InputModelError) throw inFile(error.model === 'teacher' ? flags.teacher : flags.student, error.error);
    throw error;
  }
  const saved = await debugPhase(ctx.debug, `distill: save ${flags.output}`, () => writeModelOutput(result.model, flags.output));
  return envelope(
    {
      command: 'distill',
      input: { teacher: flags.teacher, student: flags.student },
      output: saved.file,
      size: sizeChange(modelFileBytes(flags.student, student), saved.bytes),
      warnings: saved.warnings,
    },
    result.report,
    nodeEnvironment(),
  );
}

function formatReport(flags: DistillFlags, report: DistillReport): string {
  const last = report.epochs[report.epochs.length - 1];
  return [
    `distilled ${flags.teacher} (${report.parameters.teacher} parameters) into ${flags.student} (${report.parameters.student}, ${(100 * report.parameters.ratio).toFixed(1)}%)`,
    `  ${report.samples} samples, ${report.classes} classes, temperature ${report.temperature}, alpha ${report.alpha}`,
    `  teacher outputs computed in ${report.teacher_seconds.toFixed(1)} s`,
    ...report.epochs.map(formatEpoch),
    `wrote ${report.output} (${report.size?.after} bytes) after ${report.steps} steps${last === undefined ? '' : `, last epoch's loss ${last.mean_loss.toFixed(4)}`}`,
    '',
  ].join('\n');
}

/** `teacherValue=studentValue` or `teacherValue=studentValue@weight`. */
function parseFeature(text: string): FeatureMatch {
  const match = /^([^=]+)=([^@]+?)(?:@(.+))?$/.exec(text);
  if (match === null) throw new UsageError(`--feature: '${text}' is not teacher=student or teacher=student@weight`);
  return {
    teacher: match[1],
    student: match[2],
    weight: match[3] === undefined ? 1 : positiveNumber(match[3], '--feature weight'),
  };
}
