// Sample sources: where the inputs for an evaluation come from. A source is an async iterable
// that reads one sample at a time, so memory stays flat however many samples a file holds;
// iterating again starts over from the first sample. This file holds the interface, helpers
// shared by every source, and the two sources whose data is small or already split by sample:
// ONNX test-data folders and JSON. Array files (.npy/.npz) are in sample-arrays.ts, generated
// inputs in sample-generate.ts; the Node file-system side is src/node/sample-files.ts.
import type { DataType } from '../ir/dtype.js';
import type { Tensor } from '../ir/tensor.js';
import { toOrtTensor } from '../runtime/session.js';
import type { OrtModule, OrtTensor } from '../runtime/ort-types.js';
import { checkSample, formatValueType, type ModelSignature, type ModelValue } from './match-inputs.js';
import { type ElementValue, tensorFromValues } from './numeric.js';
import { readTestTensor } from './onnx-test-data.js';

/** One sample: a tensor for each input it feeds, and reference outputs when the source has them. */
export interface Sample {
  /** 0-based position in the source. */
  index: number;
  /** Names the sample in errors: "data.npz sample 3". */
  where: string;
  inputs: Record<string, Tensor>;
  /** Reference outputs by output name (ONNX test-data folders hold them as output_K.pb). */
  expected?: Record<string, Tensor>;
}

export interface SampleSource extends AsyncIterable<Sample> {
  /** Names of the inputs each sample feeds. */
  readonly inputs: readonly string[];
  /** Number of samples, when known without reading them. */
  readonly count: number | undefined;
  /** Says what the data is, for reports: "data.npz (npz, 128 samples)". */
  readonly description: string;
  /** Set when the data is a poor stand-in for real inputs (generated data). */
  readonly warning?: string;
  /** Releases open files; the source cannot be iterated afterwards. */
  close?(): Promise<void>;
}

/** Yields the samples of `source`, throwing a one-line SampleMismatchError for the first that does not fit `inputs`. */
export async function* checkedSamples(source: SampleSource, inputs: readonly ModelValue[]): AsyncGenerator<Sample> {
  for await (const sample of source) {
    checkSample(sample.inputs, inputs, sample.where);
    yield sample;
  }
}

