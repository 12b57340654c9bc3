// `shrink optimize IN -o OUT`: runs the optimizer registry (src/optimize/passes.ts) over a model,
// shows what each pass did (nodes removed, weight bytes saved, time), then proves the result:
// both models run in onnxruntime on the same samples (--data, or generated inputs with a warning)
// and the fidelity is printed. The input is checked first (src/optimize/check-model.ts): a broken
// graph or an op onnxruntime cannot load fails with one line naming the node. A result whose
// outputs moved is not written; the pass that moved them is found by replaying the passes one at
// a time (src/optimize/blame-pass.ts) and named in the error with the error it caused.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { env as ortEnv } from 'onnxruntime-node';
import { compareModels } from '../eval/compare.js';
import type { EvalReport, JsonNumber } from '../eval/eval-report.js';
import type { SampleSource } from '../eval/samples.js';
import { formatBytes, groupDigits, renderTable } from '../inspect/table.js';
import { allConstants } from '../ir/constants.js';
import type { Model } from '../ir/model.js';
import { saveModel } from '../node/model-files.js';
import { nodeOrt } from '../node/ort-node.js';
import { terminalProgress } from '../node/progress.js';
import { blamePass, changedOutputs, compareOnSamples, describeDifferences, outputDifferences } from '../optimize/blame-pass.js';
import { ModelLoadError, checkModelForOptimize } from '../optimize/check-model.js';
import { optimizeModel } from '../optimize/optimize.js';
import { OPTIMIZER_PASSES, type OptimizeLevel } from '../optimize/passes.js';
import { totalNodes } from '../optimize/util/graph-queries.js';
import type { PassContext, PassReport, PassWarning } from '../pipeline/pass.js';
import { silentProgress } from '../pipeline/progress.js';
import { UsageError, inFile, oneLine } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { openCommandSamples } from './sample-options.js';
import { wholeNumber } from './options.js';

interface OptimizeFlags {
  output: string;
  passes?: string;
  skip?: string;
  level: string;
  json?: boolean;
  data?: string;
  samples?: string;
  dims?: string;
  seed?: string;
  externalData?: boolean;
  validate: boolean;
  threads: string;
}

export { CHANGED_OUTPUT_RELATIVE_ERROR } from '../optimize/blame-pass.js';

/** What one pass did, summed over the optimizer's rounds. */
export interface PassSummary {
  pass: string;
  /** Times the pass ran (once per round). */
  runs: number;
  ms: number;
  nodes_removed: number;
  /** Bytes of constant tensors (initializers and Constant nodes) the pass removed. */
  bytes_saved: number;
  /** The pass's own non-zero counters (batchNormsFolded, ...). */
  stats: Record<string, number>;
  warnings: PassReport['warnings'];
}

export interface ModelSize {
  nodes: number;
  /** On disk: the .onnx file and its external data files. */
  bytes: number;
}

export interface Fidelity {
  samples: number;
  data: string;
  /** Worst over outputs. */
  max_abs: JsonNumber;
  /** Lowest over outputs. */
  cosine: JsonNumber;
  outputs: Record<string, { max_abs: JsonNumber; cosine: JsonNumber; relative: JsonNumber }>;
}

/** What `shrink optimize --json` prints. */
export interface OptimizeSummary {
  input: string;
  output: string;
  level: OptimizeLevel | 'custom';
  passes: PassSummary[];
  before: ModelSize;
  after: ModelSize;
  /** null with --no-validate. */
  fidelity: Fidelity | null;
  warnings: string[];
}

