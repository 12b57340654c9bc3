// `shrink run RECIPE MODEL -o OUT`: reads a recipe file (JSON or YAML; src/pipeline/recipe.ts)
// and the model, runs the recipe (src/pipeline/run-recipe.ts) and writes the result only after
// every step and gate passed and it loads in onnxruntime. A failed gate exits with code 3 and
// writes nothing. --data serves as calibration data too unless --calib is given. When a step
// fine-tunes (`epochs`) or --scale is given, --data must be training arrays (.npz keyed by input
// name, or .npy, with --labels or a 'labels' array), read as `shrink prune` reads them; the result
// is then checked on their first --samples (default 256). A recipe ending with `pack` writes a
// .shrink pack. `shrink compress` (compress-command.ts) runs recipes through executeRecipe too.
import * as fs from 'node:fs';
import * as path from 'node:path';
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
import { parseRecipe, type Recipe, stepTrains } from '../pipeline/recipe.js';
import { formatStages } from '../pipeline/recipe-stages.js';
import { writeFileAtomic } from '../node/atomic-file.js';
import { checkLoads } from '../node/load-check.js';
import { removeStaleTemps, removeTemp, tempPathFor, trackTemp } from '../node/temp-files.js';
import { unpack } from '../onnx/pack-decode.js';
import type { Labels } from '../eval/labels.js';
import { arrayCheckSamples } from './array-check-samples.js';
import { fraction } from './options.js';
import { readLabelledArrays, type LabelledArrays } from './training-data.js';
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
import { addBenchOption, firstInputs, formatSpeedLine, type SpeedReport, speedCheckWanted } from './speed-check.js';
import { generatedRanges } from '../eval/generated-ranges.js';

export interface RunFlags {
  output: string;
  data?: string;
  calib?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  externalData?: boolean;
  scale?: string;
  threads?: string;
  testData?: string;
  testLabels?: string;
  json?: boolean;
  bench?: boolean;
}

/** What `shrink run --json` prints. */
export type RunCommandReport = ReportEnvelope & RecipeReport & { recipe: string; speed?: SpeedReport };

export function registerRun(program: Command, context: CliContext): void {
  const command = program
    .command('run')
    .description('run a recipe file (optimize, quantize, prune, cluster, lowrank, gate steps in order, pack last) on a model; write the result only if every gate holds')
    .argument('<recipe>', 'the recipe: JSON or YAML, {"steps": [{"optimize": {}}, {"quantize": {"method": "int4"}}, {"gate": {"min_cosine": 0.99}}]}')
    .argument('<model>', 'the ONNX model to compress')
    .requiredOption('-o, --output <file>', 'where to write the result')
    .option('--data <path>', 'samples every step checks on (an ONNX test-data folder, .npy, .npz or .json); also the calibration data without --calib')
    .option('--calib <path>', 'calibration samples for static-int8 steps (default: --data)')
    .option('--labels <file>', 'class ids of --data: accuracy, and gates on max_accuracy_drop')
    .option('--samples <n>', 'compare at most this many samples (default: all of --data, 4 generated)')
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples (without --data): name=value,...')
    .option('--external-data', 'store the weights in OUTPUT.data beside the model (automatic over 2 GiB)')
    .option('--scale <factor>', 'training arrays (--data .npz/.npy): multiply input values by this, e.g. 1/255 for bytes 0-255')
    .option('--threads <n>', "onnxruntime intra-op threads for training (default: onnxruntime's choice)")
    .option('--test-data <file>', 'with training arrays: held-out arrays (same form and --scale) every step is measured on instead of the first --samples of --data')
    .option('--test-labels <file>', 'class ids of --test-data (or a labels array in it)')
    .option('--json', 'print the report as one JSON object');
  addBenchOption(command).action(async (recipeFile: string, input: string, flags: RunFlags, command: Command) => {
    const report = await executeRecipe(readRecipe(recipeFile), recipeFile, 'run', input, flags, cliRecipeContext(command, context.io));
    if (flags.json) for (const warning of report.warnings) context.io.stderr(`shrink: warning: ${warning.message}\n`);
    if (report.verdict.status === 'damaged') context.io.stderr(`shrink: warning: ${report.verdict.message}\n`);
    context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatRun(report));
  });
}

/** Whether `file` names training arrays (.npz or .npy). */
function isArrayFile(file: string): boolean {
  return ['.npz', '.npy'].includes(path.extname(file).toLowerCase());
}

/**
 * Runs `recipe` (named `recipeFile` in messages and the report) on `input` and writes the result:
 * the model, or the pack when the recipe ends with `pack`. Usage errors before any file is read.
 */
