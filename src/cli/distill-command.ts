// `shrink distill --teacher T.onnx --student S.onnx -o OUT --data FILE.npz`: trains the student on
// the teacher's softened outputs plus the hard labels (src/train/distill.ts) and writes the student
// with its new weights, atomically. The data is an .npz whose keys are the models' input names (and
// 'labels' for the class ids, unless --labels gives them), or an .npy for a single-input student.
// Training data is held in memory, as the teacher's outputs for every sample are.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { env as ortEnv } from 'onnxruntime-node';
import { type NpyArray, npyToTensor, parseNpy } from '../eval/npy.js';
import { readNpz } from '../eval/npz.js';
import { inspectModel } from '../inspect/inspect.js';
import { DataType, dataTypeName, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { tensorTypeOf } from '../ir/value-info.js';
import { loadModel, saveModel } from '../node/model-files.js';
import { nodeOrt } from '../node/ort-node.js';
import { lineProgress, terminalProgress } from '../node/progress.js';
import { type Progress, silentProgress } from '../pipeline/progress.js';
import type { ArrayField } from '../train/array-data.js';
import { type DistillData, distill, type FeatureMatch } from '../train/distill.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import { inFile, UsageError } from './errors.js';
import type { CliContext } from './main.js';
import { wholeNumber } from './options.js';

interface DistillFlags {
  teacher: string;
  student: string;
  output: string;
  data: string;
  labels?: string;
  temperature: string;
  alpha: string;
  epochs: string;
  batchSize: string;
  lr?: string;
  optimizer: 'sgd' | 'adamw';
  schedule: 'cosine' | 'constant';
  scale: string;
  seed: string;
  feature: string[];
  teacherOutput?: string;
  studentOutput?: string;
  threads?: string;
  json?: boolean;
  progress: boolean;
}

/** What `--json` prints (snake_case, as the eval and bench reports). */
export interface DistillReport {
  teacher: string;
  student: string;
  output: string;
  samples: number;
  classes: number;
  temperature: number;
  alpha: number;
  epochs: { epoch: number; steps: number; mean_loss: number; seconds: number }[];
  steps: number;
  teacher_seconds: number;
  parameters: { teacher: number; student: number; ratio: number };
  bytes_after: number;
}

/** The array key holding class ids in an .npz. */
const LABELS_KEY = 'labels';

export function registerDistill(program: Command, context: CliContext): void {
  program
    .command('distill')
    .description('train a student model on a teacher\'s softened outputs and the hard labels (knowledge distillation)')
    .requiredOption('--teacher <file>', 'the trained ONNX model to learn from')
    .requiredOption('--student <file>', 'the ONNX model to train (its current weights are the starting point)')
    .requiredOption('-o, --output <file>', 'where to write the trained student')
    .requiredOption('--data <file>', `training inputs: an .npz keyed by input name (plus '${LABELS_KEY}'), or an .npy for a single-input student`)
    .option('--labels <file>', 'class ids (.npy of integers), one per sample')
    .option('--temperature <t>', 'softmax temperature of the distillation term', '4')
    .option('--alpha <a>', 'weight of the hard-label loss; the distillation term gets 1 - alpha', '0.5')
    .option('--epochs <n>', 'passes over the data', '1')
    .option('--batch-size <n>', 'samples per step', '64')
    .option('--lr <rate>', 'peak learning rate (default 0.05 for sgd, 0.001 for adamw)')
    .addOption(new Option('--optimizer <kind>', 'sgd (momentum 0.9) or adamw').choices(['sgd', 'adamw']).default('sgd'))
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule').choices(['cosine', 'constant']).default('cosine'))
    .option('--scale <factor>', 'multiply input values by this: a number or a fraction, e.g. 1/255 for bytes 0-255', '1')
    .option('--seed <n>', 'shuffling seed', '0')
    .option('--feature <teacher=student[@weight]>', 'also match an intermediate value (mean squared error; same shape); repeatable', collect, [])
    .option('--teacher-output <name>', 'the teacher\'s logits output (default: its only output)')
    .option('--student-output <name>', 'the student\'s logits output (default: its only output)')
    .option('--threads <n>', 'onnxruntime intra-op threads (default: onnxruntime\'s choice)')
    .option('--json', 'print the report as one JSON object')
    .option('--no-progress', 'do not report progress on stderr')
    .action(async (flags: DistillFlags, command: Command) => {
      if (command.optsWithGlobals().verbose !== true) ortEnv.logLevel = 'fatal';
      const progress = !flags.progress ? silentProgress : process.stderr.isTTY ? terminalProgress() : lineProgress((line) => context.io.stderr(`${line}\n`));
      const report = await runDistill(flags, progress);
      context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function runDistill(flags: DistillFlags, progress: Progress): Promise<DistillReport> {
  const temperature = positiveNumber(flags.temperature, '--temperature');
  const alpha = Number(flags.alpha);
  if (!/\S/.test(flags.alpha) || !(alpha >= 0 && alpha <= 1)) throw new UsageError(`--alpha must be a number in [0, 1], got '${flags.alpha}'`);
  const epochs = wholeNumber(flags.epochs, '--epochs', 1);
  const batchSize = wholeNumber(flags.batchSize, '--batch-size', 1);
  const rate = flags.lr === undefined ? (flags.optimizer === 'sgd' ? 0.05 : 0.001) : positiveNumber(flags.lr, '--lr');
  const scale = fraction(flags.scale, '--scale');
  const seed = wholeNumber(flags.seed, '--seed', 0);
  const threads = flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads', 1);
  const features = flags.feature.map(parseFeature);

  const teacher = load(flags.teacher);
  const student = load(flags.student);
  const data = await readData(flags, student, teacher, scale);
  const optimizer: OptimizerSpec = flags.optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9 } : { kind: 'adamw' };
  const result = await distill(nodeOrt, {
    teacher,
    student,
    data,
    temperature,
    alpha,
    features,
    epochs,
    batchSize,
    schedule: { kind: flags.schedule, rate },
    optimizer,
    seed,
    teacherOutput: flags.teacherOutput,
    studentOutput: flags.studentOutput,
    threads,
    progress,
  });
  try {
    saveModel(result.model, flags.output);
  } catch (error) {
    throw inFile(flags.output, error);
  }
  const teacherParameters = inspectModel(teacher).parameters.elements;
  const studentParameters = inspectModel(result.model).parameters.elements;
  return {
    teacher: flags.teacher,
    student: flags.student,
    output: flags.output,
    samples: result.samples,
    classes: result.classes,
    temperature,
    alpha,
    epochs: result.history.map((h) => ({ epoch: h.epoch, steps: h.steps, mean_loss: h.meanLoss, seconds: h.seconds })),
    steps: result.steps,
    teacher_seconds: result.teacherSeconds,
    parameters: { teacher: teacherParameters, student: studentParameters, ratio: studentParameters / teacherParameters },
    bytes_after: fs.statSync(flags.output).size,
  };
}

function formatReport(report: DistillReport): string {
  const last = report.epochs[report.epochs.length - 1];
  return [
    `distilled ${report.teacher} (${report.parameters.teacher} parameters) into ${report.student} (${report.parameters.student}, ${(100 * report.parameters.ratio).toFixed(1)}%)`,
    `  ${report.samples} samples, ${report.classes} classes, temperature ${report.temperature}, alpha ${report.alpha}`,
    `  teacher outputs computed in ${report.teacher_seconds.toFixed(1)} s`,
    ...report.epochs.map((e) => `  epoch ${e.epoch}: ${e.steps} steps, mean loss ${e.mean_loss.toFixed(4)}, ${e.seconds.toFixed(1)} s`),
    `wrote ${report.output} (${report.bytes_after} bytes) after ${report.steps} steps${last === undefined ? '' : `, last epoch's loss ${last.mean_loss.toFixed(4)}`}`,
    '',
  ].join('\n');
}

/** `teacherValue=studentValue` or `teacherValue=studentValue@weight`. */
function parseFeature(text: string): FeatureMatch {
  const match = /^([^=]+)=([^@]+?)(?:@(.+))?$/.exec(text);
  if (match === null) throw new UsageError(`--feature: '${text}' is not teacher=student or teacher=student@weight`);
  return { teacher: match[1], student: match[2], weight: match[3] === undefined ? 1 : positiveNumber(match[3], '--feature weight') };
}

/** A positive number, or `a/b` of two (1/255 reads better than 0.00392156862745098). */
function fraction(text: string, flag: string): number {
  const parts = text.split('/');
  if (parts.length !== 2) return positiveNumber(text, flag);
  return positiveNumber(parts[0], flag) / positiveNumber(parts[1], flag);
}

function positiveNumber(text: string, flag: string): number {
  const value = Number(text);
  if (!/\S/.test(text) || !(value > 0 && Number.isFinite(value))) throw new UsageError(`${flag} must be a positive number, got '${text}'`);
  return value;
}

/** Inputs of both models from the data file, labels from --labels or the archive. */
async function readData(flags: DistillFlags, student: Model, teacher: Model, scale: number): Promise<DistillData> {
  const arrays = await readArrays(flags.data, student);
  let labelArray = arrays.get(LABELS_KEY);
  arrays.delete(LABELS_KEY);
  if (flags.labels !== undefined) {
    if (labelArray !== undefined) throw new UsageError(`${flags.data} holds '${LABELS_KEY}' and --labels gives them too: use one`);
    labelArray = parseNpy(readFile(flags.labels), flags.labels);
  }
  const inputs: Record<string, ArrayField> = {};
  const wanted = new Map<string, Model>();
  for (const model of [student, teacher]) for (const name of dataInputs(model)) if (!wanted.has(name)) wanted.set(name, model);
  for (const [key, array] of arrays) {
    const model = wanted.get(key);
    if (model === undefined) throw new Error(`${flags.data}: array '${key}' is not an input of the teacher or the student (inputs: ${[...wanted.keys()].join(', ')}; class ids go under '${LABELS_KEY}')`);
    inputs[key] = inputField(model, key, array, scale, `${flags.data}[${key}]`);
  }
  const labels = labelArray === undefined ? undefined : labelValues(labelArray, flags.labels ?? `${flags.data}[${LABELS_KEY}]`);
  return { inputs, labels };
}

/** An .npz as arrays by key; an .npy as the one array of the student's only input. */
async function readArrays(file: string, student: Model): Promise<Map<string, NpyArray>> {
  const extension = path.extname(file).toLowerCase();
  const bytes = readFile(file);
  if (extension === '.npy') {
    const inputs = dataInputs(student);
    if (inputs.length !== 1) throw new Error(`${file}: a .npy holds one array, but the student has ${inputs.length} inputs (${inputs.join(', ')}); use an .npz keyed by input name`);
    return new Map([[inputs[0], parseNpy(bytes, file)]]);
  }
  if (extension !== '.npz') throw new Error(`${file}: training data must be an .npz (or .npy), not '${extension || 'no extension'}'`);
  try {
    return await readNpz(bytes, file);
  } catch (error) {
    throw inFile(file, error);
  }
}

/** One float input: axis 0 counts samples, the rest must fit the input's declared dims. */
function inputField(model: Model, name: string, array: NpyArray, scale: number, where: string): ArrayField {
  const declared = tensorTypeOf(model.graph.inputs.find((i) => i.name === name));
  const sampleDims = array.dims.slice(1);
  if (array.dims.length === 0) throw new Error(`${where}: a scalar, not a stack of samples along axis 0`);
  if (declared?.shape !== undefined) {
    const shape = declared.shape.slice(1);
    const fits = shape.length === sampleDims.length && shape.every((d, i) => typeof d !== 'number' || d === sampleDims[i]);
    if (!fits) throw new Error(`${where}: shape (${array.dims.join(', ')}) does not stack samples of input '${name}' [${declared.shape.map((d) => d ?? '?').join(',')}] along axis 0`);
  }
  const type = declared?.elemType;
  if (type !== DataType.FLOAT && type !== DataType.DOUBLE) throw new Error(`${where}: input '${name}' is ${type === undefined ? 'untyped' : dataTypeName(type)}; distill feeds float32 or float64 inputs`);
  if (!NUMERIC_ARRAYS.has(array.dataType)) throw new Error(`${where}: ${dataTypeName(array.dataType)} values cannot feed a float input (save them as float32 or an integer type)`);
  return { data: npyToTensor(array, name).data() as TypedArray, sampleDims, dataType: type, scale };
}

/** Array types whose elements read as plain numbers (float16 would need decoding). */
const NUMERIC_ARRAYS: ReadonlySet<DataType> = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.UINT8, DataType.INT8, DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32, DataType.UINT64, DataType.INT64]);
const INTEGER_ARRAYS: ReadonlySet<DataType> = new Set([DataType.UINT8, DataType.INT8, DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32, DataType.UINT64, DataType.INT64]);

function labelValues(array: NpyArray, where: string): TypedArray {
  if (array.dims.length !== 1) throw new Error(`${where}: labels must be one class id per sample (1-D), not shape (${array.dims.join(', ')})`);
  if (!INTEGER_ARRAYS.has(array.dataType)) throw new Error(`${where}: labels must be integers, not ${dataTypeName(array.dataType)}`);
  return npyToTensor(array, 'labels').data() as TypedArray;
}

function dataInputs(model: Model): string[] {
  return model.graph.inputs.map((i) => i.name).filter((n) => model.graph.initializer(n) === undefined);
}

function readFile(file: string): Uint8Array {
  try {
    const buffer = fs.readFileSync(file);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    throw inFile(file, error);
  }
}

function load(file: string): Model {
  try {
    return loadModel(file);
  } catch (error) {
    throw inFile(file, error);
  }
}
