// `shrink eval ORIGINAL CANDIDATE`: how far a candidate model's outputs are from the original's
// on the same samples (real data from --data, or generated inputs with a warning), accuracy of
// both against --labels, and with --per-layer the layers ranked by the error they add. Prints
// tables, or with --json the EvalReport object (src/eval/eval-report.ts) as is.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { env as ortEnv } from 'onnxruntime-node';
import { compareModels } from '../eval/compare.js';
import type { EvalReport, JsonNumber, LayerReport, OutputReport } from '../eval/eval-report.js';
import { type Labels, parseLabels } from '../eval/labels.js';
import { renderTable, groupDigits } from '../inspect/table.js';
import { loadCustomMetric } from '../node/custom-metric.js';
import { nodeOrt } from '../node/ort-node.js';
import { lineProgress, terminalProgress } from '../node/progress.js';
import type { Progress } from '../pipeline/progress.js';
import { UsageError, inFile } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { openCommandSamples } from './sample-options.js';
import { writeEvalReportFile } from '../node/report-assets.js';
import { wholeNumber } from './options.js';

interface EvalFlags {
  data?: string;
  labels?: string;
  labelOutput?: string;
  perLayer?: boolean;
  top: string;
  json?: boolean;
  report?: string;
  samples?: string;
  seed?: string;
  dims?: string;
  range?: string;
  metric?: string;
  batch: string;
  threads?: string;
}

/** Progress appears only for runs longer than this: short runs stay quiet, and errors stay one line. */
const PROGRESS_DELAY_MS = 2000;