/** Groups samples `size` at a time (the last group may be shorter). */
export async function* inBatches(samples: AsyncIterable<Sample>, size: number): AsyncGenerator<Sample[]> {
  if (!(size >= 1)) throw new Error(`batch size must be at least 1, got ${size}`);
  let batch: Sample[] = [];
  for await (const sample of samples) {
    batch.push(sample);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Samples `from` to `from + count` of `source` (a shard of it: a job queue's worker reads its part
 * of a data file), keeping their positions and names. Closing it closes `source`.
 */
export function sampleRange(source: SampleSource, from: number, count: number): SampleSource {
  const available = source.count === undefined ? undefined : Math.max(0, Math.min(count, source.count - from));
  return {
    inputs: source.inputs,
    count: available,
    description: `${source.description}, samples ${from} to ${from + (available ?? count) - 1}`,
    warning: source.warning,
    close: source.close === undefined ? undefined : () => (source.close as () => Promise<void>)(),
    async *[Symbol.asyncIterator]() {
      let position = 0;
      for await (const sample of source) {
        if (position >= from + count) return;
        if (position++ >= from) yield sample;
      }
    },
  };
}

/** At most the first `limit` samples. */
export async function* firstSamples(samples: AsyncIterable<Sample>, limit: number): AsyncGenerator<Sample> {
  if (limit <= 0) return;
  let n = 0;
  for await (const sample of samples) {
    yield sample;
    if (++n >= limit) return;
  }
}

/** The sample's inputs as onnxruntime feeds. */
export function sampleFeeds(ort: OrtModule, sample: Sample): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  for (const [name, tensor] of Object.entries(sample.inputs)) feeds[name] = toOrtTensor(ort, tensor);
  return feeds;
}

/**
 * Read access to a folder tree, given by the host: the Node side implements it over the file
 * system, a browser over dropped files. Paths are relative to the root and use '/'.
 */
export interface FileTree {
  /** Names the root in errors. */
  readonly root: string;
  /** Names of the entries directly inside `dir` ('' for the root). */
  list(dir: string): Promise<string[]>;
  read(path: string): Promise<Uint8Array>;
}

/** A FileTree over files in memory, keyed by '/'-separated path. */
export function memoryFileTree(root: string, files: Readonly<Record<string, Uint8Array>>): FileTree {
  return {
    root,
    list: async (dir) => {
      const prefix = dir === '' ? '' : `${dir.replace(/\/$/, '')}/`;
      const names = Object.keys(files)
        .filter((path) => path.startsWith(prefix))
        .map((path) => path.slice(prefix.length).split('/')[0]);
      return [...new Set(names)];
    },
    read: async (path) => {
      const bytes = files[path];
      if (bytes === undefined) throw new Error(`${root}/${path}: no such file`);
      return bytes;
    },
  };
}

const SET_PATTERN = /^test_data_set_(\d+)$/;
const FILE_PATTERN = /^(input|output)_(\d+)\.pb$/;

/**
 * Samples from an ONNX test-data folder: the model folder (holding test_data_set_N/ folders) or a
 * single test_data_set_N/ folder. input_K.pb feeds the K-th input that has no initializer and
 * output_K.pb is the reference for the K-th output, as in ONNX's backend tests.
 */
export async function testDataSamples(tree: FileTree, signature: ModelSignature): Promise<SampleSource> {
  const top = await tree.list('');
  const sets = top
    .filter((name) => SET_PATTERN.test(name))
    .sort((a, b) => Number(SET_PATTERN.exec(a)?.[1]) - Number(SET_PATTERN.exec(b)?.[1]));
  const single = sets.length === 0 && top.some((name) => FILE_PATTERN.test(name));
  if (sets.length === 0 && !single) throw new Error(`${tree.root}: no test_data_set_N folders and no input_K.pb files`);
  const folders = single ? [''] : sets;
  const feeds = signature.inputs.filter((input) => !input.optional);
  const read = async (folder: string, file: string, value: ModelValue | undefined, where: string): Promise<Tensor> => {
    if (value === undefined) throw new Error(`${where}: the model has no ${file.startsWith('input') ? 'input' : 'output'} for this file`);
    const tensor = readTestTensor(await tree.read(folder === '' ? file : `${folder}/${file}`), where);
    tensor.name = value.name;
    return tensor;
  };
  return {
    inputs: feeds.map((input) => input.name),
    count: folders.length,
    description: `${tree.root} (ONNX test data, ${folders.length} data set${folders.length === 1 ? '' : 's'})`,
    async *[Symbol.asyncIterator]() {
      for (const [index, folder] of folders.entries()) {
        const where = folder === '' ? tree.root : `${tree.root}/${folder}`;
        const files = (await tree.list(folder)).map((name) => FILE_PATTERN.exec(name)).filter((m) => m !== null);
        const inputs: Record<string, Tensor> = {};
        const expected: Record<string, Tensor> = {};
        for (const [file, kind, k] of files.sort((a, b) => Number(a[2]) - Number(b[2]))) {
          const fileWhere = `${where}/${file}`;
          if (kind === 'input') {
            const tensor = await read(folder, file, feeds[Number(k)], fileWhere);
            inputs[tensor.name] = tensor;
          } else {
            const tensor = await read(folder, file, signature.outputs[Number(k)], fileWhere);
            expected[tensor.name] = tensor;
          }
        }
        yield { index, where, inputs, expected };
      }
    },
  };
}

/** One input of one JSON sample: `{"dims": [...], "data": [...]}` (data flat or nested). */
interface JsonTensor {
  dims?: number[];
  data: unknown;
}

/**
 * Samples from JSON: `[{ "inputName": {"dims": [...], "data": [...]} }, ...]`. Element types come
 * from the model's declared input types; int64 values may be written as numbers or strings.
 * The whole document is in memory already, but tensors are built one sample at a time.
 */
export function jsonSamples(json: string | unknown, inputs: readonly ModelValue[], where: string): SampleSource {
  let parsed: unknown = json;
  if (typeof json === 'string') {
    try {
      parsed = JSON.parse(json);
    } catch (error) {
      throw new Error(`${where}: not valid JSON (${(error as Error).message})`);
    }
  }
  if (!Array.isArray(parsed)) throw new Error(`${where}: expected an array of samples ([{"input": {"dims": [...], "data": [...]}}, ...])`);
  const list = parsed as unknown[];
  const byName = new Map(inputs.map((input) => [input.name, input]));
  return {
    inputs: inputs.filter((input) => !input.optional).map((input) => input.name),
    count: list.length,
    description: `${where} (JSON, ${list.length} sample${list.length === 1 ? '' : 's'})`,
    async *[Symbol.asyncIterator]() {
      for (const [index, entry] of list.entries()) {
        const sampleWhere = `${where} sample ${index}`;
        if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
          throw new Error(`${sampleWhere}: expected an object mapping input names to {"dims", "data"}`);
        }
        const tensors: Record<string, Tensor> = {};
        for (const [name, value] of Object.entries(entry)) {
          const input = byName.get(name);
          if (input === undefined) {
            throw new Error(`${sampleWhere}: '${name}' is not an input of the model (inputs: ${inputs.map((i) => `'${i.name}'`).join(', ')})`);
          }
          tensors[name] = jsonTensor(value, input, `${sampleWhere} input '${name}'`);
        }
        yield { index, where: sampleWhere, inputs: tensors };
      }
    },
  };
}

function jsonTensor(value: unknown, input: ModelValue, where: string): Tensor {
  if (typeof value !== 'object' || value === null || !('data' in value)) throw new Error(`${where}: expected {"dims": [...], "data": [...]}`);
  const { dims, data } = value as JsonTensor;
  const flat: ElementValue[] = [];
  const inferred: number[] = [];
  const walk = (node: unknown, depth: number) => {
    if (Array.isArray(node)) {
      if (inferred.length === depth) inferred.push(node.length);
      for (const child of node) walk(child, depth + 1);
    } else if (typeof node === 'number' || typeof node === 'string' || typeof node === 'boolean') {
      flat.push(node);
    } else {
      throw new Error(`${where}: data holds ${JSON.stringify(node)}, not a number`);
    }
  };
  walk(data, 0);
  if (dims !== undefined && (!Array.isArray(dims) || dims.some((d) => !Number.isSafeInteger(d) || d < 0))) {
    throw new Error(`${where}: dims ${JSON.stringify(dims)} is not a list of sizes`);
  }
  if (input.elemType === 0) throw new Error(`${where}: the model does not declare this input's type (${formatValueType(input)})`);
  return tensorFromValues(input.name, input.elemType as DataType, dims ?? inferred, flat, where);
}

/** Samples from tensors already in memory (one record of inputs per sample), re-iterable. */
export function tensorSamples(list: readonly Record<string, Tensor>[], description = 'samples in memory'): SampleSource {
  return {
    inputs: Object.keys(list[0] ?? {}),
    count: list.length,
    description,
    async *[Symbol.asyncIterator]() {
      for (const [index, inputs] of list.entries()) yield { index, where: `${description} ${index}`, inputs } satisfies Sample;
    },
  };
}
