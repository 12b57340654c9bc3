// Large models through the CLI: generated decoder-like models of about 1, 4 and 20 GB (weights in
// an external data file; bench/lib/decoder-model.ts) through `inspect`, `quantize --method int4`,
// `quantize --method fp16` and `optimize`, each as a user runs it (bin/shrink.js in a child
// process under GNU time). Per run: wall time, CPU time, peak RSS of the whole process tree (the
// load check of a large output runs in a child), peak RSS of the shrink process itself (its
// SHRINK_DEBUG=1 line), output size on disk, and the fidelity shrink measured or why it skipped it.
// The models are generated into bench/work/ (never committed) and removed afterwards.
// `gptq` (not in the default commands) is `quantize --method int4 --algorithm gptq` calibrated on
// CALIBRATION_SEQUENCES generated sequences of CALIBRATION_TOKENS token ids (a seed of its own,
// not the fidelity check's inputs), piece by piece above 512 MiB (methods/prune/segmented-rounds.ts).
// Usage: npm run bench -- large-models            (1, 4 and 20 GB)
//        SHRINK_BENCH_SIZES=1 SHRINK_BENCH_COMMANDS=int4,gptq npm run bench -- large-models
//        SHRINK_BENCH_SIZES=1,4 npm run bench -- large-models
//        SHRINK_BENCH_SIZES=28 SHRINK_BENCH_COMMANDS=inspect,int4 npm run bench -- large-models
// Sizes not run this time keep their rows from the previous results file (each row says when
// and at what load it was taken), so one size can be rerun or added on its own.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decoderBytes, decoderShapeFor, writeDecoderModel } from './lib/decoder-model.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const WORK = path.join(import.meta.dirname, 'work', 'large-models');
const SHRINK = path.join(import.meta.dirname, '..', 'bin', 'shrink.js');
/** Generated inputs for the fidelity checks: one sequence of 8 tokens. */
const DIMS = 'batch=1,sequence=8';
/** GPTQ's calibration: a few sequences, as GPTQ at 7B scale is run with (the paper: 128 x 2048 tokens). */
const CALIBRATION_SEQUENCES = 4;
const CALIBRATION_TOKENS = 128;

/** Token ids for GPTQ's calibration as a JSON samples file beside the model. */
function writeCalibration(file: string, vocabulary: number): string {
  let state = 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const samples = Array.from({ length: CALIBRATION_SEQUENCES }, () => ({ input_ids: { dims: [1, CALIBRATION_TOKENS], data: Array.from({ length: CALIBRATION_TOKENS }, () => Math.floor(next() * vocabulary)) } }));
  fs.writeFileSync(file, JSON.stringify(samples));
  return file;
}

interface RunResult {
  command: string;
  exitCode: number;
  wallSeconds: number;
  cpuSeconds: number;
  /** Peak RSS of the process tree (GNU time: the largest of shrink and its children). */
  peakRssGiB: number;
  /** Peak RSS of the shrink process alone. */
  shrinkRssGiB: number | null;
  outputGiB: number | null;
  /** Lowest output cosine shrink measured, when it measured one. */
  cosine: number | null;
  /** Why fidelity was not measured, when it was not. */
  fidelitySkipped: string | null;
  /** Whether the written output was loaded in onnxruntime before it replaced anything. */
  loadChecked: boolean | null;
  error: string | null;
}

interface SizeResult {
  targetGB: number;
  shape: { hidden: number; layers: number; vocabulary: number };
  modelGiB: number;
  generateSeconds: number;
  runs: RunResult[];
  /** When the size was run, and the load average then (rows of other sizes may be older). */
  date?: string;
  load?: number;
}

function gib(bytes: number): number {
  return Number((bytes / 2 ** 30).toFixed(3));
}

/** Bytes of a file and the data files beside it that start with its name. */
function filesBytes(file: string): number | null {
  if (!fs.existsSync(file)) return null;
  const folder = path.dirname(file);
  const base = path.basename(file);
  return fs
    .readdirSync(folder)
    .filter((f) => f === base || (f.startsWith(`${base}.`) && f.endsWith('.data')))
    .reduce((n, f) => n + fs.statSync(path.join(folder, f)).size, 0);
}

