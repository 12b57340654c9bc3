// `shrink bench MODEL...`: load time, latency percentiles, throughput, peak memory and file size
// of one or more models, timed side by side in one process and reported as ratios to the first.
// Inputs are generated from each model's declared inputs (symbolic dims from --dims/--batch);
// memory comes from a child process per model (src/node/memory.ts). onnxruntime-node loads each
// model from its path (external data beside it, so models over 2 GiB work); --backend wasm hands
// onnxruntime-web the bytes. --compare also measures every model's outputs against the first's
// (fidelity, accuracy with --labels), so the report can chart quality against size and latency.
// --report writes the same figures as a self-contained HTML page with charts; --json prints them
// in the common report envelope.
import type { Command } from 'commander';
import { type BenchReport, benchmarkModels, withMemory, BENCH_DEFAULTS } from '../eval/benchmark.js';
import { formatBenchReport, displayNames } from '../eval/bench-format.js';
import { compareModels } from '../eval/compare.js';
import { type EvalReport, numberFromJson } from '../eval/eval-report.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { renderTable } from '../inspect/table.js';
import { type BenchModelFile, readBenchModel } from '../node/bench-model-file.js';
import { nodeEnvironment } from '../node/environment.js';
import { measureMemory } from '../node/memory.js';
import { nodeOrt } from '../node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../node/ort-web.js';
import { reportModelOf, writeReportFile } from '../node/report-assets.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { inFile, UsageError } from './errors.js';
import type { CliContext } from './main.js';
import { checkOutput } from './output-checks.js';
import { readLabelsFile } from './input-files.js';
import { parseDims, wholeNumber } from './options.js';
import { openCommandSamples } from './sample-options.js';
import { cliRecipeContext } from './recipe-context.js';

interface BenchFlags {
  runs: string;
  warmup: string;
  threads: string;
  batch: string;
  backend: string;
  dims?: string;
  json?: boolean;
  report?: string;
  memory: boolean;
  compare?: boolean;
  data?: string;
  labels?: string;
}

/** What `shrink bench --json` prints; `input` names the models in order: model_1 (the reference), model_2, ... */
export type BenchCommandReport = ReportEnvelope & BenchReport & { comparisons?: { model: string; report: EvalReport }[] };

const BACKENDS = ['node', 'wasm'] as const;
type Backend = (typeof BACKENDS)[number];

