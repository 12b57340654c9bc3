// The optimizer side by side with onnxruntime's own: for each real model (PP-OCRv4 det/rec/cls,
// Silero VAD v5/v6/legacy), three files, compared on node count, file size, session creation time
// and latency under onnxruntime-node at graph optimization 'basic' and at 'all', and whether
// onnxruntime-web (wasm) runs them:
//   original   the file as published;
//   ours       optimizeModel at level 'full' (the registry as it stands), written by writeModel;
//   ORT        onnxruntime-node's own offline optimization: a session at 'extended' with
//              optimizedModelFilePath, i.e. what ORT writes for later loading;
//   ORT all    the same at 'all', which adds layout transforms for this machine's CPU (NCHWc):
//              ORT documents such files as tied to the hardware they were made on.
// Every figure of ours and ORT's is also given as a ratio to the original's. Fidelity: each
// model's outputs against the original's on the same inputs, at 'basic'.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { WASM_EXECUTION_PROVIDERS, loadWebOrt } from '../src/node/ort-web.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { optimizeModel } from '../src/optimize/optimize.js';
import { totalNodes } from '../src/optimize/util/graph-queries.js';
import type { OrtModule, OrtTensor } from '../src/runtime/ort-types.js';
import { type Feeds, type GraphOptimization, ModelSession } from '../src/runtime/session.js';
import { OCR, VAD, feedsFor, floats, sr16k, zeros } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

/** One intra-op thread: timings on a shared machine vary far less, and ratios are what we compare. */
const THREADS = 1;
const CREATE_REPEATS = 10;
const RUN_WARMUP = 3;
const RUN_ROUNDS = 30;
/** Shortest time one latency sample covers (back-to-back runs averaged). */
const SAMPLE_MS = 10;
const LEVELS: GraphOptimization[] = ['basic', 'all'];
const VARIANTS = ['original', 'ours', 'ort', 'ort-all'] as const;
/** The variants compared with the original. */
const CANDIDATES = ['ours', 'ort', 'ort-all'] as const;
type Variant = (typeof VARIANTS)[number];

interface Spec {
  name: string;
  file: string;
  /** Inputs: fixed pseudo-random floats (audio-like for Silero), so every run sees the same data. */
  feeds: () => Tensor[];
}

const MODELS: Spec[] = [
  // PP-OCR normalizes pixels to about [-2, 2] ((x/255 - mean) / std) before the networks see them.
  { name: 'PP-OCRv4 det', file: `${OCR}/ch_PP-OCRv4_det_infer.onnx`, feeds: () => [floats('x', [1, 3, 320, 320], 1, -2, 2)] },
  { name: 'PP-OCRv4 rec', file: `${OCR}/ch_PP-OCRv4_rec_infer.onnx`, feeds: () => [floats('x', [1, 3, 48, 320], 2, -1, 1)] },
  { name: 'PP-OCR cls', file: `${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx`, feeds: () => [floats('x', [1, 3, 48, 192], 3, -1, 1)] },
  { name: 'Silero VAD v5', file: `${VAD}/silero_vad_v5.onnx`, feeds: () => [floats('input', [1, 512], 4, -0.5, 0.5), zeros('state', [2, 1, 128]), sr16k()] },
  { name: 'Silero VAD v6', file: `${VAD}/silero_vad_v6.onnx`, feeds: () => [floats('input', [1, 576], 5, -0.5, 0.5), zeros('state', [2, 1, 128]), sr16k()] },
  {
    name: 'Silero VAD legacy',
    file: `${VAD}/silero_vad_legacy.onnx`,
    feeds: () => [floats('input', [1, 512], 6, -0.5, 0.5), sr16k(), zeros('h', [2, 1, 64]), zeros('c', [2, 1, 64])],
  },
];

interface Timing {
  medianMs: number;
  samplesMs: number[];
}

interface Fidelity {
  /** Worst over outputs of max |a - b| against the original at 'basic' in onnxruntime-node. */
  maxAbs: number;
  /** Lowest cosine over outputs. */
  cosine: number;
}

