// Runs models in onnxruntime: from IR or bytes, with thread and optimization settings, and with
// any intermediate value exposed as an extra output (calibration and per-layer error read values
// this way). Works with onnxruntime-node and onnxruntime-web alike (see ort-types.ts).
import type { InferenceSession } from 'onnxruntime-common';
import { dataTypeInfo, DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { initializerBytes, writeModel } from '../onnx/model-io.js';
import { decodeModelProto, encodeModelProto } from '../onnx/codec.js';
import { makeValueInfo } from '../ir/value-info.js';
import { type OrtModule, type OrtTensor, type StagedModel, dataTypeFromOrt, ortTypeName } from './ort-types.js';

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
  /**
   * Whether idle intra-op threads spin waiting for work (onnxruntime's default) or sleep. On a
   * machine whose other cores are busy, spinning threads hold up every parallel op: off is then faster.
   */
  spinning?: boolean;
}

export type Feeds = Record<string, OrtTensor>;

/** A model loaded in onnxruntime. */
export class ModelSession {
  private constructor(
    private readonly session: InferenceSession,
    readonly extraOutputs: readonly string[],
    private readonly staged: StagedModel | undefined,
  ) {}

  /**
   * Loads a model: IR, encoded bytes, or (onnxruntime-node only) a file path. IR with external
   * data or with more weights than one protobuf holds is staged as a file with its data beside
   * it where the runtime can do that (`ort.stageModel`), so models of any size load; otherwise
   * it is encoded, external data inlined.
   */
  static async create(ort: OrtModule, model: Model | Uint8Array | string, options: SessionOptions = {}): Promise<ModelSession> {
    const extra = options.extraOutputs ?? [];
    let input: Uint8Array | string;
    let staged: StagedModel | undefined;
    if (typeof model === 'string') {
      if (extra.length > 0) throw new Error('extra outputs need the model as IR or bytes, not a path');
      input = model;
    } else if (model instanceof Uint8Array) {
      input = extra.length > 0 ? withExtraOutputs(model, extra) : model;
    } else if (ort.stageModel !== undefined && needsStaging(model)) {
      staged = await ort.stageModel(extra.length > 0 ? exposeValues(model.clone(), extra) : model);
      input = staged.path;
    } else {
      input = writeModel(extra.length > 0 ? exposeValues(model.clone(), extra) : model);
    }
    const sessionOptions: InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.graphOptimization ?? 'basic',
      // onnxruntime prints multi-line warnings straight to stderr; shrink reports problems itself.
      logSeverityLevel: options.logSeverityLevel ?? 3,
    };
    if (options.threads !== undefined && options.threads > 0) sessionOptions.intraOpNumThreads = options.threads;
    if (options.executionProviders !== undefined) sessionOptions.executionProviders = options.executionProviders;
    if (options.optimizedModelFilePath !== undefined) sessionOptions.optimizedModelFilePath = options.optimizedModelFilePath;
    if (options.spinning !== undefined) sessionOptions.extra = { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } };
    try {
      const session =
        typeof input === 'string'
          ? await ort.InferenceSession.create(input, sessionOptions)
          : await ort.InferenceSession.create(input, sessionOptions);
      return new ModelSession(session, extra, staged);
    } catch (error) {
      staged?.release();
      throw error;
    }
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
    try {
      await this.session.release();
    } finally {
      this.staged?.release();
    }
  }
}

/** IR that cannot or should not be handed over as one buffer: external weights, or too many. */
function needsStaging(model: Model): boolean {
  let external = false;
  model.graph.visit((g) => {
    if (g.initializers.some((t) => t.isExternal)) external = true;
  });
  return external || initializerBytes(model) > STAGE_ABOVE_BYTES;
}

/** Inline weights above this are staged: encoding them would copy them once more in memory. */
const STAGE_ABOVE_BYTES = 2 ** 30;

/**
 * Adds graph outputs for intermediate values of `model` (changed in place: pass a clone). Types
 * come from value_info where known; without one, onnxruntime infers the output's type itself.
 */
export function exposeValues(model: Model, names: readonly string[]): Model {
  const graph = model.graph;
  const present = new Set(graph.outputs.map((o) => o.name));
  for (const name of names) {
    const defined = graph.producer(name) !== undefined || graph.isGraphInput(name) || graph.initializer(name) !== undefined;
    if (!defined) throw new Error(`cannot expose '${name}': no node, input or initializer of the main graph defines it`);
    if (present.has(name)) continue;
    graph.outputs.push(graph.valueInfo.find((v) => v.name === name) ?? makeValueInfo(name));
    present.add(name);
  }
  graph.changed();
  return model;
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
