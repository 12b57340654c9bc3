// What `shrink auto` measures candidates on, built the same way wherever a candidate runs (the
// auto process, or a `shrink worker` taking an evaluate job by file paths): --data read as arrays
// (scaled, with class ids), the first half (at most 512 samples) to calibrate and train on, the
// next samples (at most 2000) to tune on; and the latency of a candidate beside its input.
import { benchmarkModels } from '../eval/benchmark.js';
import type { Model } from '../ir/model.js';
import { loadCustomMetric } from '../node/custom-metric.js';
import { modelFileBytes } from '../node/model-files.js';
import { nodeOrt } from '../node/ort-node.js';
import { arrayLabels, arraySamples } from '../pipeline/prune-data.js';
import type { RecipeData } from '../pipeline/run-recipe.js';
import type { ArrayField } from '../train/array-data.js';
import { readLabelledArrays } from './training-data.js';

const MAX_CALIBRATION = 512;
const MAX_TUNING = 2000;

/** The files and settings that define the data (what an evaluate job carries). */
export interface AutoDataFiles {
  model: string;
  data: string;
  labels?: string;
  scale?: number;
  metric?: string;
  /** Labels must be there (--max-drop). */
  requireLabels?: boolean;
}

export interface AutoData {
  recipeData: RecipeData;
  calibration: number;
  tuning: number;
  hasLabels: boolean;
}

export async function autoData(model: Model, files: AutoDataFiles): Promise<AutoData> {
  const metric = files.metric === undefined ? undefined : await loadCustomMetric(files.metric);
  const arrays = await readLabelledArrays({ data: files.data, labels: files.labels, models: [model], scale: files.scale, requireLabels: files.requireLabels === true, labelsHint: '(--max-drop measures accuracy)' });
  if (arrays.count < 4) throw new Error(`${files.data}: ${arrays.count} samples; the search needs some to calibrate and some to tune on (at least 4)`);
  const calibration = Math.min(MAX_CALIBRATION, Math.floor(arrays.count / 2));
  const tuning = Math.min(MAX_TUNING, arrays.count - calibration);
  const labels = arrays.labels;
  const training = { inputs: sliceFields(arrays.inputs, 0, calibration) };
  return {
    recipeData: {
      data: arraySamples(arrays.inputs, files.data, tuning, calibration),
      labels: labels === undefined ? undefined : arrayLabels(labels.subarray(calibration, calibration + tuning), `${files.labels ?? `${files.data}[labels]`} from sample ${calibration}`),
      calibration: arraySamples(arrays.inputs, `${files.data} (calibration)`, calibration),
      training: labels === undefined ? training : { ...training, labels: labels.subarray(0, calibration) },
      inputBytes: modelFileBytes(files.model, model),
      metric,
    },
    calibration,
    tuning,
    hasLabels: labels !== undefined,
  };
}

/**
 * Median latency of `model` (its bytes) and of a candidate, interleaved for about a second at
 * `batch`, at onnxruntime's full graph optimization: as deployed, where static int8 runs fused
 * integer kernels (fidelity is measured at 'basic', the method's own error).
 */
export async function autoLatency(model: Model, modelBytes: Uint8Array, candidate: Uint8Array, batch: number): Promise<{ original_ms: number; candidate_ms: number }> {
  const timing = await autoLatencies(model, modelBytes, [candidate], batch);
  return { original_ms: timing.original_ms, candidate_ms: timing.candidate_ms[0] };
}

/** The input and `candidates` timed in one interleaved run (about a second per candidate), 1 thread. */
export async function autoLatencies(model: Model, modelBytes: Uint8Array, candidates: readonly Uint8Array[], batch: number): Promise<{ original_ms: number; candidate_ms: number[] }> {
  const timing = await benchmarkModels(
    nodeOrt,
    [{ name: 'input', source: modelBytes, model }, ...candidates.map((source, i) => ({ name: `candidate ${i + 1}`, source }))],
    { batch, runs: 50, warmup: 2, threads: 1, maxMs: 1000 * candidates.length, graphOptimization: 'all' },
  );
  return { original_ms: timing.models[0].latency_ms.median, candidate_ms: timing.models.slice(1).map((m) => m.latency_ms.median) };
}

function sliceFields(fields: Record<string, ArrayField>, from: number, count: number): Record<string, ArrayField> {
  return Object.fromEntries(
    Object.entries(fields).map(([name, f]) => {
      const size = f.sampleDims.reduce((a, b) => a * b, 1);
      return [name, { ...f, data: f.data.subarray(from * size, (from + count) * size) }];
    }),
  );
}
