// Time per training step, shrink against PyTorch at its best, at 1 and 2 threads, in one run:
// the MLP 784-300-100-10 and the Fashion-MNIST CNN, batch 64, SGD with momentum, the same initial
// weights and batches on both sides. Every side runs in a process of its own (peak resident memory
// is each training's alone) that steps on request; the benchmark hands out blocks of steps to the
// processes in turn, so load on a shared machine falls on all of them alike.
//
// PyTorch's best configuration per thread budget: each candidate (the BLAS library, as Debian's
// python3-torch links the system libblas.so.3 and OpenBLAS is much faster than the reference BLAS;
// torch.set_num_threads; the OpenMP/OpenBLAS/MKL thread variables) runs in its own process,
// interleaved with the others and with shrink, and the fastest median counts. shrink runs onnxruntime-node with
// `threads` intra-op threads (sequential execution, graph optimization 'basic'), 8 steps per run as
// Trainer.fit runs them; with 2 threads, idle threads spinning (onnxruntime's default) and sleeping
// are both tried the same way.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { writeNpz } from '../src/eval/npz.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../src/node/image-datasets.js';
import { saveModel } from '../src/node/model-files.js';
import { cnnModel, mlpModel } from '../src/train/init-models.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const PYTHON = '/usr/bin/python3';
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = 100;
const REFERENCE = path.join(import.meta.dirname, 'torch', 'train_reference.py');
const CHILD = path.join(import.meta.dirname, 'lib', 'train-speed-child.ts');
const BATCH = 64;
/** Samples both sides cycle over (8 batches of Fashion-MNIST test images). */
const SAMPLES = BATCH * 8;
const ROUNDS = 10;
/** Steps shrink runs per onnxruntime run (Trainer.steps, as Trainer.fit runs them). */
const PER_RUN = 8;
/**
 * Steps per block, a multiple of PER_RUN. Both sides time PER_RUN steps together (shrink's run,
 * PyTorch's group of steps), so preemption on a loaded machine falls alike on both; the first time
 * of each block is a warm-up and is not counted.
 */
const BLOCK = { mlp: 32, cnn: 16 } as const;

type ModelName = keyof typeof BLOCK;

/** Debian's OpenBLAS (libopenblas0-pthread): a process picks it over the system BLAS by LD_LIBRARY_PATH. */
const OPENBLAS_DIR = '/usr/lib/x86_64-linux-gnu/openblas-pthread';
/** The BLAS Debian's python3-torch links (libblas.so.3), as the alternatives system resolves it. */
const SYSTEM_BLAS = '/etc/alternatives/libblas.so.3-x86_64-linux-gnu';

/** One PyTorch configuration: its thread setting and the environment its process starts with. */
interface TorchConfig {
  threads: number;
  blas: string;
  env: Record<string, string>;
}