function shrinkRun(args: string[], output: string | null, log: (line: string) => void): RunResult {
  const command = `shrink ${args.map((a) => (a.startsWith(WORK) ? path.relative(WORK, a) : a)).join(' ')}`;
  log(`${command} ...`);
  const timeFile = path.join(WORK, 'time.txt');
  // stderr goes to a file as it comes (a GPTQ run of the 28 GB model prints a line per piece for an hour).
  const stderrFile = path.join(WORK, '..', 'large-models-stderr.log');
  const stderrFd = fs.openSync(stderrFile, 'w');
  const spawned = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, process.execPath, SHRINK, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SHRINK_DEBUG: '1' },
    maxBuffer: 256 * 2 ** 20,
    stdio: ['ignore', 'pipe', stderrFd],
  });
  fs.closeSync(stderrFd);
  const run = { ...spawned, stderr: fs.readFileSync(stderrFile, 'utf8') };
  const [wall, user, system, maxKb] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()?.split(' ').map(Number) ?? [];
  const own = /peak RSS ([\d.]+) MiB/.exec(run.stderr ?? '');
  let cosine: number | null = null;
  let skipped: string | null = null;
  let loadChecked: boolean | null = null;
  if (run.status === 0 && args.includes('--json')) {
    const report = JSON.parse(run.stdout);
    const fidelity = report.fidelity;
    if (fidelity?.outputs !== undefined) cosine = Math.min(...Object.values(fidelity.outputs as Record<string, { cosine: number }>).map((o) => Number(o.cosine)));
    else if (typeof fidelity?.cosine === 'number') cosine = fidelity.cosine;
    skipped = report.fidelity_skipped ?? report.warnings?.find((w: { code: string }) => w.code === 'too-large-to-validate')?.message ?? null;
    if (output !== null) loadChecked = !report.warnings?.some((w: { code: string }) => w.code === 'not-load-checked');
  }
  const result: RunResult = {
    command,
    exitCode: run.status ?? -1,
    wallSeconds: round(wall),
    cpuSeconds: round(user + system),
    peakRssGiB: Number((maxKb / 2 ** 20).toFixed(3)),
    shrinkRssGiB: own === null ? null : Number((Number(own[1]) / 1024).toFixed(3)),
    outputGiB: output === null ? null : (() => {
      const bytes = filesBytes(output);
      return bytes === null ? null : gib(bytes);
    })(),
    cosine: cosine === null ? null : Number(cosine.toFixed(6)),
    fidelitySkipped: skipped,
    loadChecked,
    error: run.status === 0 ? null : (run.stderr ?? '').trim().split('\n').filter((l) => !l.includes('debug:')).pop() ?? 'failed',
  };
  log(`  exit ${result.exitCode}, ${result.wallSeconds} s, CPU ${result.cpuSeconds} s, peak RSS ${result.peakRssGiB} GiB (shrink ${result.shrinkRssGiB}), output ${result.outputGiB} GiB${result.error ? `: ${result.error}` : ''}`);
  return result;
}

