// Runs models in onnxruntime: from IR or bytes, with thread and optimization settings, and with
// any intermediate value exposed as an extra output (calibration and per-layer error read values
// this way). Works with onnxruntime-node and onnxruntime-web alike (see ort-types.ts).
import type { InferenceSession } from 'onnxruntime-common';
import { dataTypeInfo, DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { writeModel } from '../onnx/model-io.js';
import { decodeModelProto, encodeModelProto } from '../onnx/codec.js';
import { makeValueInfo } from '../ir/value-info.js';
import { type OrtModule, type OrtTensor, dataTypeFromOrt, ortTypeName } from './ort-types.js';

export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Intra-op threads (0 or undefined: onnxruntime's default). */
  threads?: number;
  /**
   * onnxruntime's graph optimization level. Defaults to 'basic': at 'extended'/'all' onnxruntime
   * may fuse quantized patterns into kernels that change outputs, hiding a method's own error.
   */
  graphOptimization?: GraphOptimization;
  /** Names of intermediate values to return as extra outputs. */
  extraOutputs?: string[];
  /** Passed through to onnxruntime (e.g. ['wasm'] for onnxruntime-web). */
  executionProviders?: InferenceSession.SessionOptions['executionProviders'];
  /** onnxruntime's own log level: 0 verbose ... 3 errors (default) ... 4 fatal only. */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Where onnxruntime writes the model after its own optimizations (onnxruntime-node only). */
  optimizedModelFilePath?: string;
}

export type Feeds = Record<string, OrtTensor>;

/** A model loaded in onnxruntime. */
export class ModelSession {
  private constructor(
    private readonly session: InferenceSession,
    readonly extraOutputs: readonly string[],
  ) {}

  /**
   * Loads a model: IR (encoded here, inlining external data), encoded bytes, or (onnxruntime-node
   * only) a file path, which is the way to run models over 2 GiB.
   */
  static async create(ort: OrtModule, model: Model | Uint8Array | string, options: SessionOptions = {}): Promise<ModelSession> {
    const extra = options.extraOutputs ?? [];
    let input: Uint8Array | string;
    if (typeof model === 'string') {
      if (extra.length > 0) throw new Error('extra outputs need the model as IR or bytes, not a path');
      input = model;
    } else if (model instanceof Uint8Array) {
      input = extra.length > 0 ? withExtraOutputs(model, extra) : model;
    } else {
      input = writeModel(model);
      if (extra.length > 0) input = withExtraOutputs(input, extra);
    }
    const sessionOptions: InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.graphOptimization ?? 'basic',
      // onnxruntime prints multi-line warnings straight to stderr; shrink reports problems itself.
      logSeverityLevel: options.logSeverityLevel ?? 3,
    };
    if (options.threads !== undefined && options.threads > 0) sessionOptions.intraOpNumThreads = options.threads;
    if (options.executionProviders !== undefined) sessionOptions.executionProviders = options.executionProviders;
    if (options.optimizedModelFilePath !== undefined) sessionOptions.optimizedModelFilePath = options.optimizedModelFilePath;
    const session =
      typeof input === 'string'
        ? await ort.InferenceSession.create(input, sessionOptions)
        : await ort.InferenceSession.create(input, sessionOptions);
    return new ModelSession(session, extra);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs once; returns the requested outputs (default: all, extra outputs included). */
  async run(feeds: Feeds, outputs?: readonly string[]): Promise<Record<string, OrtTensor>> {
    const result = outputs === undefined ? await this.session.run(feeds) : await this.session.run(feeds, outputs);
    return result as Record<string, OrtTensor>;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Adds graph outputs for intermediate values. Without a declared type, onnxruntime infers the
 * type of such outputs itself.
 */
export function withExtraOutputs(modelBytes: Uint8Array, names: readonly string[]): Uint8Array {
  const proto = decodeModelProto(modelBytes, 'model');
  const graph = proto.graph;
  if (graph === undefined) throw new Error('model has no graph');
  const present = new Set(graph.output.map((o) => o.name));
  const produced = new Set(graph.node.flatMap((n) => n.output));
  for (const i of graph.input) produced.add(i.name);
  for (const t of graph.initializer) produced.add(t.name);
  for (const name of names) {
    if (!produced.has(name)) throw new Error(`cannot expose '${name}': no node, input or initializer of the main graph defines it`);
    if (present.has(name)) continue;
    const known = graph.valueInfo.find((v) => v.name === name);
    graph.output.push(known ?? makeValueInfo(name));
    present.add(name);
  }
  return encodeModelProto(proto);
}

/** An IR tensor as an onnxruntime tensor (the bytes are copied into an aligned array). */
export function toOrtTensor(ort: OrtModule, tensor: Tensor): OrtTensor {
  const type = ortTypeName(tensor.dataType);
  if (type === undefined) throw new Error(`tensor '${tensor.name}': onnxruntime's JS API has no ${dataTypeInfo(tensor.dataType).name} tensors`);
  const dims = [...tensor.dims];
  if (tensor.dataType === DataType.STRING) {
    const decoder = new TextDecoder();
    return new ort.Tensor('string', tensor.strings().map((s) => decoder.decode(s)), dims);
  }
  const data = tensor.data();
  return new ort.Tensor(type, data as never, dims);
}

/** An onnxruntime tensor as an IR tensor named `name`. */
export function fromOrtTensor(tensor: OrtTensor, name: string): Tensor {
  const type = dataTypeFromOrt(tensor.type);
  if (type === undefined) throw new Error(`output '${name}': unsupported onnxruntime tensor type ${tensor.type}`);
  if (type === DataType.STRING) {
    const encoder = new TextEncoder();
    return Tensor.fromStrings(name, tensor.dims, (tensor.data as string[]).map((s) => encoder.encode(s)));
  }
  const data = tensor.data as ArrayBufferView;
  return Tensor.fromBytes(name, type, tensor.dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}
