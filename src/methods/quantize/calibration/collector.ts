// Calibration's data side: run the model on sample inputs with the activations to be quantized
// exposed as extra graph outputs (through the runtime adapter, so onnxruntime-node and -web alike)
// and fold every value into that activation's running statistics. Samples stream through one batch
// at a time and only the statistics (a min, a max, two fixed histograms) stay, so memory does not
// grow with the number of samples. A model with many activations exposes them a group at a time,
// one pass over the samples per group, so a run never holds more than `valuesPerRun` of them.
import type { Model } from '../../../ir/model.js';
import { Tensor } from '../../../ir/tensor.js';
import { type ModelValue, modelSignature } from '../../../eval/match-inputs.js';
import { type Sample, type SampleSource, checkedSamples, firstSamples, inBatches } from '../../../eval/samples.js';
import { writeModel } from '../../../onnx/model-io.js';
import { silentProgress, type Progress } from '../../../pipeline/progress.js';
import type { OrtModule, OrtTensor } from '../../../runtime/ort-types.js';
import { ModelSession, type SessionOptions, toOrtTensor } from '../../../runtime/session.js';
import { DEFAULT_BINS, TensorStatistics } from './statistics.js';

export interface CollectOptions {
  /** Histogram bins per activation (default 2048). */
  bins?: number;
  /** Most activations exposed in one session (default 64); more take one more pass over the samples each. */
  valuesPerRun?: number;
  /** Samples stacked along axis 0 per run when every input's axis 0 is symbolic (default 1). */
  batch?: number;
  /** Use at most this many samples. */
  limit?: number;
  threads?: number;
  executionProviders?: SessionOptions['executionProviders'];
  progress?: Progress;
}

export interface CollectedStatistics {
  /** Statistics of every float32 value asked for. */
  stats: Map<string, TensorStatistics>;
  /** Values asked for that turned out not to be float32 (shapes, indices), with onnxruntime's type name. */
  notFloat: Map<string, string>;
  samples: number;
  /** Passes over the samples (one per group of exposed values). */
  passes: number;
}

/**
 * Statistics of `values` (graph inputs or main-graph node outputs of `model`) over `samples`,
 * which are checked against the model's inputs first (one-line errors naming the sample).
 */
export async function collectStatistics(
  ort: OrtModule,
  model: Model,
  values: readonly string[],
  samples: SampleSource,
  options: CollectOptions = {},
): Promise<CollectedStatistics> {
  const signature = modelSignature(model);
  const inputNames = new Set(signature.inputs.map((i) => i.name));
  const fromInputs = values.filter((v) => inputNames.has(v));
  const exposed = values.filter((v) => !inputNames.has(v));
  const perRun = options.valuesPerRun ?? 64;
  if (!(perRun >= 1)) throw new Error(`calibration: valuesPerRun must be at least 1, got ${perRun}`);
  const groups: string[][] = [];
  for (let i = 0; i < exposed.length; i += perRun) groups.push(exposed.slice(i, i + perRun));
  if (groups.length === 0) groups.push([]);
  const batch = stackableBatch(options.batch ?? 1, signature.inputs);
  const bins = options.bins ?? DEFAULT_BINS;
  const stats = new Map<string, TensorStatistics>(values.map((v) => [v, new TensorStatistics(v, bins)]));
  const notFloat = new Map<string, string>();
  const progress = options.progress ?? silentProgress;
  const bytes = writeModel(model);
  let sampleCount = 0;

  for (const [g, group] of groups.entries()) {
    const session = await ModelSession.create(ort, bytes, {
      extraOutputs: group,
      threads: options.threads,
      executionProviders: options.executionProviders,
      graphOptimization: 'basic',
    });
    progress.start(`calibrate ${g + 1}/${groups.length}`, options.limit ?? samples.count);
    let seen = 0;
    try {
      const stream = checkedSamples(samples, signature.inputs);
      for await (const run of inBatches(options.limit === undefined ? stream : firstSamples(stream, options.limit), batch)) {
        const feeds = stackedFeeds(ort, run);
        if (g === 0) for (const name of fromInputs) addValue(stats, notFloat, name, feeds[name]);
        // Asking only for the group's values lets onnxruntime skip the model's own outputs' tails.
        let result: Record<string, OrtTensor> = {};
        if (group.length > 0) {
          try {
            result = await session.run(feeds, group);
          } catch (error) {
            throw new Error(`calibration: onnxruntime failed on ${run[0].where}: ${(error as Error).message.split('\n')[0]}`);
          }
        }
        for (const name of group) addValue(stats, notFloat, name, result[name]);
        seen += run.length;
        progress.tick(run.length);
      }
    } finally {
      progress.done();
      await session.release();
    }
    if (seen === 0) throw new Error(`calibration: ${samples.description} holds no samples`);
    sampleCount = seen;
  }
  for (const name of notFloat.keys()) stats.delete(name);
  return { stats, notFloat, samples: sampleCount, passes: groups.length };
}

function addValue(stats: Map<string, TensorStatistics>, notFloat: Map<string, string>, name: string, tensor: OrtTensor | undefined): void {
  if (tensor === undefined || notFloat.has(name)) return;
  if (tensor.type !== 'float32') {
    notFloat.set(name, tensor.type);
    return;
  }
  stats.get(name)?.add(tensor.data as Float32Array);
}

/** `batch` when every input has a symbolic (or unknown) axis 0 to stack samples on, else 1. */
function stackableBatch(batch: number, inputs: readonly ModelValue[]): number {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`calibration: batch must be a whole number >= 1, got ${batch}`);
  const fixed = inputs.some((i) => !i.optional && i.shape !== undefined && typeof i.shape[0] === 'number');
  return fixed ? 1 : batch;
}

/** The samples' inputs stacked along axis 0 (one sample: its own tensors). */
function stackedFeeds(ort: OrtModule, run: Sample[]): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  for (const name of Object.keys(run[0].inputs)) {
    const parts = run.map((s) => s.inputs[name]);
    feeds[name] = toOrtTensor(ort, parts.length === 1 ? parts[0] : stack(parts, name, run));
  }
  return feeds;
}

function stack(parts: Tensor[], name: string, run: Sample[]): Tensor {
  const [first] = parts;
  const rest = first.dims.slice(1).join(',');
  for (const [k, t] of parts.entries()) {
    if (t.dataType !== first.dataType || t.dims.length === 0 || t.dims.slice(1).join(',') !== rest) {
      throw new Error(`calibration: ${run[k].where} input '${name}' [${t.dims.join(',')}] does not stack with [${first.dims.join(',')}]; use batch 1`);
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
