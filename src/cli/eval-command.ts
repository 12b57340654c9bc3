// `shrink eval ORIGINAL CANDIDATE`: how far a candidate model's outputs are from the original's
// on the same samples (real data from --data, or generated inputs with a warning), accuracy of
// both against --labels, and with --per-layer the layers ranked by the error they add. Prints
// tables, or with --json the EvalReport object (src/eval/eval-report.ts) as is.
import type { Command } from 'commander';
import type { JsonNumber, LayerReport, OutputReport } from '../eval/eval-report.js';
import { renderTable, groupDigits } from '../inspect/table.js';
import { loadCustomMetric } from '../node/custom-metric.js';
import { nodeEnvironment } from '../node/environment.js';
import { writeEvalReportFile } from '../node/report-assets.js';
import { EvalGateError, type EvaluateReport, evaluate } from '../pipeline/evaluate.js';
import { describeMiss } from '../pipeline/gate.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { UsageError } from './errors.js';
import { addGateOptions, type GateFlags, gateFromFlags } from './gate-options.js';
import { loadModelFile, readLabelsFile } from './input-files.js';
import type { CliContext } from './main.js';
import { checkOutput } from './output-checks.js';
import { cliRecipeContext } from './recipe-context.js';
import { openCommandSamples } from './sample-options.js';
import { wholeNumber } from './options.js';

interface EvalFlags extends GateFlags {
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
  perplexity?: string;
  context?: string;
  stride?: string;
  generate?: string;
  prompt?: string;
}

/** What `shrink eval --json` prints. */
export type EvalCommandReport = ReportEnvelope & Omit<EvaluateReport, 'warnings'> & { models: { original: string; candidate: string } };

export function registerEval(program: Command, context: CliContext): void {
  const command = program
    .command('eval')
    .description('compare a candidate model with its original: output fidelity, accuracy against labels, per-layer error')
    .argument('<original>', 'the reference ONNX model')
    .argument('[candidate]', 'the model to judge (quantized, pruned, optimized); optional with --perplexity')
    .option('--data <path>', 'samples: an ONNX test-data folder, .npy, .npz or .json (default: generated inputs)')
    .option('--labels <file>', 'class ids, one per prediction row: .npy of integers or a JSON array')
    .option('--label-output <name>', 'the output holding class scores for accuracy (default: the first)')
    .option('--per-layer', "compare every intermediate value and rank layers by the error they add (each computed from the original's activations)")
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
    .option('--perplexity <text>', 'decoders: perplexity of each model on a text file (UTF-8 bytes as token ids) or a JSON array of token ids')
    .option('--context <n>', 'with --perplexity: tokens per window (default: n_positions of the config.json beside the model)')
    .option('--stride <n>', 'with --perplexity: tokens between window starts (default: the context, windows that do not overlap)')
    .option('--generate <n>', 'with --perplexity: greedy tokens to generate through the KV cache, for tokens/s')
    .option('--prompt <text>', 'with --generate: the prompt (default: the first 16 tokens of the text)');
  addGateOptions(command).action(async (original: string, candidate: string | undefined, flags: EvalFlags, cmd: Command) => {
    const threads = flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads', 0);
    const ctx = cliRecipeContext(cmd, context.io, { threads: threads === 0 ? undefined : threads });
    if (flags.perplexity !== undefined) {
      const { runPerplexityEval } = await import('./perplexity-eval.js');
      return runPerplexityEval(candidate === undefined ? [original] : [original, candidate], { ...flags, perplexity: flags.perplexity }, ctx, context.io);
    }
    const decoderOnly = (['context', 'stride', 'generate', 'prompt'] as const).find((k) => flags[k] !== undefined);
    if (decoderOnly !== undefined) throw new UsageError(`--${decoderOnly} goes with --perplexity`);
    if (candidate === undefined) throw new UsageError('eval needs ORIGINAL and CANDIDATE models (one model alone with --perplexity)');
    let measured: EvaluateReport;
    let failed: EvalGateError | undefined;
    try {
      measured = await runEval(original, candidate, flags, ctx);
    } catch (error) {
      // A missed gate still shows the numbers (a CI log needs them), then fails with exit 3.
      if (!(error instanceof EvalGateError)) throw error;
      failed = error;
      measured = error.report;
    }
    const report = commandReport(original, candidate, measured);
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatEval(report, Number(flags.top)));
    if (flags.report !== undefined) writeEvalReportFile(flags.report, original, candidate, measured);
    if (failed !== undefined) throw failed;
  });
}

