// Samples from NumPy files: one .npy for a single-input model, or an .npz whose keys are input
// names. Axis 0 of each array is the sample axis. Arrays are streamed: each iteration opens one
// reader per array and reads one sample's bytes at a time, so a file larger than memory works.
//
// How an array of shape S maps onto an input of declared rank R:
//   rank(S) = R + 1   sample i is arr[i]          (a stack of samples)
//   rank(S) = R >= 1  sample i is arr[i:i+1]      (axis 0 is the model's batch axis, batch 1)
//   rank(S) = R = 0   the same scalar every sample (a constant input such as a sample rate)
import { dataTypeInfo, dataTypeName } from '../ir/dtype.js';
import type { Tensor } from '../ir/tensor.js';
import type { ByteReader, ByteSource } from './byte-source.js';
import { rangeReader } from './byte-source.js';
import { formatValueType, type ModelValue } from './match-inputs.js';
import { type NpyHeader, npyToTensor, readNpyHeader } from './npy.js';
import { listNpz, openNpzEntry } from './npz.js';
import type { Sample, SampleSource } from './samples.js';

/** Read size when opening a file just to read its header. */
const HEADER_CHUNK = 4096;

/** One array in a file, opened anew for each pass over the samples. */
interface ArrayStream {
  key: string;
  where: string;
  /** Bytes of the whole .npy (header and data), to catch truncation before the first sample. */
  size: number;
  /** `chunk`: read size (small when only the header is wanted). */
  open(chunk?: number): Promise<ByteReader>;
}

interface ArrayPlan {
  input: ModelValue;
  stream: ArrayStream;
  header: NpyHeader;
  /** Dims of one sample's tensor. */
  sampleDims: number[];
  sampleBytes: number;
  /** Samples the array holds; undefined for a scalar shared by every sample. */
  count: number | undefined;
}

/**
 * Samples from a .npy file. `input` names the input it feeds; by default the model's only
 * required input (a model with several inputs needs an .npz).
 */
export async function npySamples(source: ByteSource, where: string, inputs: readonly ModelValue[], options: { input?: string } = {}): Promise<SampleSource> {
  const required = inputs.filter((i) => !i.optional);
  let input: ModelValue | undefined;
  if (options.input !== undefined) {
    input = inputs.find((i) => i.name === options.input);
    if (input === undefined) throw new Error(`${where}: '${options.input}' is not an input of the model (inputs: ${names(inputs)})`);
  } else if (required.length === 1) {
    input = required[0];
  } else {
    throw new Error(`${where}: a .npy file holds one array, but the model has ${required.length} inputs (${names(required)}); use an .npz with one array per input`);
  }
  const stream: ArrayStream = { key: input.name, where, size: source.size, open: async (chunk) => rangeReader(source, 0, source.size, where, chunk) };
  return arraySamples([await plan(stream, input)], where, 'npy', source);
}

/** Samples from an .npz archive whose keys are the model's input names. */
export async function npzSamples(source: ByteSource, where: string, inputs: readonly ModelValue[]): Promise<SampleSource> {
  const entries = await listNpz(source, where);
  const byName = new Map(inputs.map((i) => [i.name, i]));
  for (const entry of entries) {
    if (!byName.has(entry.key)) throw new Error(`${where}: array '${entry.key}' is not an input of the model (inputs: ${names(inputs)})`);
  }
  const keys = new Set(entries.map((e) => e.key));
  const missing = inputs.find((i) => !i.optional && !keys.has(i.name));
  if (missing !== undefined) {
    throw new Error(
      `${where}: no array for input '${missing.name}' (model expects ${formatValueType(missing)}); the archive holds ${[...keys].map((k) => `'${k}'`).join(', ') || 'nothing'}`,
    );
  }
  const plans: ArrayPlan[] = [];
  for (const entry of entries) {
    const stream: ArrayStream = { key: entry.key, where: `${where}[${entry.key}]`, size: entry.size, open: (chunk) => openNpzEntry(source, entry, where, chunk) };
    plans.push(await plan(stream, byName.get(entry.key) as ModelValue));
  }
  return arraySamples(plans, where, 'npz', source);
}

async function plan(stream: ArrayStream, input: ModelValue): Promise<ArrayPlan> {
  const header = await readNpyHeader(await stream.open(HEADER_CHUNK), stream.where);
  const dims = header.dims;
  const rank = input.shape?.length;
  if (stream.size < header.dataOffset + header.dataLength) {
    throw new Error(
      `${stream.where}: data is truncated: shape (${dims.join(', ')}) of ${dataTypeName(header.dataType)} needs ${header.dataLength} bytes, file has ${Math.max(0, stream.size - header.dataOffset)}`,
    );
  }
  const itemBytes = dataTypeInfo(header.dataType).bits / 8;
  const bytesOf = (d: number[]) => d.reduce((a, b) => a * b, 1) * itemBytes;
  if (dims.length === 0) {
    if (rank !== undefined && rank !== 0) throw shapeError(stream, input, dims);
    return { input, stream, header, sampleDims: [], sampleBytes: header.dataLength, count: undefined };
  }
  let sampleDims: number[];
  if (rank === undefined || dims.length === rank + 1) sampleDims = dims.slice(1);
  else if (dims.length === rank) sampleDims = [1, ...dims.slice(1)];
  else throw shapeError(stream, input, dims);
  return { input, stream, header, sampleDims, sampleBytes: bytesOf(sampleDims), count: dims[0] };
}

function shapeError(stream: ArrayStream, input: ModelValue, dims: number[]): Error {
  const shape = `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;
  return new Error(
    `${stream.where}: array of shape ${shape} fits neither input '${input.name}' (${formatValueType(input)}) nor a stack of its samples along axis 0`,
  );
}

function arraySamples(plans: ArrayPlan[], where: string, kind: string, source: ByteSource): SampleSource {
  const counted = plans.filter((p) => p.count !== undefined);
  const count = counted.length === 0 ? 1 : (counted[0].count as number);
  const other = counted.find((p) => p.count !== count);
  if (other !== undefined) {
    throw new Error(`${where}: arrays disagree on the number of samples: '${counted[0].stream.key}' has ${count}, '${other.stream.key}' has ${other.count}`);
  }
  return {
    inputs: plans.map((p) => p.input.name),
    count,
    description: `${where} (${kind}, ${count} sample${count === 1 ? '' : 's'})`,
    close: async () => source.close?.(),
    async *[Symbol.asyncIterator](): AsyncGenerator<Sample> {
      const readers: ByteReader[] = [];
      const constants = new Map<string, Tensor>();
      for (const p of plans) {
        const reader = await p.stream.open();
        await readNpyHeader(reader, p.stream.where);
        readers.push(reader);
        if (p.count === undefined) constants.set(p.input.name, npyToTensor({ ...p.header, data: await reader.read(p.sampleBytes) }, p.input.name));
      }
      for (let index = 0; index < count; index++) {
        const inputs: Record<string, Tensor> = {};
        for (const [k, p] of plans.entries()) {
          const constant = constants.get(p.input.name);
          if (constant !== undefined) {
            inputs[p.input.name] = constant;
            continue;
          }
          const data = await readers[k].read(p.sampleBytes);
          inputs[p.input.name] = npyToTensor({ dataType: p.header.dataType, dims: p.sampleDims, data }, p.input.name);
        }
        yield { index, where: `${where} sample ${index}`, inputs };
      }
      // Reading each stream to its end checks the CRC of .npz members.
      for (const reader of readers) await reader.finish();
    },
  };
}

function names(inputs: readonly ModelValue[]): string {
  return inputs.map((i) => `'${i.name}'`).join(', ');
}
