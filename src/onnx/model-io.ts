// Reading and writing whole models, with external data, independent of where the bytes live:
// Node's file adapter (src/node/model-files.ts) and a browser page both call these.
import { Graph } from '../ir/graph.js';
import { modelFromProto } from '../ir/from-proto.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { modelToProto } from '../ir/to-proto.js';
import { encodeModelChunks } from './chunked-encode.js';
import { decodeModelProto, PROTOBUF_LIMIT } from './codec.js';
import type { ExternalDataSource } from './external-data.js';
import type { TensorProto } from './onnx_pb.js';

export interface ReadModelOptions {
  /** Where external tensor files are read from (the model's folder). */
  externalData?: ExternalDataSource;
  /** The file name, for error messages. */
  source?: string;
}

export function readModel(bytes: Uint8Array, options: ReadModelOptions = {}): Model {
  const source = options.source ?? 'model';
  return modelFromProto(decodeModelProto(bytes, source), { externalData: options.externalData, source });
}

export interface ExternalDataOptions {
  /** Initializers of at least this many bytes go to external files (default 1024). */
  threshold?: number;
  /** File name for the data, relative to the model's folder (default `<model file>.data`). */
  location?: string;
  /** One file per tensor (named after the tensor) instead of one shared file. */
  perTensor?: boolean;
  /** Offsets in the shared file are multiples of this, so runtimes can map them (default 4096). */
  align?: number;
}

/** Receives external data as it is written; the Node adapter appends to temporary files. */
export interface ExternalDataSink {
  /** Appends bytes to the file at `location` and returns the offset they were written at. */
  append(location: string, bytes: Uint8Array): number;
  /** Bytes written so far to `location` (0 if none). */
  size(location: string): number;
  /** Whether a file of that name exists already where the data goes (per-tensor files avoid it). */
  taken?(location: string): boolean;
}

export interface WriteModelOptions {
  externalData?: ExternalDataOptions & {
    sink: ExternalDataSink;
    defaultLocation: string;
    /**
     * Where an initializer's bytes already are, to be referenced instead of copied (a staged model
     * pointing at its original's data file); undefined copies them to the sink as usual.
     */
    reference?: (tensor: Tensor) => { location: string; offset: number } | undefined;
  };
}

/**
 * Encodes a model. With `externalData`, initializers over the threshold are streamed to the sink
 * one at a time (never all in memory at once) and the protobuf keeps only references.
 */
export function writeModel(model: Model, options: WriteModelOptions = {}): Uint8Array {
  const chunks = writeModelChunks(model, options);
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/**
 * The encoded model as pieces whose concatenation is the file: large weights are their own
 * pieces (views, not copies), so a file writer can write them without assembling the whole file.
 */
export function writeModelChunks(model: Model, options: WriteModelOptions = {}): Uint8Array[] {
  const external = options.externalData;
  if (external === undefined) {
    const inlineBytes = initializerBytes(model);
    if (inlineBytes > PROTOBUF_LIMIT) {
      throw new Error(
        `model holds ${(inlineBytes / 2 ** 30).toFixed(2)} GiB of weights, over protobuf's 2 GiB limit: save it with external data`,
      );
    }
    return encodeModelChunks(modelToProto(model));
  }
  const threshold = external.threshold ?? 1024;
  const align = external.align ?? 4096;
  const usedFiles = new Set<string>();
  const writeInitializer = (tensor: Tensor): TensorProto => {
    if (tensor.byteLength < threshold || tensor.dataType === 8 /* STRING */) return tensor.toProto();
    const existing = external.reference?.(tensor);
    if (existing !== undefined) return tensor.toProto(existing);
    const location = external.perTensor ? perTensorFileName(tensor.name, usedFiles, external.sink) : (external.location ?? external.defaultLocation);
    const padding = (align - (external.sink.size(location) % align)) % align;
    if (padding > 0) external.sink.append(location, new Uint8Array(padding));
    const offset = external.sink.append(location, tensor.bytes());
    return tensor.toProto({ location, offset });
  };
  const proto = modelToProto(model, writeInitializer);
  return encodeModelChunks(proto);
}

/** A file name for one tensor: its name with unsafe characters replaced, unique within the model. */
function perTensorFileName(name: string, used: Set<string>, sink: ExternalDataSink): string {
  const base = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'tensor';
  let file = base;
  for (let i = 1; used.has(file) || sink.taken?.(file) === true; i++) file = `${base}_${i}`;
  used.add(file);
  return file;
}

/** Bytes of every initializer's data in all scopes, external ones included. */
export function initializerBytes(model: Model): number {
  let total = 0;
  model.graph.visit((g) => {
    for (const t of g.initializers) total += t.byteLength;
  });
  return total;
}