async function runLargeModels(log: (line: string) => void): Promise<BenchOutput> {
  const sizes = (process.env.SHRINK_BENCH_SIZES ?? '1,4,20').split(',').map(Number);
  const commands = new Set((process.env.SHRINK_BENCH_COMMANDS ?? 'inspect,int4,fp16,optimize').split(','));
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  const results: SizeResult[] = [];
  try {
    for (const targetGB of sizes) {
      const shape = decoderShapeFor(targetGB * 1e9);
      const started = performance.now();
      const model = writeDecoderModel(WORK, `decoder-${targetGB}gb.onnx`, shape);
      const generateSeconds = round((performance.now() - started) / 1000);
      log(`${targetGB} GB: generated ${gib(decoderBytes(shape))} GiB (D ${shape.hidden}, ${shape.layers} layers, vocabulary ${shape.vocabulary}) in ${generateSeconds} s`);
      const runs: RunResult[] = [];
      if (commands.has('inspect')) runs.push(shrinkRun(['inspect', model, '--json'], null, log));
      for (const method of ['int4', 'fp16'].filter((m) => commands.has(m))) {
        const output = path.join(WORK, `out-${method}.onnx`);
        runs.push(shrinkRun(['quantize', model, '-o', output, '--method', method, '--dims', DIMS, '--samples', '2', '--no-progress', '--json'], output, log));
        fs.rmSync(output, { force: true });
        for (const f of fs.readdirSync(WORK)) if (f.startsWith(`out-${method}.onnx`)) fs.rmSync(path.join(WORK, f), { force: true });
      }
      if (commands.has('gptq')) {
        const output = path.join(WORK, 'out-gptq.onnx');
        const calibration = writeCalibration(path.join(WORK, 'calibration.json'), shape.vocabulary);
        runs.push(shrinkRun(['quantize', model, '-o', output, '--method', 'int4', '--algorithm', 'gptq', '--calib', calibration, '--calib-samples', String(CALIBRATION_SEQUENCES), '--dims', DIMS, '--samples', '2', '--no-progress', '--json'], output, log));
        for (const f of fs.readdirSync(WORK)) if (f.startsWith('out-gptq.onnx')) fs.rmSync(path.join(WORK, f), { force: true });
      }
      const optimized = path.join(WORK, 'out-optimized.onnx');
      if (commands.has('optimize')) runs.push(shrinkRun(['optimize', model, '-o', optimized, '--dims', DIMS, '--samples', '2', '--no-progress', '--json'], optimized, log));
      for (const f of fs.readdirSync(WORK)) if (f.startsWith('out-') || f.startsWith('decoder-')) fs.rmSync(path.join(WORK, f), { force: true });
      results.push({ targetGB, shape, modelGiB: gib(decoderBytes(shape)), generateSeconds, runs, date: new Date().toISOString().slice(0, 10), load: Number(os.loadavg()[0].toFixed(2)) });
    }
  } finally {
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  const machine = machineInfo();
  for (const earlier of previousResults()) {
    const now = results.find((r) => r.targetGB === earlier.targetGB);
    if (now === undefined) results.push(earlier);
    // Commands not run this time keep their earlier rows (each row's own date/load is on its size).
    else now.runs.unshift(...earlier.runs.filter((run) => !commands.has(commandKind(run.command))));
  }
  results.sort((a, b) => a.targetGB - b.targetGB);
  const json = { machine, memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)), dims: DIMS, results };
  return { json, markdown: markdown(results, machine) };
}

/** Which of SHRINK_BENCH_COMMANDS a row's command is. */
function commandKind(command: string): string {
  if (command.includes('--algorithm gptq')) return 'gptq';
  const method = /--method (\S+)/.exec(command);
  return method !== null ? method[1] : command.split(' ')[1];
}

/** The sizes of the last committed run (bench/results/large-models.json), if there is one. */
function previousResults(): SizeResult[] {
  const file = path.join(import.meta.dirname, 'results', 'large-models.json');
  if (!fs.existsSync(file)) return [];
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { results?: SizeResult[] }).results ?? [];
}

function markdown(results: SizeResult[], machine: ReturnType<typeof machineInfo>): string {
  const lines = [
    '# Large models',
    '',
    `Generated decoder-like models (weights in external data) through the CLI; ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, ${machine.date}.`,
    'Peak RSS "tree" is the largest process of the run (a large output is load-checked in a child process); "shrink" is the shrink process alone.',
    `When each size ran: ${results.map((r) => `${r.modelGiB} GiB ${r.date ?? 'earlier'}${r.load === undefined ? '' : `, load ${r.load}`}`).join('; ')} (2 cores: above 2 other work shared them).`,
    '',
    '| model | command | exit | wall s | CPU s | peak RSS tree GiB | peak RSS shrink GiB | output GiB | load-checked | fidelity |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const size of results) {
    for (const run of size.runs) {
      const fidelity = run.cosine !== null ? `cosine ${run.cosine}` : run.fidelitySkipped !== null ? `skipped: ${run.fidelitySkipped}` : run.error ?? '';
      lines.push(
        `| ${size.modelGiB} GiB (${size.shape.layers} layers, D ${size.shape.hidden}) | \`${run.command.replace(/ --json$/, '')}\` | ${run.exitCode} | ${run.wallSeconds} | ${run.cpuSeconds} | ${run.peakRssGiB} | ${run.shrinkRssGiB ?? ''} | ${run.outputGiB ?? ''} | ${run.loadChecked === null ? '' : run.loadChecked ? 'yes' : 'no (too large)'} | ${fidelity} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export const largeModelsBench: Bench = { name: 'large-models', run: runLargeModels };