export function registerOptimize(program: Command, context: CliContext): void {
  program
    .command('optimize')
    .description('clean up, fold and fuse a model (exact rewrites only), then check its outputs against the original')
    .argument('<input>', 'the ONNX model to optimize')
    .requiredOption('-o, --output <file>', 'where to write the optimized model')
    .option('--level <level>', "'basic' (remove what does nothing) or 'full' (also fold and fuse)", 'full')
    .option('--passes <list>', 'run exactly these passes, comma-separated (see the list below)')
    .option('--skip <list>', 'leave these passes out, comma-separated')
    .option('--json', 'print one JSON object instead of tables')
    .option('--data <path>', 'samples to validate on: an ONNX test-data folder, .npy, .npz or .json (default: generated inputs)')
    .option('--samples <n>', 'samples to validate on (default: all in --data; 4 generated)')
    .option('--dims <list>', 'sizes of symbolic dims for generated inputs: name=value,... (x[0]=1 names an axis)')
    .option('--seed <n>', 'seed for generated inputs (default 0)')
    .option('--external-data', 'store large weights in OUTPUT.data beside the model')
    .option('--no-validate', 'skip running both models (not recommended)')
    .option('--threads <n>', 'onnxruntime intra-op threads for constant folding and validation (0: onnxruntime decides)', '0')
    .addHelpText('after', `\nPasses (registry order; level; * = only when named in --passes):\n${passList()}`)
    .action(async (input: string, flags: OptimizeFlags, command: Command) => {
      // onnxruntime prints multi-line warnings of its own; its errors reach the user through ours.
      if (command.optsWithGlobals().verbose !== true) ortEnv.logLevel = 'fatal';
      const summary = await optimizeFile(input, flags);
      for (const warning of summary.warnings) context.io.stderr(`shrink: warning: ${warning}\n`);
      context.io.stdout(flags.json ? `${JSON.stringify(summary, null, 2)}\n` : formatOptimize(summary));
    });
}

function passList(): string {
  return OPTIMIZER_PASSES.map((e) => `  ${e.pass.name}${e.optIn ? '*' : ''} (${e.level}): ${e.pass.description}`).join('\n');
}

async function optimizeFile(input: string, flags: OptimizeFlags): Promise<OptimizeSummary> {
  const options = parseOptions(flags);
  checkOutputFolder(flags.output);
  const original = loadModelFile(input);
  const model = loadModelFile(input);
  // A broken graph, or (when the models will run) an op onnxruntime cannot load, fails here,
  // before any work; ops shape inference does not know are only reported.
  const checks = await checkInput(input, original, flags.validate);
  const warnings: string[] = checks.map((w) => w.message);
  // Samples are prepared before any work, so a missing dim or a bad --data fails at once.
  const samples = flags.validate ? await openCommandSamples(original, flags, options.count) : undefined;
  try {
    const before: ModelSize = { nodes: totalNodes(model.graph), bytes: filesSize(input, model) };
    const ctx = passContext(model);
    const reports = await optimizeModel(model, { ...options.optimize, onPass: ctx.onPass }, ctx.context);
    const passes = summarize(reports, ctx.deltas, ctx.order);

    let fidelity: Fidelity | null = null;
    if (samples !== undefined) {
      const limit = flags.data === undefined ? undefined : options.count;
      const outcome = await compareOptimized(original, model, samples, options.threads, limit);
      if ('broken' in outcome) throw await changedError(input, outcome.broken, options, samples);
      warnings.push(...outcome.report.warnings);
      fidelity = fidelityOf(outcome.report);
      const changed = changedOutputs(outputDifferences(outcome.report));
      if (changed.length > 0) throw await changedError(input, `optimized model's outputs changed (${describeDifferences(changed)})`, options, samples);
    }
    try {
      saveModel(model, flags.output, flags.externalData ? { externalData: true } : {});
    } catch (error) {
      throw inFile(flags.output, error);
    }
    const after: ModelSize = { nodes: totalNodes(model.graph), bytes: filesSize(flags.output, loadModelFile(flags.output)) };
    const level = flags.passes === undefined ? (flags.level as OptimizeLevel) : 'custom';
    return { input, output: flags.output, level, passes, before, after, fidelity, warnings };
  } finally {
    await samples?.close?.();
  }
}

interface ParsedOptions {
  optimize: { level: OptimizeLevel; passes?: string[]; skip?: string[] };
  count: number | undefined;
  threads: number;
}