export function registerEval(program: Command, context: CliContext): void {
  program
    .command('eval')
    .description('compare a candidate model with its original: output fidelity, accuracy against labels, per-layer error')
    .argument('<original>', 'the reference ONNX model')
    .argument('<candidate>', 'the model to judge (quantized, pruned, optimized)')
    .option('--data <path>', 'samples: an ONNX test-data folder, .npy, .npz or .json (default: generated inputs)')
    .option('--labels <file>', 'class ids, one per prediction row: .npy of integers or a JSON array')
    .option('--label-output <name>', 'the output holding class scores for accuracy (default: the first)')
    .option('--per-layer', 'compare every intermediate value and rank layers by the error they add')
    .option('--top <n>', 'layers listed in the table with --per-layer (--json lists all)', '10')
    .option('--json', 'print one JSON object instead of tables')
    .option('--report <file>', 'also write a self-contained HTML report with charts')
    .option('--samples <n>', 'samples to compare (default: all in --data; 4 generated)')
    .option('--seed <n>', 'seed for generated inputs (default 0)')
    .option('--dims <list>', 'sizes of symbolic dims for generated inputs: name=value,... (x[0]=1 names an axis)')
    .option('--range <min,max>', 'value range of generated inputs (default 0,1 for floats)')
    .option('--metric <module>', 'a .js/.ts module exporting (reference, candidate, sample) => number')
    .option('--batch <n>', 'samples stacked along axis 0 per run (only for models with a batch axis)', '1')
    .option('--threads <n>', 'onnxruntime intra-op threads (default: onnxruntime decides)')
    .action(async (original: string, candidate: string, flags: EvalFlags, command: Command) => {
      // onnxruntime logs warnings and errors of its own, several lines each, straight to stderr;
      // its errors reach the user through ours as one line, so it stays quiet unless --verbose.
      if (command.optsWithGlobals().verbose !== true) ortEnv.logLevel = 'fatal';
      const report = await evaluate(original, candidate, flags, context);
      for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning}\n`);
      context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatEval(report, Number(flags.top)));
      if (flags.report !== undefined) writeEvalReportFile(flags.report, original, candidate, report);
    });
}

async function evaluate(originalFile: string, candidateFile: string, flags: EvalFlags, { io }: CliContext): Promise<EvalReport> {
  const batch = wholeNumber(flags.batch, '--batch', 1);
  const threads = flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads', 0);
  const count = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 1);
  wholeNumber(flags.top, '--top', 0);
  if (flags.data !== undefined) {
    const generatorOnly = (['seed', 'dims', 'range'] as const).filter((k) => flags[k] !== undefined);
    if (generatorOnly.length > 0) throw new UsageError(`--${generatorOnly[0]} shapes generated inputs and has no effect with --data`);
  }
  const original = loadModelFile(originalFile);
  const candidate = loadModelFile(candidateFile);
  const labels = flags.labels === undefined ? undefined : readLabels(flags.labels);
  const custom = flags.metric === undefined ? undefined : await loadCustomMetric(flags.metric);
  const samples = await openCommandSamples(original, flags, count);
  try {
    const report = await compareModels(nodeOrt, original, candidate, samples, {
      limit: flags.data === undefined ? undefined : count,
      batch,
      threads,
      labels,
      labelOutput: flags.labelOutput,
      customMetric: custom?.metric,
      customMetricName: custom?.name,
      perLayer: flags.perLayer === true,
      progress: delayed(process.stderr.isTTY ? terminalProgress(process.stderr) : lineProgress((line) => io.stderr(`${line}\n`)), PROGRESS_DELAY_MS),
    });
    return { models: { original: originalFile, candidate: candidateFile }, ...report };
  } finally {
    await samples.close?.();
  }
}


function readLabels(file: string): Labels {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(fs.readFileSync(file));
  } catch (error) {
    throw inFile(file, error);
  }
  return parseLabels(bytes, file);
}





/** Forwards progress only once a run has lasted `ms`, so quick runs print nothing. */
function delayed(inner: Progress, ms: number): Progress {
  let label = '';
  let total: number | undefined;
  let startedAt = 0;
  let steps = 0;
  let shown = false;
  return {
    start(l, t) {
      label = l;
      total = t;
      startedAt = Date.now();
      steps = 0;
      shown = false;
    },
    tick(n = 1) {
      steps += n;
      if (shown) inner.tick(n);
      else if (Date.now() - startedAt >= ms) {
        shown = true;
        inner.start(label, total);
        inner.tick(steps);
      }
    },
    done() {
      if (shown) inner.done();
    },
  };
}

/** The report as terminal text: the setting, output fidelity, accuracy, then the worst layers. */
export function formatEval(report: EvalReport, top = 10): string {
  const lines: string[] = [];
  if (report.models !== undefined) {
    lines.push(`original   ${report.models.original}`, `candidate  ${report.models.candidate}`);
  }
  lines.push(`data       ${report.data}`, '');
  const outputs = Object.entries(report.outputs);
  const classifier = outputs.some(([, o]) => o.top1_agreement !== undefined);
  const columns = [
    { header: 'output' },
    { header: 'cosine', align: 'right' as const },
    { header: 'SQNR dB', align: 'right' as const },
    { header: 'max abs', align: 'right' as const },
    { header: 'mean abs', align: 'right' as const },
    { header: 'relative', align: 'right' as const },
    ...(classifier ? [{ header: 'top-1', align: 'right' as const }] : []),
  ];
  lines.push(...renderTable(columns, outputs.map(([name, o]) => outputRow(name, o, classifier)), ''));
  if (report.accuracy !== undefined) {
    const a = report.accuracy;
    const change = (a.candidate - a.original) * 100;
    lines.push(
      '',
      `accuracy on ${groupDigits(a.total)} labels (output '${a.output}'): original ${percent(a.original)}, candidate ${percent(a.candidate)} (${change >= 0 ? '+' : ''}${change.toFixed(2)} points)`,
    );
  }
  if (report.custom !== undefined) {
    const c = report.custom;
    lines.push('', `${c.name}: mean ${number(c.mean)}, min ${number(c.min)}, max ${number(c.max)} over ${c.samples} samples`);
  }
  if (report.layers !== undefined) {
    const shown = report.layers.slice(0, top);
    lines.push('', `layers ranked by the error they add (SQNR drop), ${shown.length} of ${report.layers.length}:`);
    lines.push(...renderTable(
      [
        { header: '#', align: 'right' },
        { header: 'value' },
        { header: 'op' },
        { header: 'drop dB', align: 'right' },
        { header: 'SQNR dB', align: 'right' },
        { header: 'input dB', align: 'right' },
        { header: 'cosine', align: 'right' },
      ],
      shown.map((layer, i) => layerRow(layer, i + 1)),
      '',
    ));
    for (const note of report.layer_notes ?? []) lines.push(`note: ${note}`);
  }
  lines.push(`\n${report.samples} sample${report.samples === 1 ? '' : 's'} compared`);
  return `${lines.join('\n')}\n`;
}

function outputRow(name: string, o: OutputReport, classifier: boolean): string[] {
  const row = [name, cosine(o.cosine), db(o.sqnr_db), number(o.max_abs), number(o.mean_abs), number(o.relative)];
  if (classifier) row.push(o.top1_agreement === undefined ? '' : percent(o.top1_agreement));
  return row;
}

function layerRow(layer: LayerReport, rank: number): string[] {
  const value = layer.candidate_value === undefined ? layer.value : `${layer.value} -> ${layer.candidate_value}`;
  return [String(rank), value, layer.op, layer.drop_db === null ? '?' : layer.drop_db.toFixed(2), db(layer.sqnr_db), db(layer.input_sqnr_db), cosine(layer.cosine)];
}

function db(value: JsonNumber): string {
  if (value === null) return '?';
  return typeof value === 'string' ? value : value.toFixed(2);
}

/** Six decimals, or nine when six would round a value below 1 up to "1.000000". */
function cosine(value: JsonNumber): string {
  if (value === null || typeof value === 'string') return String(value ?? '?');
  if (value === 1) return '1';
  const six = value.toFixed(6);
  return six === '1.000000' ? value.toFixed(9) : six;
}

function number(value: JsonNumber): string {
  if (value === null) return '?';
  if (typeof value === 'string') return value;
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  return magnitude >= 1e-3 && magnitude < 1e5 ? value.toPrecision(4) : value.toExponential(2);
}

function percent(value: number): string {
  return `${(value * 100).toFixed(2)}%`;
}
