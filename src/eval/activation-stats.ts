// Activation statistics: run a model on sample inputs with chosen intermediate values exposed as
// extra graph outputs (onnxruntime-node and -web alike) and fold every batch into accumulators,
// pluggable per use:
//   TensorStatistics  min, max and two fixed histograms: static int8 calibration (tensor-statistics.ts)
//   ChannelNorms      per-channel L2 norm along an axis: Wanda's ||X_j|| (channel-norms.ts)
//   GramMatrix        XᵀX over the rows of a MatMul/Gemm input: SparseGPT and GPTQ (gram-matrix.ts)
// Samples stream through one batch at a time and only the accumulators' state stays, so memory does
// not grow with the number of samples. A model with many values to watch exposes them a group at
// a time, one pass over the samples per group, so a run never holds more than `valuesPerRun` of
// them.
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { silentProgress, type Progress } from '../pipeline/progress.js';
import type { OrtModule, OrtTensor } from '../runtime/ort-types.js';
import { ModelSession, type SessionOptions, toOrtTensor } from '../runtime/session.js';
import { type ModelValue, modelSignature } from './match-inputs.js';
import { type Sample, type SampleSource, checkedSamples, firstSamples, inBatches } from './samples.js';
import { DEFAULT_BINS, TensorStatistics } from './tensor-statistics.js';

/** Running statistics of one activation, fed one batch at a time. */
export interface ActivationAccumulator {
  /** The value it reads: a graph input or a main-graph node output. */
  readonly value: string;
  /** Folds in one batch: float32 values, row-major, with their dims (samples stacked on axis 0). */
  add(data: Float32Array, dims: readonly number[]): void | Promise<void>;
  /** Bytes of running state (memory checks). */
  readonly byteSize: number;
  /** Frees what it opened (onnxruntime sessions); the collector calls it once, when done or failed. */
  release?(): Promise<void>;
}

export interface CollectOptions {
  /** Most values exposed in one session (default 64); more take one more pass over the samples each. */
  valuesPerRun?: number;
  /** Samples stacked along axis 0 per run when every input's axis 0 is symbolic (default 1). */
  batch?: number;
  /** Use at most this many samples. */
  limit?: number;
  threads?: number;
  executionProviders?: SessionOptions['executionProviders'];
  progress?: Progress;
  /** What the statistics are for, at the start of errors and progress lines (default 'activation statistics'). */
  purpose?: string;
}

export interface CollectResult {
  /** Values asked for that turned out not to be float32 (shapes, indices), with onnxruntime's type name; their accumulators saw nothing. */
  notFloat: Map<string, string>;
  samples: number;
  /** Passes over the samples (one per group of exposed values). */
  passes: number;
}

/**
 * Feeds every accumulator the values of its activation over `samples`, which are checked against
 * the model's inputs first (one-line errors naming the sample). Accumulators are released at the end.
 */
export async function collectActivations(
  ort: OrtModule,
  model: Model,
  accumulators: readonly ActivationAccumulator[],
  samples: SampleSource,
  options: CollectOptions = {},
): Promise<CollectResult> {
  const purpose = options.purpose ?? 'activation statistics';
  try {
    return await collect(ort, model, accumulators, samples, options, purpose);
  } finally {
    for (const a of accumulators) await a.release?.();
  }
}