export function registerBench(program: Command, { io }: CliContext): void {
  program
    .command('bench')
    .description('time models side by side (interleaved runs): load time, latency median/p90/p99, throughput, peak memory, size, ratios to the first model')
    .argument('<model...>', 'ONNX files; the first is the reference for ratios')
    .option('--runs <n>', 'timed runs per model', String(BENCH_DEFAULTS.runs))
    .option('--warmup <n>', 'untimed runs per model before timing', String(BENCH_DEFAULTS.warmup))
    .option('--threads <n>', 'intra-op threads (0: onnxruntime default)', String(BENCH_DEFAULTS.threads))
    .option('--batch <n>', 'size of a symbolic leading (batch) dim', String(BENCH_DEFAULTS.batch))
    .option('--backend <name>', 'node (onnxruntime-node) or wasm (onnxruntime-web, 1 thread)', 'node')
    .option('--dims <list>', 'sizes of symbolic dims: name=value,... (a name, or input[axis]); others default to 320')
    .option('--no-memory', 'skip the peak-memory measurement (one child process per model)')
    .option('--json', 'print one JSON object instead of tables')
    .option('--report <file>', 'also write a self-contained HTML report with charts')
    .option('--compare', 'also compare every model with the first on --data (default: 4 generated inputs): output fidelity, accuracy with --labels; charted against size and latency in --report')
    .option('--data <path>', 'with --compare: samples (an ONNX test-data folder, .npy, .npz or .json)')
    .option('--labels <file>', 'with --compare and --data: class ids of the samples (adds accuracy)')
    .action(async (files: string[], flags: BenchFlags, command: Command) => {
      const runs = wholeNumber(flags.runs, '--runs', 1);
      const warmup = wholeNumber(flags.warmup, '--warmup', 0);
      const threads = wholeNumber(flags.threads, '--threads', 0);
      const batch = wholeNumber(flags.batch, '--batch', 1);
      const backend = parseBackend(flags.backend);
      const dims = parseDims(flags.dims);
      // Before any model is read: an hour-long benchmark must not end on a missing folder.
      if (flags.report !== undefined) checkOutput({ output: flags.report, flag: '--report', inputs: [...files, flags.data, flags.labels], models: files });
      if (!flags.compare && (flags.data !== undefined || flags.labels !== undefined)) throw new UsageError(`${flags.data !== undefined ? '--data' : '--labels'} goes with --compare`);
      if (flags.labels !== undefined && flags.data === undefined) throw new UsageError('--labels go with --data (the samples they label)');
      if (flags.compare && files.length < 2) throw new UsageError('--compare needs at least two models (each is compared with the first)');
      const { progress, debug } = cliRecipeContext(command, io);

      const models = files.map((file) => {
        try {
          return readBenchModel(file, backend);
        } catch (error) {
          throw inFile(file, error);
        }
      });
      const ort = backend === 'wasm' ? await loadWebOrt() : nodeOrt;
      let report = await benchmarkModels(ort, models, {
        runs,
        warmup,
        threads,
        batch,
        dims,
        backend: backend === 'wasm' ? 'onnxruntime-web (wasm, 1 thread)' : 'onnxruntime-node',
        executionProviders: backend === 'wasm' ? WASM_EXECUTION_PROVIDERS : undefined,
        progress,
        debug,
      });
      if (flags.memory) {
        report = withMemory(report, await measureMemory(files, { backend, threads, batch, dims, progress, debug }));
      }

      const names = displayNames(files);
      const comparisons = flags.compare ? await compareWithFirst(ort, models, names, flags, threads) : undefined;
      if (flags.report !== undefined) {
        const reportModels = models.map((m, i) => reportModelOf(m.model, names[i]!, m.size));
        const titled = { ...report, models: report.models.map((m, i) => ({ ...m, name: names[i]! })) };
        writeReportFile(flags.report, { title: `shrink bench: ${names.join(' vs ')}`, models: reportModels, bench: titled, evals: comparisons });
      }
      if (flags.json) {
        const json: BenchCommandReport = envelope(
          { command: 'bench', input: Object.fromEntries(files.map((file, i) => [`model_${i + 1}`, file])), output: flags.report ?? null, warnings: report.warnings },
          comparisons === undefined ? report : { ...report, comparisons },
          nodeEnvironment(),
        );
        for (const warning of json.warnings) io.stderr(`shrink: warning: ${warning.message}\n`);
        io.stdout(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        io.stdout(formatBenchReport(report));
        if (comparisons !== undefined) io.stdout(formatComparisons(comparisons, names[0]!));
        if (flags.report !== undefined) io.stdout(`report written to ${flags.report}\n`);
      }
    });
}

/** Every model after the first against the first, on --data or generated inputs (the bench's dims). */
async function compareWithFirst(
  ort: OrtModule,
  models: readonly BenchModelFile[],
  names: readonly string[],
  flags: BenchFlags,
  threads: number,
): Promise<{ model: string; report: EvalReport }[]> {
  const reference = models[0]!.model;
  const labels = flags.labels === undefined ? undefined : readLabelsFile(flags.labels);
  const samples = await openCommandSamples(reference, { data: flags.data, dims: flags.dims }, undefined);
  try {
    const comparisons: { model: string; report: EvalReport }[] = [];
    for (const [i, m] of models.entries()) {
      if (i === 0) continue;
      const report = await compareModels(ort, reference, m.model, samples, { threads: threads === 0 ? undefined : threads, labels, names: { original: names[0], candidate: names[i] } });
      comparisons.push({ model: names[i]!, report });
    }
    return comparisons;
  } finally {
    await samples.close?.();
  }
}

function formatComparisons(comparisons: readonly { model: string; report: EvalReport }[], reference: string): string {
  const worst = (values: number[]) => Math.min(...values);
  const rows = comparisons.map(({ model, report }) => {
    const outputs = Object.values(report.outputs);
    const top1 = outputs.find((o) => o.top1_agreement !== undefined)?.top1_agreement;
    const sqnr = worst(outputs.map((o) => numberFromJson(o.sqnr_db)));
    return [
      model,
      worst(outputs.map((o) => numberFromJson(o.cosine))).toFixed(6),
      Number.isFinite(sqnr) ? sqnr.toFixed(2) : String(sqnr),
      top1 === undefined ? '' : `${(top1 * 100).toFixed(2)}%`,
      report.accuracy === undefined ? '' : `${(report.accuracy.candidate * 100).toFixed(2)}% (${(report.accuracy.original * 100).toFixed(2)}%)`,
    ];
  });
  const first = comparisons[0]!.report;
  return `\nagainst ${reference} on ${first.samples} samples (${first.data}):\n${renderTable(
    [{ header: 'model' }, { header: 'cosine', align: 'right' }, { header: 'SQNR dB', align: 'right' }, { header: 'top-1', align: 'right' }, { header: 'accuracy (first)', align: 'right' }],
    rows,
  ).join('\n')}\n`;
}

function parseBackend(text: string): Backend {
  if ((BACKENDS as readonly string[]).includes(text)) return text as Backend;
  throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, got '${text}'`);
}