async function runEval(originalFile: string, candidateFile: string, flags: EvalFlags, ctx: ReturnType<typeof cliRecipeContext>): Promise<EvaluateReport> {
  const batch = wholeNumber(flags.batch, '--batch', 1);
  const count = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 1);
  wholeNumber(flags.top, '--top', 0);
  if (flags.data !== undefined) {
    const generatorOnly = (['seed', 'dims', 'range'] as const).filter((k) => flags[k] !== undefined);
    if (generatorOnly.length > 0) throw new UsageError(`--${generatorOnly[0]} shapes generated inputs and has no effect with --data`);
  }
  const gate = gateFromFlags(flags, flags.labels !== undefined);
  if (flags.report !== undefined) {
    checkOutput({ output: flags.report, flag: '--report', inputs: [originalFile, candidateFile, flags.data, flags.labels, flags.metric], models: [originalFile, candidateFile] });
  }
  const original = loadModelFile(originalFile);
  const candidate = loadModelFile(candidateFile);
  const labels = flags.labels === undefined ? undefined : readLabelsFile(flags.labels);
  const custom = flags.metric === undefined ? undefined : await loadCustomMetric(flags.metric);
  const samples = await openCommandSamples(original, flags, count);
  try {
    const report = await evaluate(
      original,
      candidate,
      {
        samples,
        limit: flags.data === undefined ? undefined : count,
        batch,
        labels,
        labelOutput: flags.labelOutput,
        customMetric: custom?.metric,
        customMetricName: custom?.name,
        perLayer: flags.perLayer === true,
        names: { original: originalFile, candidate: candidateFile },
        gate,
      },
      ctx,
    );
    return report;
  } finally {
    await samples.close?.();
  }
}

function commandReport(original: string, candidate: string, report: EvaluateReport): EvalCommandReport {
  return {
    ...envelope({ command: 'eval', input: { original, candidate }, output: null, warnings: report.warnings }, report, nodeEnvironment()),
    models: { original, candidate },
  };
}

/** The report as terminal text: the setting, output fidelity, accuracy, then the worst layers. */
export function formatEval(report: Omit<EvaluateReport, 'warnings'> & { models?: EvalCommandReport['models']; warnings: readonly (string | { message: string })[] }, top = 10): string {
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
    lines.push('', `layers ranked by the error they add (SQNR of each computed from the original's activations), ${shown.length} of ${report.layers.length}:`);
    lines.push(...renderTable(
      [
        { header: '#', align: 'right' },
        { header: 'value' },
        { header: 'op' },
        { header: 'isolated dB', align: 'right' },
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
  for (const warning of report.warnings) lines.push(`warning: ${typeof warning === 'string' ? warning : warning.message}`);
  lines.push(`verdict: ${report.verdict.message}`);
  if (report.gate !== undefined) lines.push(`gate: ${report.gate.passed ? 'passed' : `failed (${report.gate.misses.map(describeMiss).join('; ')})`}`);
  return `${lines.join('\n')}\n`;
}

function outputRow(name: string, o: OutputReport, classifier: boolean): string[] {
  const row = [name, cosine(o.cosine), db(o.sqnr_db), number(o.max_abs), number(o.mean_abs), number(o.relative)];
  if (classifier) row.push(o.top1_agreement === undefined ? '' : percent(o.top1_agreement));
  return row;
}

function layerRow(layer: LayerReport, rank: number): string[] {
  const value = layer.candidate_value === undefined ? layer.value : `${layer.value} -> ${layer.candidate_value}`;
  return [String(rank), value, layer.op, db(layer.isolated_sqnr_db), db(layer.sqnr_db), db(layer.input_sqnr_db), cosine(layer.cosine)];
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
