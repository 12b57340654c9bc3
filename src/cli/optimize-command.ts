// `shrink optimize IN -o OUT`: parses the options, reads the model, runs the optimize recipe step
// (src/pipeline/optimize.ts: checks, the optimizer registry, validation with blame) and writes the
// result only after it loads in onnxruntime. Shows what each pass did (nodes removed, weight bytes
// saved, time) and the fidelity; --json prints the report in the common envelope.
import type { Command } from 'commander';
import type { JsonNumber } from '../eval/eval-report.js';
import { formatBytes, groupDigits, renderTable } from '../inspect/table.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import { OPTIMIZER_PASSES, type OptimizeLevel } from '../optimize/passes.js';
import { type OptimizeReport, type PassSummary, optimize } from '../pipeline/optimize.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { writeModelOutput } from './model-output.js';
import { checkOutput } from './output-checks.js';
import { parseDims, wholeNumber } from './options.js';
import { spillForLargeModel } from './large-models.js';
import { cliRecipeContext } from './recipe-context.js';
import { addBenchOption, firstInputs, formatSpeedLine, type SpeedReport, speedCheckWanted } from './speed-check.js';
import { openCommandSamples } from './sample-options.js';

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
  bench?: boolean;
}

export { CHANGED_OUTPUT_RELATIVE_ERROR } from '../optimize/blame-pass.js';

/** What `shrink optimize --json` prints. */
export type OptimizeSummary = ReportEnvelope & OptimizeReport & { speed?: SpeedReport };

export function registerOptimize(program: Command, context: CliContext): void {
  const command = program
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
    .option('--external-data', 'store large weights in OUTPUT.data beside the model (automatic over 2 GiB)')
    .option('--no-validate', 'skip running both models (not recommended)')
    .option('--threads <n>', 'onnxruntime intra-op threads for constant folding and validation (0: onnxruntime decides)', '0')
    .addHelpText('after', `\nPasses (registry order; level; * = only when named in --passes):\n${passList()}`);
  addBenchOption(command).action(async (input: string, flags: OptimizeFlags, command: Command) => {
    const threads = wholeNumber(flags.threads, '--threads', 0);
    const summary = await optimizeFile(input, flags, cliRecipeContext(command, context.io, { threads: threads === 0 ? undefined : threads }));
    if (flags.json) for (const warning of summary.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(summary, null, 2)}\n` : formatOptimize(summary));
  });
}

function passList(): string {
  return OPTIMIZER_PASSES.map((e) => `  ${e.pass.name}${e.optIn ? '*' : ''} (${e.level}): ${e.pass.description}`).join('\n');
}

async function optimizeFile(input: string, flags: OptimizeFlags, ctx: ReturnType<typeof cliRecipeContext>): Promise<OptimizeSummary> {
  const options = parseOptions(flags);
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, flags.data], models: [input] });
  const original = loadModelFile(input);
  // Samples are prepared before any work, so a missing dim or a bad --data fails at once.
  const samples = flags.validate ? await openCommandSamples(original, flags, options.count) : undefined;
  const spill = spillForLargeModel(original, flags.output);
  try {
    let result: Awaited<ReturnType<typeof optimize>>;
    try {
      result = await optimize(
        original,
        {
          ...options.optimize,
          // onnxruntime loads the input from its file: external data stays on disk.
          source: input,
          validate: samples === undefined ? undefined : { samples, limit: flags.data === undefined ? undefined : options.count },
        },
        ctx,
      );
    } catch (error) {
      throw inFile(input, error);
    }
    const warnings = result.report.warnings.filter((w) => w.code !== 'not-validated');
    const speed = speedCheckWanted(flags.bench) ? { original: { file: input, model: original }, inputs: await firstInputs(flags.data === undefined ? undefined : samples), dims: parseDims(flags.dims) } : undefined;
    const saved = await writeModelOutput(result.model, flags.output, { externalData: flags.externalData, speed });
    return envelope(
      { command: 'optimize', input, output: flags.output, size: sizeChange(modelFileBytes(input, original), saved.bytes), warnings: [...warnings, ...saved.warnings] },
      { ...result.report, ...(saved.speed === undefined ? {} : { speed: saved.speed }) },
      nodeEnvironment(),
    );
  } finally {
    await samples?.close?.();
    spill?.dispose();
  }
}

interface ParsedOptions {
  optimize: { level: OptimizeLevel; passes?: string[]; skip?: string[] };
  count: number | undefined;
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
  };
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
  const { nodes, size } = summary;
  const percent = (a: number, b: number) => (a === 0 ? '' : ` (${(((b - a) / a) * 100).toFixed(1)}%)`);
  lines.push(
    '',
    `nodes  ${groupDigits(nodes.before)} -> ${groupDigits(nodes.after)}${percent(nodes.before, nodes.after)}`,
    `size   ${formatBytes(size.before)} -> ${formatBytes(size.after)}${percent(size.before, size.after)}`,
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
  if (summary.speed !== undefined) lines.push('', formatSpeedLine(summary.speed).trimEnd());
  for (const warning of summary.warnings) lines.push(`warning: ${warning.message}`);
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