interface VariantResult {
  nodes: number;
  bytes: number;
  /** Ops outside ai.onnx, by domain:op, with counts (what may tie a file to one runtime). */
  nonStandardOps: Record<string, number>;
  create: Record<GraphOptimization, Timing>;
  latency: Record<GraphOptimization, Timing>;
  /**
   * CPU time of the process per run (user + system, all threads). On a shared machine it barely
   * moves with contention, where wall time does, so its ratios are the steadier comparison.
   */
  cpu: Record<GraphOptimization, Timing>;
  fidelity: Fidelity;
  /** Loaded and ran in onnxruntime-web (wasm), and how far its outputs are from the original's there. */
  web: { runs: boolean; error?: string; fidelity?: Fidelity };
}

interface Ratios {
  nodes: number;
  bytes: number;
  create: Record<string, number>;
  latency: Record<string, number>;
  cpu: Record<string, number>;
}

interface ModelResult {
  model: string;
  file: string;
  inputs: Record<string, number[]>;
  /** Back-to-back runs averaged into one latency sample. */
  runsPerSample: number;
  /** Time optimizeModel took (ms), and ORT's offline optimization (session creation at 'extended' / 'all'). */
  optimizeMs: { ours: number; ort: number; 'ort-all': number };
  variants: Record<Variant, VariantResult>;
  /** Variant over original: below 1 is smaller or faster. */
  ratios: Record<(typeof CANDIDATES)[number], Ratios>;
}

/** (p75 - p25) / median: how much samples of one setting spread. */
function relativeIqr(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return (at(0.75) - at(0.25)) / median(sorted);
}

function timing(samples: number[]): Timing {
  return { medianMs: round(median(samples)), samplesMs: samples.map(round) };
}

function floatsOf(tensor: OrtTensor): Float64Array {
  return Float64Array.from(tensor.data as ArrayLike<number> & Iterable<number>, Number);
}

function fidelity(reference: Record<string, OrtTensor>, candidate: Record<string, OrtTensor>): Fidelity {
  let maxAbs = 0;
  let cosine = 1;
  for (const [name, a] of Object.entries(reference)) {
    const b = candidate[name];
    if (b === undefined) throw new Error(`output '${name}' missing`);
    const x = floatsOf(a);
    const y = floatsOf(b);
    if (x.length !== y.length) throw new Error(`output '${name}': ${x.length} elements, candidate has ${y.length}`);
    let dot = 0;
    let xx = 0;
    let yy = 0;
    for (let i = 0; i < x.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(x[i] - y[i]));
      dot += x[i] * y[i];
      xx += x[i] * x[i];
      yy += y[i] * y[i];
    }
    const c = xx === 0 && yy === 0 ? 1 : dot / Math.sqrt(xx * yy);
    cosine = Math.min(cosine, c);
  }
  return { maxAbs, cosine };
}