async function collect(ort: OrtModule, model: Model, accumulators: readonly ActivationAccumulator[], samples: SampleSource, options: CollectOptions, purpose: string): Promise<CollectResult> {
  const byValue = new Map<string, ActivationAccumulator[]>();
  for (const a of accumulators) byValue.set(a.value, [...(byValue.get(a.value) ?? []), a]);
  const values = [...byValue.keys()];
  const signature = modelSignature(model);
  const inputNames = new Set(signature.inputs.map((i) => i.name));
  const fromInputs = values.filter((v) => inputNames.has(v));
  const exposed = values.filter((v) => !inputNames.has(v));
  const perRun = options.valuesPerRun ?? 64;
  if (!(perRun >= 1)) throw new Error(`${purpose}: valuesPerRun must be at least 1, got ${perRun}`);
  const groups: string[][] = [];
  for (let i = 0; i < exposed.length; i += perRun) groups.push(exposed.slice(i, i + perRun));
  if (groups.length === 0) groups.push([]);
  const batch = stackableBatch(options.batch ?? 1, signature.inputs, purpose);
  const notFloat = new Map<string, string>();
  const progress = options.progress ?? silentProgress;
  const feed = async (name: string, tensor: OrtTensor | undefined): Promise<void> => {
    if (tensor === undefined || notFloat.has(name)) return;
    if (tensor.type !== 'float32') {
      notFloat.set(name, tensor.type);
      return;
    }
    for (const a of byValue.get(name) ?? []) await a.add(tensor.data as Float32Array, tensor.dims);
  };
  let sampleCount = 0;

  for (const [g, group] of groups.entries()) {
    const session = await ModelSession.create(ort, model, {
      extraOutputs: group,
      threads: options.threads,
      executionProviders: options.executionProviders,
      graphOptimization: 'basic',
    });
    progress.start(`${purpose} ${g + 1}/${groups.length}`, options.limit ?? samples.count);
    let seen = 0;
    try {
      const stream = checkedSamples(samples, signature.inputs);
      for await (const run of inBatches(options.limit === undefined ? stream : firstSamples(stream, options.limit), batch)) {
        const feeds = stackedFeeds(ort, run, purpose);
        if (g === 0) for (const name of fromInputs) await feed(name, feeds[name]);
        // Asking only for the group's values lets onnxruntime skip the model's own outputs' tails.
        let result: Record<string, OrtTensor> = {};
        if (group.length > 0) {
          try {
            result = await session.run(feeds, group);
          } catch (error) {
            throw new Error(`${purpose}: onnxruntime failed on ${run[0].where}: ${(error as Error).message.split('\n')[0]}`);
          }
        }
        for (const name of group) await feed(name, result[name]);
        seen += run.length;
        progress.tick(run.length);
      }
    } finally {
      progress.done();
      await session.release();
    }
    if (seen === 0) throw new Error(`${purpose}: ${samples.description} holds no samples`);
    sampleCount = seen;
  }
  return { notFloat, samples: sampleCount, passes: groups.length };
}

export interface CalibrationCollectOptions extends CollectOptions {
  /** Histogram bins per activation (default 2048). */
  bins?: number;
}

export interface CollectedStatistics extends CollectResult {
  /** Statistics of every float32 value asked for. */
  stats: Map<string, TensorStatistics>;
}

/**
 * Collects calibration statistics somewhere else (in shards, on workers of a job queue) and returns
 * what collectStatistics would for the same model, values and samples.
 */
export type StatisticsCollector = (model: Model, values: readonly string[], samples: SampleSource, options: CalibrationCollectOptions) => Promise<CollectedStatistics>;

/** Calibration's statistics (min, max, histograms) of `values` over `samples`. */
export async function collectStatistics(
  ort: OrtModule,
  model: Model,
  values: readonly string[],
  samples: SampleSource,
  options: CalibrationCollectOptions = {},
): Promise<CollectedStatistics> {
  const bins = options.bins ?? DEFAULT_BINS;
  const stats = new Map<string, TensorStatistics>(values.map((v) => [v, new TensorStatistics(v, bins)]));
  const result = await collectActivations(ort, model, [...stats.values()], samples, { purpose: 'calibration', ...options });
  for (const name of result.notFloat.keys()) stats.delete(name);
  return { ...result, stats };
}

/** `batch` when every input has a symbolic (or unknown) axis 0 to stack samples on, else 1. */
function stackableBatch(batch: number, inputs: readonly ModelValue[], purpose: string): number {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`${purpose}: batch must be a whole number >= 1, got ${batch}`);
  const fixed = inputs.some((i) => !i.optional && i.shape !== undefined && typeof i.shape[0] === 'number');
  return fixed ? 1 : batch;
}

/** The samples' inputs stacked along axis 0 (one sample: its own tensors). */
function stackedFeeds(ort: OrtModule, run: Sample[], purpose: string): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  for (const name of Object.keys(run[0].inputs)) {
    const parts = run.map((s) => s.inputs[name]);
    feeds[name] = toOrtTensor(ort, parts.length === 1 ? parts[0] : stack(parts, name, run, purpose));
  }
  return feeds;
}

function stack(parts: Tensor[], name: string, run: Sample[], purpose: string): Tensor {
  const [first] = parts;
  const rest = first.dims.slice(1).join(',');
  for (const [k, t] of parts.entries()) {
    if (t.dataType !== first.dataType || t.dims.length === 0 || t.dims.slice(1).join(',') !== rest) {
      throw new Error(`${purpose}: ${run[k].where} input '${name}' [${t.dims.join(',')}] does not stack with [${first.dims.join(',')}]; use batch 1`);
    }
  }
  const total = parts.reduce((n, t) => n + t.byteLength, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const t of parts) {
    bytes.set(t.bytes(), at);
    at += t.byteLength;
  }
  const dims = [parts.reduce((n, t) => n + t.dims[0], 0), ...first.dims.slice(1)];
  return Tensor.fromBytes(name, first.dataType, dims, bytes);
}