function parseOptions(flags: OptimizeFlags): ParsedOptions {
  if (flags.level !== 'basic' && flags.level !== 'full') throw new UsageError(`--level must be 'basic' or 'full', got '${flags.level}'`);
  const known = new Set(OPTIMIZER_PASSES.map((e) => e.pass.name));
  const list = (text: string | undefined, flag: string) => {
    if (text === undefined) return undefined;
    const names = text.split(',').map((n) => n.trim()).filter((n) => n !== '');
    if (names.length === 0) throw new UsageError(`${flag} needs at least one pass name`);
    const unknown = names.find((n) => !known.has(n));
    if (unknown !== undefined) throw new UsageError(`${flag}: unknown pass '${unknown}'; known passes: ${[...known].join(', ')}`);
    return names;
  };
  const passes = list(flags.passes, '--passes');
  const skip = list(flags.skip, '--skip');
  if (!flags.validate && (flags.data ?? flags.samples ?? flags.dims ?? flags.seed) !== undefined) {
    throw new UsageError('--data, --samples, --dims and --seed choose validation samples and have no effect with --no-validate');
  }
  if (flags.data !== undefined && (flags.dims ?? flags.seed) !== undefined) {
    throw new UsageError(`--${flags.dims === undefined ? 'seed' : 'dims'} shapes generated inputs and has no effect with --data`);
  }
  return {
    optimize: { level: flags.level, passes, skip },
    count: flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 1),
    threads: wholeNumber(flags.threads, '--threads', 0),
  };
}

/** Fails before any work when the output cannot be written where asked. */
function checkOutputFolder(output: string): void {
  const folder = path.dirname(path.resolve(output));
  let stat: fs.Stats;
  try {
    stat = fs.statSync(folder);
  } catch {
    throw new Error(`${output}: folder '${path.dirname(output)}' does not exist`);
  }
  if (!stat.isDirectory()) throw new Error(`${output}: '${path.dirname(output)}' is not a folder`);
  if (fs.existsSync(output) && fs.statSync(output).isDirectory()) throw new Error(`${output}: is a folder; give a file name`);
}


/** The model file plus every external data file it reads, in bytes. */
function filesSize(file: string, model: Model): number {
  const locations = new Set<string>();
  for (const { tensor } of allConstants(model.graph)) if (tensor.external !== undefined) locations.add(tensor.external.location);
  let bytes = fs.statSync(file).size;
  for (const location of locations) bytes += fs.statSync(path.join(path.dirname(file), location)).size;
  return bytes;
}

/** Weight bytes in all scopes: what a pass saves shows up here. */
function constantBytes(model: Model): number {
  let bytes = 0;
  for (const { tensor } of allConstants(model.graph)) bytes += tensor.byteLength;
  return bytes;
}

interface Delta {
  nodes: number;
  bytes: number;
}

/**
 * The pass context, plus an `onPass` hook for optimizeModel that measures the model after every
 * pass run, so each pass is credited with the nodes and weight bytes it removed.
 * SHRINK_DEBUG=1 or 2 prints the passes' debug lines.
 */
function passContext(model: Model): { context: PassContext; onPass: (report: PassReport) => void; deltas: Map<string, Delta>; order: string[] } {
  const debugLevel = Number(process.env.SHRINK_DEBUG ?? 0);
  const deltas = new Map<string, Delta>();
  const order: string[] = [];
  let last = { nodes: totalNodes(model.graph), bytes: constantBytes(model) };
  const context: PassContext = {
    ort: nodeOrt,
    progress: process.stderr.isTTY ? terminalProgress(process.stderr) : silentProgress,
    debug: (level, message) => {
      if (debugLevel >= level) process.stderr.write(`shrink: debug: ${message}\n`);
    },
  };
  const onPass = (report: PassReport) => {
    const now = { nodes: totalNodes(model.graph), bytes: constantBytes(model) };
    const delta = deltas.get(report.pass) ?? { nodes: 0, bytes: 0 };
    delta.nodes += last.nodes - now.nodes;
    delta.bytes += last.bytes - now.bytes;
    deltas.set(report.pass, delta);
    order.push(report.pass);
    last = now;
  };
  return { context, onPass, deltas, order };
}