/** The BLAS libraries PyTorch can run with here: the system's, and OpenBLAS where it is another. */
function blasChoices(): { name: string; env: Record<string, string> }[] {
  const system = fs.existsSync(SYSTEM_BLAS) ? fs.realpathSync(SYSTEM_BLAS) : 'libblas.so.3';
  const choices = [{ name: system.includes('openblas') ? 'OpenBLAS (system libblas.so.3)' : `system libblas.so.3 (${system})`, env: {} as Record<string, string> }];
  if (!system.includes('openblas') && fs.existsSync(path.join(OPENBLAS_DIR, 'libblas.so.3'))) {
    choices.push({ name: 'OpenBLAS', env: { LD_LIBRARY_PATH: [OPENBLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') } });
  }
  return choices;
}

/**
 * Every configuration that uses at most `budget` threads in all (intra-op and BLAS together). The
 * reference BLAS is single-threaded, so it gets one configuration per budget; OpenBLAS gets each
 * split of the threads between PyTorch's own kernels and the BLAS.
 */
function torchConfigs(budget: number): TorchConfig[] {
  const configs: TorchConfig[] = [];
  for (const blas of blasChoices()) {
    const pinned = (threads: number, blasThreads: number) => ({
      threads,
      blas: blas.name,
      env: { ...blas.env, OMP_NUM_THREADS: `${threads}`, OPENBLAS_NUM_THREADS: `${blasThreads}`, MKL_NUM_THREADS: `${blasThreads}` },
    });
    if (budget === 1 || !blas.name.includes('OpenBLAS')) configs.push(pinned(budget, 1));
    else configs.push(pinned(budget, 1), pinned(budget, budget), pinned(1, budget));
  }
  return configs;
}

function describeTorch(c: TorchConfig): string {
  return `${c.blas}, torch.set_num_threads(${c.threads}), OMP_NUM_THREADS=${c.env.OMP_NUM_THREADS}, OPENBLAS_NUM_THREADS=${c.env.OPENBLAS_NUM_THREADS}, MKL_NUM_THREADS=${c.env.MKL_NUM_THREADS}`;
}

/** A child process that answers each request line with one JSON line. */
class Stepper {
  private readonly lines: AsyncIterator<string>;
  private constructor(
    readonly label: string,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly stderr: string[],
  ) {
    this.lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  static start(label: string, command: string, args: string[], env: Record<string, string>): Stepper {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
    return new Stepper(label, child, stderr);
  }

  async request(line: string): Promise<Record<string, unknown>> {
    if (line !== '') this.child.stdin.write(`${line}\n`);
    const next = await this.lines.next();
    if (next.done === true) throw new Error(`bench train-speed: ${this.label} ended: ${this.stderr.join('').trim().split('\n').slice(-3).join(' | ')}`);
    return JSON.parse(next.value) as Record<string, unknown>;
  }

  /** CPU time the process has used so far (user + system, ms), from /proc; undefined where there is none. */
  cpuMs(): number | undefined {
    const file = `/proc/${this.child.pid}/stat`;
    if (!fs.existsSync(file)) return undefined;
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const fields = fs.readFileSync(file, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  }

  async close(): Promise<void> {
    this.child.stdin.end('quit\n');
    await new Promise((resolve) => this.child.once('close', resolve));
  }
}

const f32 = (data: Float32Array, dims: number[]) => ({ dataType: DataType.FLOAT, dims, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
const i64 = (values: ArrayLike<number>, dims: number[]) => {
  const data = BigInt64Array.from(Array.from(values, BigInt));
  return { dataType: DataType.INT64, dims, data: new Uint8Array(data.buffer) };
};

/** The model's weights in graph order as w0, w1, ... (PyTorch's parameter order for these models). */
function weightArrays(model: Model): Parameters<typeof writeNpz>[0] {
  const out: Parameters<typeof writeNpz>[0] = {};
  model.graph.initializers.filter((t) => !/running_(mean|var)$/.test(t.name)).forEach((t, i) => {
    out[`w${i}`] = f32(t.data() as Float32Array, [...t.dims]);
  });
  return out;
}

/** Writes the model and the setup both sides read; returns their paths. */
export function prepare(dir: string, name: ModelName): { model: string; setup: string } {
  const model = name === 'cnn' ? cnnModel({ classes: 10, seed: 5 }) : mlpModel({ imageDims: [1, 28, 28], hidden: [300, 100], classes: 10, seed: 11 });
  const fashion = readIdxImageSet(FASHION_MNIST_DIR, 't10k');
  const images = Float32Array.from(fashion.images.subarray(0, SAMPLES * 784), (v) => v / 255);
  const files = { model: path.join(dir, `${name}.onnx`), setup: path.join(dir, `${name}.npz`) };
  saveModel(model, files.model);
  const shape: Parameters<typeof writeNpz>[0] = name === 'cnn' ? { cnn: i64([32, 64, 128, 10], [4]) } : { sizes: i64([784, 300, 100, 10], [4]) };
  fs.writeFileSync(files.setup, writeNpz({ ...weightArrays(model), ...shape, train_x: f32(images, [SAMPLES, 1, 28, 28]), train_y: i64(fashion.labels.subarray(0, SAMPLES), [SAMPLES]) }));
  return files;
}

interface SideResult {
  label: string;
  median_ms: number;
  /**
   * CPU time per step (all the process's threads), median over blocks, warm-up block included. At
   * 1 thread it stands in for the wall time of a quiet machine when the machine is loaded.
   */
  cpu_ms: number | null;
  steps: number;
  peak_rss_mib: number;
}

/** Interleaves blocks of steps over the processes; returns each one's median and memory. */
async function interleave(steppers: Stepper[], block: number, log: (l: string) => void): Promise<SideResult[]> {
  await Promise.all(steppers.map((s) => s.request('')));
  const times = steppers.map(() => [] as number[]);
  const cpu = steppers.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, s] of steppers.entries()) {
      const before = s.cpuMs();
      const answer = await s.request(`steps ${block}`);
      const after = s.cpuMs();
      times[i].push(...(answer.ms as number[]).slice(1));
      if (before !== undefined && after !== undefined) cpu[i].push((after - before) / block);
    }
    log(`  round ${round + 1}/${ROUNDS}: ${steppers.map((s, i) => `${s.label} ${round2(median(times[i]))} ms`).join(', ')}`);
  }
  const results: SideResult[] = [];
  for (const [i, s] of steppers.entries()) {
    const memory = await s.request('memory');
    results.push({ label: s.label, median_ms: round(median(times[i])), cpu_ms: cpu[i].length === 0 ? null : round(median(cpu[i])), steps: times[i].length, peak_rss_mib: round(memory.peak_rss_mib as number) });
  }
  return results;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** shrink's configurations for a thread budget: with 2 threads, onnxruntime's idle threads spinning (its default) or sleeping. */
function shrinkConfigs(threads: number): { spinning?: boolean; settings: string }[] {
  const base = `onnxruntime-node intraOpNumThreads ${threads}, sequential execution, graph optimization basic, ${PER_RUN} steps per run (Trainer.steps)`;
  if (threads === 1) return [{ settings: base }];
  return [
    { spinning: true, settings: `${base}, idle threads spin` },
    { spinning: false, settings: `${base}, idle threads sleep (spinning: false)` },
  ];
}

async function measure(dir: string, name: ModelName, threads: number, log: (l: string) => void) {
  const files = prepare(dir, name);
  const configs = torchConfigs(threads);
  const ours = shrinkConfigs(threads);
  log(`${name}, ${threads} thread(s): ${ours.length} shrink and ${configs.length} PyTorch configurations`);
  const shrink = ours.map((c, i) =>
    Stepper.start(`shrink#${i}`, process.execPath, ['--import', import.meta.resolve('tsx'), CHILD, files.model, files.setup, `${threads}`, `${BATCH}`, `${PER_RUN}`, ...(c.spinning === undefined ? [] : [c.spinning ? 'on' : 'off'])], {}),
  );
  const torch = configs.map((c, i) =>
    Stepper.start(`torch#${i}`, PYTHON, [REFERENCE, 'serve', files.setup, '--model', name, '--threads', `${c.threads}`, '--batch', `${BATCH}`, '--group', `${PER_RUN}`], c.env),
  );
  const all = [...shrink, ...torch];
  try {
    const results = await interleave(all, BLOCK[name], log);
    const fastest = <T extends { median_ms: number }>(list: T[]) => list.reduce((a, b) => (b.median_ms < a.median_ms ? b : a));
    const shrinkCandidates = results.slice(0, shrink.length).map((r, i) => ({ ...r, config: ours[i].settings }));
    const torchCandidates = results.slice(shrink.length).map((r, i) => ({ ...r, config: describeTorch(configs[i]) }));
    const [mine, best] = [fastest(shrinkCandidates), fastest(torchCandidates)];
    return {
      model: name,
      threads,
      shrink: { median_ms: mine.median_ms, cpu_ms: mine.cpu_ms, steps: mine.steps, peak_rss_mib: mine.peak_rss_mib, settings: mine.config },
      pytorch_best: { median_ms: best.median_ms, cpu_ms: best.cpu_ms, steps: best.steps, peak_rss_mib: best.peak_rss_mib, settings: best.config },
      time_ratio: round(mine.median_ms / best.median_ms),
      cpu_ratio: mine.cpu_ms === null || best.cpu_ms === null ? null : round(mine.cpu_ms / best.cpu_ms),
      memory_ratio: round(mine.peak_rss_mib / best.peak_rss_mib),
      shrink_candidates: shrinkCandidates.map((c) => ({ settings: c.config, median_ms: c.median_ms, cpu_ms: c.cpu_ms, peak_rss_mib: c.peak_rss_mib })),
      pytorch_candidates: torchCandidates.map((c) => ({ settings: c.config, median_ms: c.median_ms, cpu_ms: c.cpu_ms, peak_rss_mib: c.peak_rss_mib })),
    };
  } finally {
    await Promise.all(all.map((s) => s.close().catch(() => undefined)));
  }
}

/** The speed rows alone, so a quiet-machine rerun takes minutes (`npm run bench -- train-speed`). */
export async function trainSpeed(log: (l: string) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-train-speed-'));
  try {
    const machine = machineInfo();
    const rows = [];
    // TRAIN_SPEED_MODELS=cnn / TRAIN_SPEED_THREADS=2 narrow a run (the committed result has all four rows).
    const models = (process.env.TRAIN_SPEED_MODELS ?? 'mlp,cnn').split(',').filter((m): m is ModelName => m === 'mlp' || m === 'cnn');
    const budgets = (process.env.TRAIN_SPEED_THREADS ?? '1,2').split(',').map(Number);
    for (const name of models) for (const threads of budgets) rows.push(await measure(dir, name, threads, log));
    return { machine, loadAverageAfter: round(os.loadavg()[0]), batch: BATCH, rounds: ROUNDS, block: BLOCK, perRun: PER_RUN, blas: blasChoices().map((b) => b.name), rows };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function trainSpeedMarkdown(result: Awaited<ReturnType<typeof trainSpeed>>): string {
  const { machine, rows } = result;
  const names = { mlp: 'MLP 784-300-100-10', cnn: 'Fashion-MNIST CNN' };
  return [
    '# Training step: shrink vs PyTorch at its best',
    '',
    `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage} at the start, ${result.loadAverageAfter} at the end.`,
    ...(result.blas.some((b) => b.includes('OpenBLAS')) ? [] : ['**OpenBLAS is not installed: PyTorch ran with the reference BLAS only, far from its best (`apt-get install libopenblas0-pthread`).**', '']),
    `Batch ${result.batch}, SGD momentum 0.9, same initial weights and batches on both sides; ${result.rounds} rounds of interleaved blocks (MLP ${result.block.mlp} steps, CNN ${result.block.cnn}), each side timing ${result.perRun} steps at a time (shrink: one onnxruntime run), the first ${result.perRun} of each block not counted; median ms per step. CPU ms: the process's CPU time per step (all threads, median over blocks): at 1 thread it is what the wall time would be on an idle machine, so read it when the load above is high.`,
    '',
    '| Model | threads | shrink | PyTorch best | shrink / PyTorch | CPU ms shrink / PyTorch (ratio) | peak memory MiB, shrink / PyTorch | shrink configuration | PyTorch configuration |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    ...rows.map((r) => `| ${names[r.model]} | ${r.threads} | ${r.shrink.median_ms} | ${r.pytorch_best.median_ms} | ${r.time_ratio}x | ${r.shrink.cpu_ms} / ${r.pytorch_best.cpu_ms} (${r.cpu_ratio}x) | ${r.shrink.peak_rss_mib} / ${r.pytorch_best.peak_rss_mib} | ${r.shrink.settings} | ${r.pytorch_best.settings} |`),
    '',
    'Every configuration tried (each in its own process, all interleaved), the fastest of each side in the table above:',
    '',
    '| Model | threads | side | configuration | median ms | CPU ms | peak MiB |',
    '| --- | ---: | --- | --- | ---: | ---: | ---: |',
    ...rows.flatMap((r) => [
      ...r.shrink_candidates.map((c) => `| ${names[r.model]} | ${r.threads} | shrink | ${c.settings} | ${c.median_ms} | ${c.cpu_ms} | ${c.peak_rss_mib} |`),
      ...r.pytorch_candidates.map((c) => `| ${names[r.model]} | ${r.threads} | PyTorch | ${c.settings} | ${c.median_ms} | ${c.cpu_ms} | ${c.peak_rss_mib} |`),
    ]),
    '',
  ].join('\n');
}

export const trainSpeedBench: Bench = {
  name: 'train-speed',
  async run(log): Promise<BenchOutput> {
    const json = await trainSpeed(log);
    return { json, markdown: trainSpeedMarkdown(json) };
  },
};
