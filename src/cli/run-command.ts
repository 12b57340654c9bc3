// `shrink run RECIPE MODEL -o OUT`: reads a recipe file (JSON or YAML; src/pipeline/recipe.ts)
// and the model, runs the recipe (src/pipeline/run-recipe.ts) and writes the result only after
// every step and gate passed and it loads in onnxruntime. A failed gate exits with code 3 and
// writes nothing. --data serves as calibration data too unless --calib is given.
import type { Command } from 'commander';
import type { EvalReport } from '../eval/eval-report.js';
import { numberFromJson } from '../eval/eval-report.js';
import { modelSignature } from '../eval/match-inputs.js';
import { generatedSamples } from '../eval/sample-generate.js';
import type { SampleSource } from '../eval/samples.js';
import { groupDigits, renderTable } from '../inspect/table.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import { openSampleFile } from '../node/sample-files.js';
import { describeMiss, GateFailedError } from '../pipeline/gate.js';
import { parseRecipe, type Recipe } from '../pipeline/recipe.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { type RecipeReport, type RecipeStepReport, runRecipe } from '../pipeline/run-recipe.js';
import { formatSizeChange, sizeChange } from '../pipeline/size-change.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile, readLabelsFile, readTextFile } from './input-files.js';
import type { CliContext } from './main.js';
import { writeModelOutput } from './model-output.js';
import { checkOutput } from './output-checks.js';
import { parseDims, wholeNumber } from './options.js';
import { spillForLargeModel } from './large-models.js';
import { cliRecipeContext } from './recipe-context.js';

interface RunFlags {
  output: string;
  data?: string;
  calib?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  externalData?: boolean;
  json?: boolean;
}

/** What `shrink run --json` prints. */
export type RunCommandReport = ReportEnvelope & RecipeReport & { recipe: string };

export function registerRun(program: Command, context: CliContext): void {
  program
    .command('run')
    .description('run a recipe file (optimize, quantize and gate steps in order) on a model; write the result only if every gate holds')
    .argument('<recipe>', 'the recipe: JSON or YAML, {"steps": [{"optimize": {}}, {"quantize": {"method": "int4"}}, {"gate": {"min_cosine": 0.99}}]}')
    .argument('<model>', 'the ONNX model to compress')
    .requiredOption('-o, --output <file>', 'where to write the result')
    .option('--data <path>', 'samples every step checks on (an ONNX test-data folder, .npy, .npz or .json); also the calibration data without --calib')
    .option('--calib <path>', 'calibration samples for static-int8 steps (default: --data)')
    .option('--labels <file>', 'class ids of --data: accuracy, and gates on max_accuracy_drop')
    .option('--samples <n>', 'compare at most this many samples (default: all of --data, 4 generated)')
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples (without --data): name=value,...')
    .option('--external-data', 'store the weights in OUTPUT.data beside the model (automatic over 2 GiB)')
    .option('--json', 'print the report as one JSON object')
    .action(async (recipeFile: string, input: string, flags: RunFlags, command: Command) => {
      const report = await runCommand(recipeFile, input, flags, cliRecipeContext(command, context.io));
      if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
      if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
      context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatRun(report));
    });
}

async function runCommand(recipeFile: string, input: string, flags: RunFlags, ctx: ReturnType<typeof cliRecipeContext>): Promise<RunCommandReport> {
  const recipe = readRecipe(recipeFile);
  const samples = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 1);
  if (flags.labels !== undefined && flags.data === undefined) throw new UsageError('--labels go with --data (the samples they label)');
  if (flags.data !== undefined && flags.dims !== undefined) throw new UsageError('--dims shapes generated inputs and has no effect with --data');
  const staticSteps = recipe.steps.filter((s) => s.kind === 'quantize' && s.options.method === 'static-int8');
  if (staticSteps.length > 0 && flags.data === undefined && flags.calib === undefined) throw new UsageError(`${recipeFile}: static-int8 calibrates on samples: give --calib or --data`);
  if (recipe.steps.some((s) => s.kind === 'gate') && flags.data === undefined) throw new UsageError(`${recipeFile}: gates compare with the input on real samples: give --data`);
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, recipeFile, flags.data, flags.calib, flags.labels], models: [input] });

  const model = loadModelFile(input);
  const labels = flags.labels === undefined ? undefined : readLabelsFile(flags.labels);
  const sources: SampleSource[] = [];
  const spill = spillForLargeModel(model, flags.output);
  try {
    const signature = modelSignature(model);
    const data = flags.data === undefined ? undefined : await openSampleFile(flags.data, signature);
    if (data !== undefined) sources.push(data);
    const calibration = flags.calib === undefined ? undefined : await openSampleFile(flags.calib, signature);
    if (calibration !== undefined) sources.push(calibration);
    let checkOn = data;
    let noDataReason: string | undefined;
    if (checkOn === undefined) {
      try {
        checkOn = generatedSamples(signature.inputs, { count: samples ?? 4, dims: parseDims(flags.dims) });
      } catch (error) {
        noDataReason = `${(error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N')}, or pass --data`;
      }
    }
    let result: Awaited<ReturnType<typeof runRecipe>>;
    try {
      result = await runRecipe(model, recipe, { data: checkOn, calibration, labels, limit: data === undefined ? undefined : samples, noDataReason }, ctx, (i, total, name) =>
        ctx.debug?.(1, `${recipeFile}: step ${i + 1} of ${total}: ${name}`),
      );
    } catch (error) {
      if (error instanceof GateFailedError) throw error;
      throw inFile(input, error);
    }
    const saved = await writeModelOutput(result.model, flags.output, { externalData: flags.externalData });
    const warnings = [...result.report.warnings, ...(result.report.fidelity?.warnings ?? []), ...saved.warnings];
    return {
      ...envelope({ command: 'run', input, output: flags.output, size: sizeChange(modelFileBytes(input, model), saved.bytes), warnings }, result.report, nodeEnvironment()),
      recipe: recipeFile,
    };
  } finally {
    for (const source of sources) await source.close?.();
    spill?.dispose();
  }
}