function summarize(reports: PassReport[], deltas: Map<string, Delta>, order: readonly string[]): PassSummary[] {
  return reports.map((r) => ({
    pass: r.pass,
    runs: order.filter((name) => name === r.pass).length,
    ms: Number(r.ms.toFixed(2)),
    nodes_removed: deltas.get(r.pass)?.nodes ?? 0,
    bytes_saved: deltas.get(r.pass)?.bytes ?? 0,
    stats: Object.fromEntries(Object.entries(r.stats).filter(([, v]) => v !== 0)),
    warnings: r.warnings,
  }));
}


async function compare(original: Model, candidate: Model, samples: SampleSource, threads: number, limit: number | undefined): Promise<EvalReport> {
  try {
    return await compareModels(nodeOrt, original, candidate, samples, { limit, threads: threads === 0 ? undefined : threads });
  } catch (error) {
    // Most often generated inputs the model cannot take (a sample rate, token ids out of range).
    throw new Error(`validation: ${(error as Error).message} (give real samples with --data, or skip the check with --no-validate)`);
  }
}

function fidelityOf(report: EvalReport): Fidelity {
  const outputs: Fidelity['outputs'] = {};
  let maxAbs: JsonNumber = 0;
  let cosine: JsonNumber = 1;
  for (const [name, o] of Object.entries(report.outputs)) {
    outputs[name] = { max_abs: o.max_abs, cosine: o.cosine, relative: o.relative };
    maxAbs = worse(maxAbs, o.max_abs, (a, b) => a > b);
    cosine = worse(cosine, o.cosine, (a, b) => a < b);
  }
  return { samples: report.samples, data: report.data, max_abs: maxAbs, cosine, outputs };
}

/** The worse of two metric values; null (undefined) and infinities count as worst. */
function worse(current: JsonNumber, next: JsonNumber, isWorse: (a: number, b: number) => boolean): JsonNumber {
  if (current === null || typeof current === 'string') return current;
  if (next === null || typeof next === 'string') return next;
  return isWorse(next, current) ? next : current;
}

/**
 * The original against the optimized model. The original was loaded in onnxruntime by the input
 * check, so a failure to load or run the optimized one is the optimizer's doing (`broken`), and a
 * failure of the original is the samples'.
 */