function nonStandardOps(bytes: Uint8Array): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { node } of readModel(bytes).graph.allNodes()) {
    if (node.domain === '' || node.domain === 'ai.onnx') continue;
    const key = `${node.domain}:${node.opType}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Creates and releases a session of every (variant, level) once per round, `CREATE_REPEATS` rounds. */
async function createTimes(files: Record<Variant, Uint8Array>): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>();
  for (let round = 0; round < CREATE_REPEATS; round++) {
    for (const level of LEVELS) {
      for (const v of VARIANTS) {
        const started = performance.now();
        const session = await ModelSession.create(nodeOrt, files[v], { threads: THREADS, graphOptimization: level });
        const ms = performance.now() - started;
        await session.release();
        samples.set(`${v}/${level}`, [...(samples.get(`${v}/${level}`) ?? []), ms]);
      }
    }
  }
  return samples;
}

/**
 * Runs every (variant, level) session once per round, so a busy spell of the machine hits all
 * alike. A sample is the mean of `repeats` back-to-back runs, chosen so that one sample lasts at
 * least SAMPLE_MS: a single run of a sub-millisecond model (Silero) is mostly timer and scheduler noise.
 */
async function latencies(sessions: Map<string, ModelSession>, feeds: Feeds): Promise<{ samples: Map<string, number[]>; cpu: Map<string, number[]>; repeats: number }> {
  const samples = new Map<string, number[]>([...sessions.keys()].map((k) => [k, []]));
  const cpu = new Map<string, number[]>([...sessions.keys()].map((k) => [k, []]));
  let slowest = 0;
  for (const session of sessions.values()) {
    for (let i = 0; i < RUN_WARMUP; i++) {
      const started = performance.now();
      await session.run(feeds);
      slowest = Math.max(slowest, performance.now() - started);
    }
  }
  const repeats = Math.max(1, Math.ceil(SAMPLE_MS / Math.max(slowest, 1e-3)));
  for (let round = 0; round < RUN_ROUNDS; round++) {
    for (const [key, session] of sessions) {
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      for (let i = 0; i < repeats; i++) await session.run(feeds);
      const used = process.cpuUsage(cpuBefore);
      samples.get(key)?.push((performance.now() - started) / repeats);
      cpu.get(key)?.push((used.user + used.system) / 1000 / repeats);
    }
  }
  return { samples, cpu, repeats };
}

async function webCheck(web: OrtModule, bytes: Uint8Array, tensors: Tensor[], reference: Record<string, OrtTensor>): Promise<VariantResult['web']> {
  let session: ModelSession | undefined;
  try {
    session = await ModelSession.create(web, bytes, { executionProviders: WASM_EXECUTION_PROVIDERS });
    const out = await session.run(feedsFor(web, tensors));
    return { runs: true, fidelity: fidelity(reference, out) };
  } catch (error) {
    return { runs: false, error: (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ').slice(0, 200) };
  } finally {
    await session?.release();
  }
}

async function measureModel(spec: Spec, web: OrtModule, scratch: string, log: (line: string) => void): Promise<ModelResult> {
  const original = new Uint8Array(fs.readFileSync(spec.file));
  const model = loadModel(spec.file);
  let started = performance.now();
  await optimizeModel(model, { level: 'full' }, { ort: nodeOrt });
  const oursMs = performance.now() - started;
  const ours = writeModel(model);
  const ortOptimized = async (level: GraphOptimization) => {
    const file = path.join(scratch, `${path.basename(spec.file, '.onnx')}.ort-${level}.onnx`);
    const begun = performance.now();
    await (await ModelSession.create(nodeOrt, spec.file, { threads: THREADS, graphOptimization: level, optimizedModelFilePath: file })).release();
    return { ms: performance.now() - begun, bytes: new Uint8Array(fs.readFileSync(file)) };
  };
  const ort = await ortOptimized('extended');
  const ortAll = await ortOptimized('all');
  const files: Record<Variant, Uint8Array> = { original, ours, ort: ort.bytes, 'ort-all': ortAll.bytes };
  log(`${spec.name}: optimized (ours ${oursMs.toFixed(0)} ms, ORT ${ort.ms.toFixed(0)} ms); timing session creation`);

  const tensors = spec.feeds();
  const feeds = feedsFor(nodeOrt, tensors);
  const create = await createTimes(files);

  log(`${spec.name}: timing ${RUN_ROUNDS} rounds of inference`);
  const sessions = new Map<string, ModelSession>();
  try {
    for (const level of LEVELS) {
      for (const v of VARIANTS) sessions.set(`${v}/${level}`, await ModelSession.create(nodeOrt, files[v], { threads: THREADS, graphOptimization: level }));
    }
    const { samples: runs, cpu, repeats: runsPerSample } = await latencies(sessions, feeds);
    const reference = await (sessions.get('original/basic') as ModelSession).run(feeds);
    const webReference = await webRun(web, original, tensors);
    const variants = {} as Record<Variant, VariantResult>;
    for (const v of VARIANTS) {
      const out = await (sessions.get(`${v}/basic`) as ModelSession).run(feeds);
      variants[v] = {
        nodes: totalNodes(readModel(files[v]).graph),
        bytes: files[v].byteLength,
        nonStandardOps: nonStandardOps(files[v]),
        create: { basic: timing(create.get(`${v}/basic`) ?? []), all: timing(create.get(`${v}/all`) ?? []) } as Record<GraphOptimization, Timing>,
        latency: { basic: timing(runs.get(`${v}/basic`) ?? []), all: timing(runs.get(`${v}/all`) ?? []) } as Record<GraphOptimization, Timing>,
        cpu: { basic: timing(cpu.get(`${v}/basic`) ?? []), all: timing(cpu.get(`${v}/all`) ?? []) } as Record<GraphOptimization, Timing>,
        fidelity: fidelity(reference, out),
        web: webReference instanceof Error ? { runs: false, error: 'original fails in onnxruntime-web' } : await webCheck(web, files[v], tensors, webReference),
      };
    }
    const ratios = (v: Variant): Ratios => {
      const a = variants[v];
      const o = variants.original;
      const per = (pick: (r: VariantResult) => Record<GraphOptimization, Timing>) =>
        Object.fromEntries(LEVELS.map((level) => [level, round(pick(a)[level].medianMs / pick(o)[level].medianMs)]));
      return { nodes: round(a.nodes / o.nodes), bytes: round(a.bytes / o.bytes), create: per((r) => r.create), latency: per((r) => r.latency), cpu: per((r) => r.cpu) };
    };
    return {
      model: spec.name,
      file: spec.file,
      inputs: Object.fromEntries(tensors.map((t) => [t.name, [...t.dims]])),
      runsPerSample,
      optimizeMs: { ours: round(oursMs), ort: round(ort.ms), 'ort-all': round(ortAll.ms) },
      variants,
      ratios: { ours: ratios('ours'), ort: ratios('ort'), 'ort-all': ratios('ort-all') },
    };
  } finally {
    for (const session of sessions.values()) await session.release();
  }
}

async function webRun(web: OrtModule, bytes: Uint8Array, tensors: Tensor[]): Promise<Record<string, OrtTensor> | Error> {
  let session: ModelSession | undefined;
  try {
    session = await ModelSession.create(web, bytes, { executionProviders: WASM_EXECUTION_PROVIDERS });
    return await session.run(feedsFor(web, tensors));
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  } finally {
    await session?.release();
  }
}

function markdown(results: ModelResult[], machine: Record<string, unknown>): string {
  const ms = (t: Timing) => t.medianMs.toPrecision(3);
  const kb = (n: number) => (n / 1024).toFixed(0);
  const sci = (x: number) => (x === 0 ? '0' : x.toExponential(1));
  const webCell = (v: VariantResult) => (v.web.runs ? `yes (${sci(v.web.fidelity?.maxAbs ?? 0)})` : `**no**: ${v.web.error}`);
  const lines = [
    '# shrink optimize vs onnxruntime\'s offline optimizer',
    '',
    `One run. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime}, ` +
      `onnxruntime-web ${machine.onnxruntimeWeb} (wasm, 1 thread), ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      `Sessions use ${THREADS} intra-op thread; session creation is the median of ${CREATE_REPEATS}, latency the median of ${RUN_ROUNDS} samples ` +
      `(after ${RUN_WARMUP} warm-up runs; a sample averages back-to-back runs over at least ${SAMPLE_MS} ms: ` +
      `${results.map((r) => `${r.model} ${r.runsPerSample}`).join(', ')} runs), all sessions of a model timed in interleaved rounds.`,
    '',
    '**original**: the published file. **ours**: `optimizeModel(level full)`. **ort**: onnxruntime-node\'s own optimized model ' +
      '(session at `extended` with `optimizedModelFilePath`). **ort-all**: the same at `all` (adds layout transforms for this CPU). ' +
      'Each file is then loaded at `basic` and at `all`. Ratios are to the original (below 1: smaller or faster).',
    '',
    '## Size and speed',
    '',
    '| model | variant | nodes | KiB | create basic (ms) | create all (ms) | latency basic (ms) | latency all (ms) | CPU basic (ms) | CPU all (ms) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    for (const v of VARIANTS) {
      const x = r.variants[v];
      lines.push(`| ${r.model} | ${v} | ${x.nodes} | ${kb(x.bytes)} | ${ms(x.create.basic)} | ${ms(x.create.all)} | ${ms(x.latency.basic)} | ${ms(x.latency.all)} | ${ms(x.cpu.basic)} | ${ms(x.cpu.all)} |`);
    }
  }
  lines.push(
    '',
    '## Ratios to the original',
    '',
    '| model | variant | nodes | size | create basic | create all | latency basic | latency all | CPU basic | CPU all |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results) {
    for (const v of CANDIDATES) {
      const q = r.ratios[v];
      lines.push(`| ${r.model} | ${v} | ${q.nodes} | ${q.bytes} | ${q.create.basic} | ${q.create.all} | ${q.latency.basic} | ${q.latency.all} | ${q.cpu.basic} | ${q.cpu.all} |`);
    }
  }
  lines.push(
    '',
    '## Fidelity and portability',
    '',
    'max abs / cosine: worst output against the original, both in onnxruntime-node at `basic`. onnxruntime-web: whether the file loads and',
    'runs under the wasm backend (in brackets: max abs against the original run there). Ops outside ai.onnx are what can tie a file to one runtime.',
    '',
    '| model | variant | max abs | cosine | onnxruntime-web | ops outside ai.onnx |',
    '|---|---|---:|---:|---|---|',
  );
  for (const r of results) {
    for (const v of CANDIDATES) {
      const x = r.variants[v];
      const ops = Object.entries(x.nonStandardOps).map(([op, n]) => `${op} ${n}`).join(', ') || '-';
      lines.push(`| ${r.model} | ${v} | ${sci(x.fidelity.maxAbs)} | ${x.fidelity.cosine.toFixed(9)} | ${webCell(x)} | ${ops} |`);
    }
  }
  // Noise: the relative interquartile range of the original's samples. A ratio above 1 but within
  // it is reported as a tie, since a rerun on a shared machine flips such differences either way.
  const verdict = (r: ModelResult) =>
    LEVELS.map((level) => {
      const ratio = r.ratios.ours.latency[level];
      const noise = relativeIqr(r.variants.original.latency[level].samplesMs);
      const word = ratio <= 1 ? 'yes' : ratio <= 1 + noise ? `tie (within the ±${(noise * 100).toFixed(0)}% noise)` : '**no**';
      const cpuRatio = r.ratios.ours.cpu[level];
      return `${level} ${word} (${ratio}; CPU time ${cpuRatio <= 1 ? 'yes' : '**no**'}, ${cpuRatio})`;
    }).join(', ');
  lines.push(
    '',
    '## Verdict',
    '',
    'Ours at least as fast as the original (latency ratio <= 1): ' + results.map((r) => `${r.model}: ${verdict(r)}`).join('; ') + '.',
    '',
    'Runs in onnxruntime-web: ' +
      CANDIDATES.map((v) => `${v} ${results.filter((r) => r.variants[v].web.runs).length} of ${results.length}`).join(', ') +
      '.',
    '',
    `Time to optimize: ${results.map((r) => `${r.model} ours ${r.optimizeMs.ours} ms, ORT ${r.optimizeMs.ort} ms`).join('; ')}.`,
    '',
  );
  return lines.join('\n');
}

export const optimizeBench: Bench = {
  name: 'optimize',
  async run(log): Promise<BenchOutput> {
    const machine = { ...machineInfo({ web: true }), threads: THREADS };
    const web = await loadWebOrt();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bench-optimize-'));
    const results: ModelResult[] = [];
    try {
      for (const spec of MODELS) results.push(await measureModel(spec, web, scratch, log));
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    return { json: { machine, results }, markdown: markdown(results, machine) };
  },
};