function readRecipe(file: string): Recipe {
  return parseRecipe(readTextFile(file), file);
}

/** The run as terminal text: one line per step, the size, fidelity of the whole, the verdict. */
export function formatRun(report: RunCommandReport): string {
  const lines = [`recipe     ${report.recipe} (${report.steps.length} step${report.steps.length === 1 ? '' : 's'})`, `input      ${report.input}`, `output     ${report.output}`, ''];
  for (const [i, step] of report.steps.entries()) lines.push(`step ${i + 1}  ${step.step.padEnd(9)} ${describeStep(step)}`);
  lines.push('', `size       ${formatSizeChange(report.size as NonNullable<RunCommandReport['size']>)}`);
  if (report.fidelity !== undefined) {
    lines.push('', `fidelity of the result on ${report.fidelity.samples} sample${report.fidelity.samples === 1 ? '' : 's'} (${report.fidelity.data}):`, ...fidelityTable(report.fidelity));
    const a = report.fidelity.accuracy;
    if (a !== undefined) {
      const change = (a.candidate - a.original) * 100;
      lines.push(`accuracy on ${groupDigits(a.total)} labels: input ${(a.original * 100).toFixed(2)}%, result ${(a.candidate * 100).toFixed(2)}% (${change >= 0 ? '+' : ''}${change.toFixed(2)} points)`);
    }
  } else lines.push(`fidelity   not measured: ${report.fidelity_skipped}`);
  for (const warning of report.warnings) lines.push(`warning: ${warning.message}`);
  lines.push('', `verdict    ${report.verdict.message}`);
  return `${lines.join('\n')}\n`;
}

function describeStep(step: RecipeStepReport): string {
  if (step.step === 'optimize') {
    const r = step.report;
    const checked = r.fidelity === null ? 'not validated' : `outputs within ${typeof r.fidelity.max_abs === 'number' ? r.fidelity.max_abs.toExponential(1) : r.fidelity.max_abs} of the input`;
    return `nodes ${groupDigits(r.nodes.before)} -> ${groupDigits(r.nodes.after)}, ${formatSizeChange(r.size)}; ${checked}`;
  }
  if (step.step === 'quantize') {
    const r = step.report;
    const cosine = r.fidelity === undefined ? 'fidelity not measured' : `lowest cosine ${lowestCosine(r.fidelity)}`;
    return `${r.method}: ${groupDigits(r.nodes.quantized)} nodes quantized, ${formatSizeChange(r.size)}; ${cosine}`;
  }
  if (step.step === 'prune') {
    const r = step.report;
    const cosine = r.fidelity === undefined ? 'fidelity not measured' : `lowest cosine ${lowestCosine(r.fidelity)}`;
    const what = r.structured ? `${r.macs === undefined ? '' : `MACs ${r.macs.ratio.toFixed(3)}x, `}${formatSizeChange(r.size)}` : `${(r.sparsity.pruned_weights * 100).toFixed(1)}% of the pruned weights zero, gzip ${r.gzip === undefined ? 'not measured' : formatSizeChange(r.gzip)}`;
    return `${r.method}: ${what}; ${cosine}`;
  }
  if (step.step === 'cluster') {
    const r = step.report;
    const cosine = r.fidelity === undefined ? 'fidelity not measured' : `lowest cosine ${lowestCosine(r.fidelity)}`;
    return `${r.settings.bits}-bit codebooks per ${r.settings.grouping} on ${r.tensors.length} weights, ${formatSizeChange(r.size)}, gzip ${r.gzip === undefined ? 'not measured' : formatSizeChange(r.gzip)}; ${cosine}`;
  }
  if (step.step === 'lowrank') {
    const r = step.report;
    const cosine = r.fidelity === undefined ? 'fidelity not measured' : `lowest cosine ${lowestCosine(r.fidelity)}`;
    return `${r.layers.length} layers factored, parameters ${groupDigits(r.parameters.before)} -> ${groupDigits(r.parameters.after)} (${r.parameters.ratio.toFixed(3)}x), ${formatSizeChange(r.size)}; ${cosine}`;
  }
  const r = step.report;
  return r.passed ? `passed (lowest cosine ${lowestCosine(r.fidelity)} against the input)` : `failed: ${r.misses.map(describeMiss).join('; ')}`;
}

function lowestCosine(report: EvalReport): string {
  const lowest = Math.min(...Object.values(report.outputs).map((o) => numberFromJson(o.cosine)));
  return Number.isFinite(lowest) ? lowest.toFixed(6) : String(lowest);
}

function fidelityTable(report: EvalReport): string[] {
  return renderTable(
    [{ header: 'output' }, { header: 'cosine', align: 'right' }, { header: 'SQNR dB', align: 'right' }, { header: 'top-1', align: 'right' }],
    Object.entries(report.outputs).map(([name, o]) => [
      name,
      typeof o.cosine === 'number' ? o.cosine.toFixed(6) : String(o.cosine),
      typeof o.sqnr_db === 'number' ? o.sqnr_db.toFixed(2) : String(o.sqnr_db),
      o.top1_agreement === undefined ? '' : `${(o.top1_agreement * 100).toFixed(2)}%`,
    ]),
    '  ',
  );
}
