// Latency benchmark: several models timed side by side in one process. Shared machines are noisy
// (other jobs, frequency scaling, thermal limits), so absolute milliseconds drift from one minute
// to the next; what stays meaningful is how models compare under the same conditions. All sessions
// are therefore loaded first and run round-robin (one run of A, one of B, ..., repeated), so any
// slowdown hits every model alike, and each figure is also given as a ratio to the first model.
// Isomorphic: takes the onnxruntime module (node or web) as a parameter and uses only
// performance.now(). Peak memory needs a process per model and lives in src/node/memory.ts.
// The report's keys are snake_case with units in the name, like `shrink eval --json`
// (src/eval/eval-report.ts), so scripts read both with one convention.
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { readModel } from '../onnx/model-io.js';
import type { PassWarning } from '../pipeline/pass.js';
import { silentProgress, type Progress } from '../pipeline/progress.js';
import { type Feeds, type ModelSession, type SessionOptions, toOrtTensor } from '../runtime/session.js';
import { ortCause, openSession } from '../runtime/ort-errors.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { benchInputs, defaultedDims, describeInputs } from './bench-inputs.js';
import { modelSignature } from './match-inputs.js';

export interface BenchModel {
  name: string;
  /**
   * What onnxruntime loads: the encoded model (external data inlined), or, with onnxruntime-node,
   * the path of a model file whose external data lies beside it. A path is the only way models
   * over protobuf's 2 GiB reach onnxruntime, and it loads them as an application would.
   */
  source: Uint8Array | string;
  /**
   * The decoded model: its declared inputs give the generated ones. Needed when `source` is a
   * path and no `inputs` are given; decoded from `source` when it is bytes and this is absent.
   */
  model?: Model;
  /** Size on disk (with external data files); defaults to source.byteLength for bytes, required for a path. */
  size?: number;
}

export interface BenchOptions {
  /** Timed runs per model (default 20). */
  runs?: number;
  /** Untimed runs per model first, so lazy allocation and caches do not count (default 3). */
  warmup?: number;
  /** Intra-op threads; 0 means onnxruntime's default pool (default 1, the steadiest on shared machines). */
  threads?: number;
  /** Size of a symbolic leading dim (default 1). */
  batch?: number;
  /** Sizes of symbolic dims by name or `input[axis]`. */
  dims?: Readonly<Record<string, number>>;
  /** Inputs per model (same order as the models), instead of generated ones. */
  inputs?: readonly Readonly<Record<string, Tensor>>[];
  /**
   * Stop timing after the round that passes this many milliseconds (at least 3 rounds): a check
   * that must stay short on slow models. The report's `runs` is the rounds actually timed.
   */
  maxMs?: number;
  /** Passed to onnxruntime (['wasm'] for onnxruntime-web). */
  executionProviders?: SessionOptions['executionProviders'];
  /**
   * onnxruntime's graph optimization (default 'all', onnxruntime's own default and what a
   * deployment runs): only there does onnxruntime fuse DequantizeLinear -> Conv -> QuantizeLinear
   * into QLinearConv, so a static int8 model timed at 'basic' runs float Convs wrapped in Q/DQ.
   */
  graphOptimization?: SessionOptions['graphOptimization'];
  /** Names the runtime in the report ('node', 'wasm'). */
  backend?: string;
  progress?: Progress;
  /** Debug lines (SHRINK_DEBUG in the CLI): level 1 per model, 2 per run. */
  debug?: (level: 1 | 2, message: string) => void;
}