export async function executeRecipe(recipe: Recipe, recipeFile: string, command: string, input: string, flags: RunFlags, cliCtx: ReturnType<typeof cliRecipeContext>): Promise<RunCommandReport> {
  const packs = recipe.steps.at(-1)?.kind === 'pack';
  const training = recipe.steps.findIndex(stepTrains);
  const scale = flags.scale === undefined ? undefined : fraction(flags.scale, '--scale');
  const threads = flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads', 1);
  const ctx = threads === undefined ? cliCtx : { ...cliCtx, threads };
  if (packs && path.extname(flags.output).toLowerCase() === '.onnx') throw new UsageError(`-o ${flags.output}: ${recipeFile} ends with a pack step, which writes a .shrink pack, not ONNX: name the output .shrink`);
  if (!packs && path.extname(flags.output).toLowerCase() === '.shrink') throw new UsageError(`-o ${flags.output}: ${recipeFile} writes ONNX (add {"pack": {}} as the last step for a .shrink pack)`);
  if (packs && flags.externalData === true) throw new UsageError('--external-data: a pack holds the whole model (the pack step refuses external data)');
  if (training >= 0 && (flags.data === undefined || !isArrayFile(flags.data))) {
    throw new UsageError(`${recipeFile}: step ${training + 1} (${recipe.steps[training].kind}) has 'epochs': it fine-tunes on training arrays: give --data as an .npz or .npy${flags.data === undefined ? '' : ` (not ${flags.data})`}`);
  }
  if (scale !== undefined && (flags.data === undefined || !isArrayFile(flags.data))) throw new UsageError('--scale scales training arrays: give --data as an .npz or .npy');
  const arraysWanted = training >= 0 || scale !== undefined || flags.testData !== undefined;
  if (flags.testData !== undefined && (flags.data === undefined || !isArrayFile(flags.data) || !isArrayFile(flags.testData))) throw new UsageError('--test-data holds held-out training arrays: give it and --data as .npz or .npy');
  if (flags.testLabels !== undefined && flags.testData === undefined) throw new UsageError('--test-labels go with --test-data (the samples they label)');
  const samples = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 1);
  if (flags.labels !== undefined && flags.data === undefined) throw new UsageError('--labels go with --data (the samples they label)');
  if (flags.data !== undefined && flags.dims !== undefined) throw new UsageError('--dims shapes generated inputs and has no effect with --data');
  const staticSteps = recipe.steps.filter((s) => s.kind === 'quantize' && s.options.method === 'static-int8');
  if (staticSteps.length > 0 && flags.data === undefined && flags.calib === undefined) throw new UsageError(`${recipeFile}: static-int8 calibrates on samples: give --calib or --data`);
  if (recipe.steps.some((s) => s.kind === 'gate') && flags.data === undefined) throw new UsageError(`${recipeFile}: gates compare with the input on real samples: give --data`);
  checkOutput({ output: flags.output, flag: '-o', inputs: [input, recipeFile, flags.data, flags.calib, flags.labels, flags.testData, flags.testLabels], models: [input] });

  const model = loadModelFile(input);
  let arrays: LabelledArrays | undefined;
  let held: LabelledArrays | undefined;
  if (arraysWanted) {
    arrays = await readLabelledArrays({ data: flags.data as string, labels: flags.labels, models: [model], scale, requireLabels: false });
    if (flags.testData !== undefined) held = await readLabelledArrays({ data: flags.testData, labels: flags.testLabels, models: [model], scale, requireLabels: false });
  }
  const labels = flags.labels === undefined || arrays !== undefined ? undefined : readLabelsFile(flags.labels);
  const sources: SampleSource[] = [];
  const spill = spillForLargeModel(model, flags.output);
  try {
    const signature = modelSignature(model);
    // Training arrays are checked on their first --samples (scaled as for training, with their labels).
    // Held-out arrays are measured whole unless --samples says otherwise.
    const checked =
      held !== undefined
        ? arrayCheckSamples(model, { data: flags.testData, labels: flags.testLabels, dims: flags.dims }, held, samples ?? held.count)
        : arrays === undefined
          ? undefined
          : arrayCheckSamples(model, { data: flags.data, labels: flags.labels, dims: flags.dims }, arrays, samples);
    const data = checked !== undefined ? ('samples' in checked ? checked.samples : undefined) : flags.data === undefined ? undefined : await openSampleFile(flags.data, signature);
    const checkLabels: Labels | undefined = checked !== undefined && 'labels' in checked ? checked.labels : labels;
    if (data !== undefined && checked === undefined) sources.push(data);
    const calibration = flags.calib === undefined ? undefined : await openSampleFile(flags.calib, signature);
    if (calibration !== undefined) sources.push(calibration);
    let checkOn = data;
    let noDataReason: string | undefined = checked !== undefined && 'skipped' in checked ? checked.skipped : undefined;
    if (checkOn === undefined && noDataReason === undefined) {
      try {
        checkOn = generatedSamples(signature.inputs, { count: samples ?? 4, dims: parseDims(flags.dims), ranges: generatedRanges(model) });
      } catch (error) {
        noDataReason = `${(error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N')}, or pass --data`;
      }
    }
    let result: Awaited<ReturnType<typeof runRecipe>>;
    try {
      const training = arrays === undefined ? undefined : { inputs: arrays.inputs, labels: arrays.labels };
      const limit = data === undefined || checked !== undefined ? undefined : samples;
      result = await runRecipe(model, recipe, { data: checkOn, calibration, labels: checkLabels, limit, noDataReason, training, inputBytes: modelFileBytes(input, model) }, ctx, (i, total, name) =>
        ctx.debug?.(1, `${recipeFile}: step ${i + 1} of ${total}: ${name}`),
      );
    } catch (error) {
      if (error instanceof GateFailedError) throw error;
      throw inFile(input, error);
    }
    let saved: Pick<Awaited<ReturnType<typeof writeModelOutput>>, 'bytes' | 'warnings' | 'speed'>;
    if (result.pack !== undefined) {
      try {
        fs.mkdirSync(path.dirname(path.resolve(flags.output)), { recursive: true });
        await checkPackLoads(result.pack, flags.output);
        writeFileAtomic(flags.output, result.pack);
      } catch (error) {
        throw inFile(flags.output, error);
      }
      saved = { bytes: result.pack.length, warnings: [] };
    } else {
      // A pack is not timed: it is the file a page downloads; the model it decodes to is the last step's.
      const speed = speedCheckWanted(flags.bench) ? { original: { file: input, model }, inputs: await firstInputs(data), dims: parseDims(flags.dims) } : undefined;
      saved = await writeModelOutput(result.model, flags.output, { externalData: flags.externalData, speed });
    }
    const warnings = [...result.report.warnings, ...(result.report.fidelity?.warnings ?? []), ...saved.warnings];
    return {
      ...envelope({ command, input, output: flags.output, size: sizeChange(modelFileBytes(input, model), saved.bytes), warnings }, result.report, nodeEnvironment()),
      recipe: recipeFile,
      ...(saved.speed === undefined ? {} : { speed: saved.speed }),
    };
  } finally {
    for (const source of sources) await source.close?.();
    spill?.dispose();
  }
}