async function compareOptimized(
  original: Model,
  candidate: Model,
  samples: SampleSource,
  threads: number,
  limit: number | undefined,
): Promise<{ report: EvalReport } | { broken: string }> {
  try {
    return { report: await compare(original, candidate, samples, threads, limit) };
  } catch (error) {
    // onnxruntime's source location and C++ signature say nothing to a user.
    const message = oneLine(error).replace(/[^\s(]*onnxruntime_src\S*:\d+ .*?\(\) /g, '');
    const candidateFailed = /^validation: (candidate model|.*the candidate model failed)/.test(message);
    if (!candidateFailed) throw error;
    return { broken: `onnxruntime cannot run the optimized model (${message.replace(/^validation: /, '').replace(/ \(give real samples with --data.*$/, '')})` };
  }
}

/**
 * The error for an optimized model that moved or broke: replays the passes one at a time on a
 * fresh copy (blame-pass.ts) and names the first pass after which outputs moved, with its numbers.
 * Runs only when the whole optimization failed validation, so its cost does not matter.
 */
async function changedError(input: string, what: string, options: ParsedOptions, samples: SampleSource): Promise<Error> {
  const original = loadModelFile(input);
  const compareOne = compareOnSamples(nodeOrt, samples, { limit: 1, threads: options.threads === 0 ? undefined : options.threads });
  const blame = await blamePass(original, compareOne, { optimize: options.optimize, ctx: { ort: nodeOrt }, copy: () => loadModelFile(input) });
  let culprit = '';
  if (blame !== undefined) {
    let after = `after it on 1 sample: ${describeDifferences(blame.changed)}`;
    if (blame.failure !== undefined) after = `after it the model no longer runs${what.includes('onnxruntime cannot') ? '' : ` (${blame.failure})`}`;
    culprit = `; pass '${blame.pass}' did it (run ${blame.run}, round ${blame.round}; ${after})`;
  }
  const hint = blame === undefined ? 'no single pass moved them past the tolerance on 1 sample' : `use --skip ${blame.pass} to leave that pass out`;
  return new Error(`${input}: ${what}${culprit}; nothing was written (${hint})`);
}

/** The input checks of check-model.ts, with the file leading any error. */
async function checkInput(input: string, model: Model, validate: boolean): Promise<PassWarning[]> {
  try {
    // onnxruntime loads the file itself: external data stays on disk.
    return await checkModelForOptimize(model, validate ? { ort: nodeOrt, source: input } : {});
  } catch (error) {
    // Without the check the model is optimized but never run: the way to clean a custom-op model.
    if (error instanceof ModelLoadError) throw inFile(input, `${error.message}; to optimize it without running it, use --no-validate`);
    throw inFile(input, error);
  }
}


/** The summary as terminal text: one row per pass, sizes before and after, fidelity. */
export function formatOptimize(summary: OptimizeSummary): string {
  const lines = [`${summary.input} -> ${summary.output} (level ${summary.level})`, ''];
  const changed = summary.passes.filter((p) => p.nodes_removed !== 0 || p.bytes_saved !== 0 || Object.keys(p.stats).length > 0);
  lines.push(
    ...renderTable(
      [{ header: 'pass' }, { header: 'nodes removed', align: 'right' }, { header: 'bytes saved', align: 'right' }, { header: 'ms', align: 'right' }, { header: 'what it did' }],
      summary.passes.map((p) => [
        p.pass,
        p.nodes_removed === 0 ? '-' : groupDigits(p.nodes_removed),
        p.bytes_saved === 0 ? '-' : signedBytes(p.bytes_saved),
        p.ms.toFixed(1),
        whatItDid(p),
      ]),
      '',
    ),
  );
  const { before, after } = summary;
  const percent = (a: number, b: number) => (a === 0 ? '' : ` (${(((b - a) / a) * 100).toFixed(1)}%)`);
  lines.push(
    '',
    `nodes  ${groupDigits(before.nodes)} -> ${groupDigits(after.nodes)}${percent(before.nodes, after.nodes)}`,
    `size   ${formatBytes(before.bytes)} -> ${formatBytes(after.bytes)}${percent(before.bytes, after.bytes)}`,
    `passes ${summary.passes.length} ran, ${changed.length} changed the model`,
  );
  const f = summary.fidelity;
  if (f === null) lines.push('fidelity not checked (--no-validate)');
  else {
    lines.push('', `fidelity on ${f.data}:`);
    lines.push(
      ...renderTable(
        [{ header: 'output' }, { header: 'max abs', align: 'right' }, { header: 'cosine', align: 'right' }, { header: 'relative', align: 'right' }],
        Object.entries(f.outputs).map(([name, o]) => [name, metric(o.max_abs), cosineText(o.cosine), metric(o.relative)]),
        '',
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The pass's counters, and how many places it left alone (a pass's warnings say why, in --json). */
function whatItDid(p: PassSummary): string {
  const parts = Object.entries(p.stats).map(([k, v]) => `${k} ${groupDigits(v)}`);
  if (p.warnings.length > 0) parts.push(`${p.warnings.length} left alone (--json says why)`);
  return parts.join(', ');
}

function signedBytes(bytes: number): string {
  return bytes < 0 ? `-${formatBytes(-bytes)}` : formatBytes(bytes);
}

function metric(value: JsonNumber): string {
  if (value === null) return '?';
  if (typeof value === 'string') return value;
  return value === 0 ? '0' : value.toExponential(2);
}

function cosineText(value: JsonNumber): string {
  if (value === null || typeof value === 'string') return String(value ?? '?');
  if (value === 1) return '1';
  const six = value.toFixed(6);
  return six === '1.000000' ? value.toFixed(9) : six;
}