export interface LatencyStats {
  median: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Peak resident memory of a process that loaded and ran the model (see src/node/memory.ts). */
export interface MemoryUsage {
  /** maxRSS of the process running the model, in bytes. */
  peak_rss_bytes: number;
  /** maxRSS of the same process doing everything but loading the model. */
  baseline_rss_bytes: number;
  /** peak - baseline: what the model's session, inputs and activations added. */
  model_rss_bytes: number;
}

/** Each figure divided by the first model's; 1 for the first model itself. */
export interface BenchRatios {
  size: number;
  load: number;
  median: number;
  p90: number;
  p99: number;
  throughput: number;
  memory?: number;
}

export interface BenchModelResult {
  name: string;
  /** File size in bytes (with external data files). */
  size_bytes: number;
  /** Inputs fed, as `name type[dims]`. */
  inputs: string[];
  /** Time to create the session (parse, graph optimization, kernel setup), ms. */
  load_ms: number;
  latency_ms: LatencyStats;
  /** Samples per second: batch × 1000 / mean latency. */
  throughput: number;
  /** Every timed run, ms, in order. */
  runs_ms: number[];
  memory?: MemoryUsage;
  ratios: BenchRatios;
}

export interface BenchReport {
  backend: string;
  threads: number;
  /** onnxruntime's graph optimization level the models were timed at. */
  graph_optimization: NonNullable<SessionOptions['graphOptimization']>;
  batch: number;
  runs: number;
  warmup: number;
  models: BenchModelResult[];
  /** Symbolic dims timed at a default size (code 'default-dim'): latency depends on them. */
  warnings: PassWarning[];
}

export const BENCH_DEFAULTS = { runs: 20, warmup: 3, threads: 1, batch: 1 } as const;
/** Models are timed as deployed: onnxruntime's default level, with its QDQ and NCHWc fusions. */
const BENCH_GRAPH_OPTIMIZATION = 'all';

interface Loaded {
  model: BenchModel;
  session: ModelSession;
  feeds: Feeds;
  inputs: string[];
  loadMs: number;
  runsMs: number[];
}

/** Loads every model, warms them up, and times them round-robin. Sessions are released at the end. */
export async function benchmarkModels(ort: OrtModule, models: readonly BenchModel[], options: BenchOptions = {}): Promise<BenchReport> {
  const runs = options.runs ?? BENCH_DEFAULTS.runs;
  const warmup = options.warmup ?? BENCH_DEFAULTS.warmup;
  const threads = options.threads ?? BENCH_DEFAULTS.threads;
  const batch = options.batch ?? BENCH_DEFAULTS.batch;
  const progress = options.progress ?? silentProgress;
  if (models.length === 0) throw new Error('benchmark: no models given');
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`benchmark: runs must be a whole number >= 1, got ${runs}`);
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new Error(`benchmark: warmup must be a whole number >= 0, got ${warmup}`);
  if (!Number.isSafeInteger(threads) || threads < 0) throw new Error(`benchmark: threads must be a whole number >= 0, got ${threads}`);
  if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`benchmark: batch must be a whole number >= 1, got ${batch}`);
  const sizes = models.map(sizeOf);

  const debug = options.debug ?? (() => {});
  const warnings: PassWarning[] = [];
  const loaded: Loaded[] = [];
  try {
    progress.start('loading', models.length);
    for (const [index, model] of models.entries()) {
      let tensors = options.inputs?.[index];
      if (tensors === undefined) {
        const ir = decoded(model);
        tensors = await benchInputs(ir, { batch, dims: options.dims });
        for (const dim of defaultedDims(modelSignature(ir).inputs, { batch, dims: options.dims })) {
          const named = dim.name === null ? `unnamed dim ${dim.key}` : `symbolic dim '${dim.name}' (${dim.key})`;
          warnings.push({ code: 'default-dim', message: `${model.name}: ${named} has no size given; timed at ${dim.size}` });
        }
      }
      const feeds: Feeds = {};
      for (const [name, tensor] of Object.entries(tensors)) feeds[name] = toOrtTensor(ort, tensor);
      const started = performance.now();
      let session: ModelSession;
      try {
        session = await openSession(ort, model.source, { threads, executionProviders: options.executionProviders, graphOptimization: options.graphOptimization ?? BENCH_GRAPH_OPTIMIZATION });
      } catch (error) {
        throw new Error(`${model.name}: ${(error as Error).message}`);
      }
      const loadMs = performance.now() - started;
      loaded.push({ model, session, feeds, inputs: describeInputs(tensors), loadMs, runsMs: [] });
      debug(1, `bench: loaded ${model.name} in ${loadMs.toFixed(1)} ms (${typeof model.source === 'string' ? 'from its path' : 'from bytes'}), inputs ${describeInputs(tensors).join(', ')}`);
      progress.tick();
    }
    progress.done();

    if (warmup > 0) {
      progress.start('warm-up', warmup * loaded.length);
      for (let round = 0; round < warmup; round++) {
        for (const entry of loaded) {
          await runOnce(entry);
          progress.tick();
        }
      }
      progress.done();
    }

    progress.start('timing', runs * loaded.length);
    const timingStarted = performance.now();
    for (let round = 0; round < runs; round++) {
      if (options.maxMs !== undefined && round >= 3 && performance.now() - timingStarted > options.maxMs) break;
      for (const entry of loaded) {
        const ms = await runOnce(entry);
        entry.runsMs.push(ms);
        debug(2, `bench: ${entry.model.name} run ${round + 1}: ${ms.toFixed(2)} ms`);
        progress.tick();
      }
    }
    progress.done();
  } finally {
    for (const entry of loaded) await entry.session.release();
  }

  const results = loaded.map((entry, index): BenchModelResult => {
    const latency_ms = latencyStats(entry.runsMs);
    return {
      name: entry.model.name,
      size_bytes: sizes[index]!,
      inputs: entry.inputs,
      load_ms: entry.loadMs,
      latency_ms,
      throughput: (batch * 1000) / latency_ms.mean,
      runs_ms: entry.runsMs,
      ratios: { size: 1, load: 1, median: 1, p90: 1, p99: 1, throughput: 1 },
    };
  });
  for (const m of results) debug(1, `bench: ${m.name}: median ${m.latency_ms.median.toFixed(2)} ms, p90 ${m.latency_ms.p90.toFixed(2)} ms over ${runs} runs`);
  return { backend: options.backend ?? 'onnxruntime', threads, graph_optimization: options.graphOptimization ?? BENCH_GRAPH_OPTIMIZATION, batch, runs: loaded[0].runsMs.length, warmup, models: withRatios(results), warnings };
}