/** The model a pack decodes to must load in onnxruntime, as every written model must (checked from a temporary file beside `output`). */
async function checkPackLoads(pack: Uint8Array, output: string): Promise<void> {
  const onnx = unpack(pack);
  removeStaleTemps(path.dirname(path.resolve(output)));
  const temporary = tempPathFor(output);
  trackTemp(temporary);
  try {
    fs.writeFileSync(temporary, onnx);
    await checkLoads(temporary, onnx.length);
  } catch (error) {
    throw new Error(`onnxruntime cannot load the model the pack decodes to (${(error as Error).message}); nothing was written`);
  } finally {
    removeTemp(temporary);
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
  if (report.stages.length > 1) lines.push('', 'stages (against the input):', ...formatStages(report.stages));
  if (report.fidelity !== undefined) {
    lines.push('', `fidelity of the result on ${report.fidelity.samples} sample${report.fidelity.samples === 1 ? '' : 's'} (${report.fidelity.data}):`, ...fidelityTable(report.fidelity));
    const a = report.fidelity.accuracy;
    if (a !== undefined) {
      const change = (a.candidate - a.original) * 100;
      lines.push(`accuracy on ${groupDigits(a.total)} labels: input ${(a.original * 100).toFixed(2)}%, result ${(a.candidate * 100).toFixed(2)}% (${change >= 0 ? '+' : ''}${change.toFixed(2)} points)`);
    }
  } else lines.push(`fidelity   not measured: ${report.fidelity_skipped}`);
  if (report.speed !== undefined) lines.push(formatSpeedLine(report.speed).trimEnd());
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
  if (step.step === 'pack') return `${groupDigits(step.report.onnx_bytes)} B ONNX -> ${groupDigits(step.report.pack_bytes)} B pack (${step.report.pack_ratio.toFixed(2)}x smaller)`;
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
