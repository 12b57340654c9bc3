// Training data from files for the training commands (train, qat, distill): an .npz whose arrays
// are named after the model's inputs (samples stacked along axis 0) plus 'labels' (class ids), or
// an .npy for a single-input model with --labels. Everything is checked against the model before
// any step runs: names, sample shapes, types, finite values (src/train/array-data.ts), label range
// and sample counts.
import * as path from 'node:path';
import { type NpyArray, npyToTensor, parseNpy } from '../eval/npy.js';
import { readNpz } from '../eval/npz.js';
import { DataType, dataTypeName, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { tensorTypeOf } from '../ir/value-info.js';
import { type ArrayField, arrayTrainingData } from '../train/array-data.js';
import type { TrainingData } from '../train/trainer.js';
import { LABEL_INPUT } from '../train/training-graph.js';
import { inFile, UsageError } from './errors.js';
import { readInputFile } from './input-files.js';

/** The .npz key of the class ids. */
export const LABELS_KEY = 'labels';

export interface LabelledArrays {
  /** One field per model input. */
  inputs: Record<string, ArrayField>;
  /** Class ids, one per sample. */
  labels?: TypedArray;
  count: number;
}

export interface TrainingFileOptions {
  data: string;
  labels?: string;
  /** The models fed: every array must be an input of one; every input of the first must be there. */
  models: readonly Model[];
  /** Multiplies input values on their way to float (e.g. 1/255 for bytes). */
  scale?: number;
  /** Fail when no class ids are given. */
  requireLabels: boolean;
  /** Added to the error when labels are required and missing (what else the user can do). */
  labelsHint?: string;
  /** The first model's output the labels are class ids of (default: its first output). */
  output?: string;
}

export async function readLabelledArrays(options: TrainingFileOptions): Promise<LabelledArrays> {
  const { data: file } = options;
  const arrays = await readArrays(file, options.models[0]);
  let labelArray = arrays.get(LABELS_KEY);
  let labelsWhere = `${file}[${LABELS_KEY}]`;
  arrays.delete(LABELS_KEY);
  if (options.labels !== undefined) {
    if (labelArray !== undefined) throw new UsageError(`${file} holds '${LABELS_KEY}' and --labels gives them too: use one`);
    labelArray = parseNpy(readInputFile(options.labels), options.labels);
    labelsWhere = options.labels;
  }
  const owner = new Map<string, Model>();
  for (const model of options.models) for (const name of dataInputs(model)) if (!owner.has(name)) owner.set(name, model);
  const inputs: Record<string, ArrayField> = {};
  for (const [key, array] of arrays) {
    const model = owner.get(key);
    if (model === undefined) throw new Error(`${file}: array '${key}' is not an input of the model (inputs: ${[...owner.keys()].join(', ')}; class ids go under '${LABELS_KEY}')`);
    inputs[key] = inputField(model, key, array, options.scale ?? 1, file);
  }
  for (const name of dataInputs(options.models[0])) {
    if (inputs[name] === undefined) throw new Error(`${file}: no array '${name}' for the model's input (arrays: ${[...arrays.keys()].join(', ') || 'none'})`);
  }
  if (labelArray === undefined && options.requireLabels) {
    throw new Error(`${file}: no '${LABELS_KEY}' array of class ids; add one or give --labels FILE.npy${options.labelsHint === undefined ? '' : ` ${options.labelsHint}`}`);
  }
  const labels = labelArray === undefined ? undefined : labelValues(labelArray, classesOf(options.models[0], options.output), labelsWhere);
  const counts = Object.entries(inputs).map(([name, f]) => [name, f.data.length / f.sampleDims.reduce((a, b) => a * b, 1)] as const);
  if (labels !== undefined) counts.push([LABELS_KEY, labels.length]);
  if (counts.some(([, n]) => n !== counts[0][1])) throw new Error(`${file}: arrays hold different numbers of samples: ${counts.map(([name, n]) => `${name} ${n}`).join(', ')}`);
  const count = counts[0]?.[1] ?? 0;
  if (count === 0) throw new Error(`${file}: holds no samples (arrays ${counts.map(([name]) => `'${name}'`).join(', ')} are empty along axis 0)`);
  return { inputs, labels, count };
}

/** The arrays as the train and qat steps take them: the inputs, and the class ids under LABEL_INPUT. */
export function labelledTrainingData(arrays: LabelledArrays): TrainingData {
  if (arrays.labels === undefined) throw new Error('training data without class ids');
  return arrayTrainingData({ ...arrays.inputs, [LABEL_INPUT]: { data: arrays.labels, sampleDims: [], dataType: DataType.INT64 } });
}

/** An .npz as arrays by key; an .npy as the one array of the model's only input. */
async function readArrays(file: string, model: Model): Promise<Map<string, NpyArray>> {
  const extension = path.extname(file).toLowerCase();
  const bytes = readInputFile(file);
  if (extension === '.npy') {
    const inputs = dataInputs(model);
    if (inputs.length !== 1) throw new Error(`${file}: a .npy holds one array, but the model has ${inputs.length} inputs (${inputs.join(', ')}); use an .npz keyed by input name`);
    return new Map([[inputs[0], parseNpy(bytes, file)]]);
  }
  if (extension !== '.npz') throw new UsageError(`--data ${file}: training data must be an .npz (or .npy), not '${extension || 'no extension'}'`);
  try {
    return await readNpz(bytes, file);
  } catch (error) {
    throw inFile(file, error);
  }
}

/** Array types whose elements read as plain numbers (float16 would need decoding). */
const INTEGER_ARRAYS: ReadonlySet<DataType> = new Set([DataType.UINT8, DataType.INT8, DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32, DataType.UINT64, DataType.INT64]);
const NUMERIC_ARRAYS: ReadonlySet<DataType> = new Set([DataType.FLOAT, DataType.DOUBLE, ...INTEGER_ARRAYS]);

/** One float input: axis 0 counts samples, the rest must fit the input's declared dims. `file` names it in errors. */
function inputField(model: Model, name: string, array: NpyArray, scale: number, file: string): ArrayField {
  const where = `${file}[${name}]`;
  const declared = tensorTypeOf(model.graph.inputs.find((i) => i.name === name));
  if (array.dims.length === 0) throw new Error(`${where}: a scalar, not a stack of samples along axis 0`);
  const sampleDims = array.dims.slice(1);
  if (declared?.shape !== undefined) {
    const shape = declared.shape.slice(1);
    const fits = shape.length === sampleDims.length && shape.every((d, i) => typeof d !== 'number' || d === sampleDims[i]);
    if (!fits) throw new Error(`${where}: shape (${array.dims.join(', ')}) does not stack samples of input '${name}' [${declared.shape.map((d) => d ?? '?').join(',')}] along axis 0`);
  }
  const type = declared?.elemType;
  if (type !== DataType.FLOAT && type !== DataType.DOUBLE) throw new Error(`${where}: input '${name}' is ${type === undefined ? 'untyped' : dataTypeName(type)}; training feeds float32 or float64 inputs`);
  if (!NUMERIC_ARRAYS.has(array.dataType)) throw new Error(`${where}: ${dataTypeName(array.dataType)} values cannot feed a float input (save them as float32 or an integer type)`);
  return { data: npyToTensor(array, name).data() as TypedArray, sampleDims, dataType: type, scale, source: file };
}

/** Class ids: 1-D integers in [0, classes). */
function labelValues(array: NpyArray, classes: number | undefined, where: string): TypedArray {
  if (array.dims.length !== 1) throw new Error(`${where}: labels must be one class id per sample (1-D), not shape (${array.dims.join(', ')})`);
  if (!INTEGER_ARRAYS.has(array.dataType)) throw new Error(`${where}: labels must be integers, not ${dataTypeName(array.dataType)}`);
  const data = npyToTensor(array, LABELS_KEY).data() as TypedArray;
  for (let i = 0; i < data.length; i++) {
    const id = Number(data[i]);
    if (id < 0 || (classes !== undefined && id >= classes)) throw new Error(`${where}: label ${id} at index ${i} is not a class id${classes === undefined ? '' : ` in 0..${classes - 1}`}`);
  }
  return data;
}

/** The number of classes: the last dim of `output` (default the first output), when fixed. */
export function classesOf(model: Model, output?: string): number | undefined {
  const shape = tensorTypeOf(output === undefined ? model.graph.outputs[0] : model.graph.outputs.find((o) => o.name === output))?.shape;
  const last = shape?.[shape.length - 1];
  return typeof last === 'number' ? last : undefined;
}

function dataInputs(model: Model): string[] {
  return model.graph.inputs.map((i) => i.name).filter((n) => model.graph.initializer(n) === undefined);
}