/** The model whose declared inputs give the generated ones. */
function decoded(model: BenchModel): Model {
  if (model.model !== undefined) return model.model;
  if (typeof model.source === 'string') throw new Error(`${model.name}: loaded from a path, so give its decoded model (or its inputs) to generate inputs`);
  return readModel(model.source, { source: model.name });
}

function sizeOf(model: BenchModel): number {
  if (model.size !== undefined) return model.size;
  if (typeof model.source === 'string') throw new Error(`${model.name}: loaded from a path, so give its size on disk`);
  return model.source.byteLength;
}

/** One timed run; the outputs are dropped at once so they do not pile up. */
async function runOnce(entry: Loaded): Promise<number> {
  const started = performance.now();
  try {
    await entry.session.run(entry.feeds);
  } catch (error) {
    throw new Error(`${entry.model.name}: run failed with inputs ${entry.inputs.join(', ')}: ${ortCause(error)}`);
  }
  return performance.now() - started;
}

/** Attaches memory figures (one per model, same order) and recomputes the ratios. */
export function withMemory(report: BenchReport, memory: readonly MemoryUsage[]): BenchReport {
  const models = report.models.map((m, i) => ({ ...m, memory: memory[i] }));
  return { ...report, models: withRatios(models) };
}

/** Ratios of each model's figures to the first model's. */
function withRatios(models: BenchModelResult[]): BenchModelResult[] {
  const first = models[0];
  if (first === undefined) return models;
  return models.map((m) => {
    const ratios: BenchRatios = {
      size: m.size_bytes / first.size_bytes,
      load: m.load_ms / first.load_ms,
      median: m.latency_ms.median / first.latency_ms.median,
      p90: m.latency_ms.p90 / first.latency_ms.p90,
      p99: m.latency_ms.p99 / first.latency_ms.p99,
      throughput: m.throughput / first.throughput,
    };
    if (m.memory !== undefined && first.memory !== undefined) ratios.memory = m.memory.model_rss_bytes / first.memory.model_rss_bytes;
    return { ...m, ratios };
  });
}

/** Median, p90, p99 (linear interpolation between closest ranks), mean, min and max. */
export function latencyStats(samples: readonly number[]): LatencyStats {
  if (samples.length === 0) throw new Error('latency statistics of no runs');
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
  };
}

/** The q-quantile of sorted values (the "type 7" definition most tools use). */
export function quantile(sorted: readonly number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.min(lower + 1, sorted.length - 1);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
}
