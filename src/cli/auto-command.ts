// `shrink auto IN -o OUT_DIR --data D [--labels L] --max-drop P`: compress to a budget. --data (an
// .npz/.npy of inputs, with class ids) is split: the first half (at most 512 samples) calibrates
// and trains, the next samples (at most 2000) tune, i.e. decide which candidates meet the budget;
// --test-data, which the search never sees, measures the chosen model at the end. The search itself
// is src/pipeline/auto.ts; here: files, latency on this machine (the input and each candidate
// interleaved, ~1 s), the cache that lets a stopped search resume, and the outputs:
//   OUT_DIR/model.onnx        the chosen model (written after the load check, as every command does)
//   OUT_DIR/recipe.json       the recipe that reproduces it with `shrink run`
//   OUT_DIR/candidates.json   every candidate measured, Pareto front marked
//   OUT_DIR/report.html       the trade-off chart (quality against size and latency), all candidates timed together
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { benchInputs } from '../eval/bench-inputs.js';
import { benchmarkModels } from '../eval/benchmark.js';
import type { EvalReport } from '../eval/eval-report.js';
import { measureFidelity } from '../pipeline/fidelity.js';
import type { Model } from '../ir/model.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import { profileNodes } from '../node/node-profile.js';
import { nodeOrt } from '../node/ort-node.js';
import { reportModelFromFile, writeReportFile } from '../node/report-assets.js';
import { writeFileAtomic } from '../node/atomic-file.js';
import { writeModel } from '../onnx/model-io.js';
import { type AutoTarget, autoSearch, type CandidateOutcome, candidateQuality, describeOutcome, qualityName } from '../pipeline/auto.js';
import type { LayerProfile } from '../pipeline/auto-mixed.js';
import type { GroupScan } from '../pipeline/auto-prune.js';
import { arrayLabels, arraySamples } from '../pipeline/prune-data.js';
import { envelope } from '../pipeline/report-envelope.js';
import { UsageError } from './errors.js';
import { loadModelFile } from './input-files.js';
import type { CliContext } from './main.js';
import { writeModelOutput } from './model-output.js';
import { fraction, positiveNumber, wholeNumber } from './options.js';
import { refuseInputs } from './output-checks.js';
import { cliRecipeContext } from './recipe-context.js';
import { readLabelledArrays } from './training-data.js';
import { type AutoDataFiles, autoData, autoLatencies, autoLatency } from './auto-data.js';

interface AutoFlags {
  output: string;
  data: string;
  labels?: string;
  scale?: string;
  maxDrop?: string;
  minCosine?: string;
  metric?: string;
  minMetric?: string;
  target: AutoTarget;
  timeBudget: string;
  batch: string;
  testData?: string;
  testLabels?: string;
  queue?: string;
  json?: boolean;
}

export function registerAuto(program: Command, context: CliContext): void {
  program
    .command('auto')
    .description('search compression recipes for the smallest or fastest model within an accuracy or fidelity budget; writes the model, its recipe, every candidate and a report')
    .argument('<input>', 'the ONNX model to compress')
    .requiredOption('-o, --output <dir>', 'folder for model.onnx, recipe.json, candidates.json and report.html')
    .requiredOption('--data <file>', 'samples as .npz (keyed by input name, class ids under "labels") or .npy: the first half calibrates (at most 512), the rest tunes (at most 2000)')
    .option('--labels <file>', 'class ids of --data (.npy)')
    .option('--scale <factor>', 'multiply input values by this, e.g. 1/255 for bytes 0-255')
    .option('--max-drop <points>', 'largest accuracy loss allowed, in points (needs labels)')
    .option('--min-cosine <c>', 'lowest output cosine allowed against the input (default 0.99 without --max-drop or --min-metric)')
    .option('--metric <module>', 'a .js/.ts module exporting (reference, candidate, sample) => number, averaged over the tuning samples')
    .option('--min-metric <x>', 'lowest mean of --metric allowed (e.g. a text-mask IoU of 0.95)')
    .addOption(new Option('--target <what>', 'what to minimise within the budget: file size, latency, or size among the candidates faster than the input').choices(['size', 'latency', 'both']).default('both'))
    .option('--time-budget <duration>', 'stop starting candidates after this long (90s, 10m, 1h); the search resumes from its cache', '10m')
    .option('--batch <n>', 'batch size the latency is measured at', '1')
    .option('--test-data <file>', 'held-out samples (same form and --scale as --data) the chosen model is measured on at the end')
    .option('--test-labels <file>', 'class ids of --test-data')
    .option('--queue <url>', 'evaluate candidates on shrink workers through the job queue at redis://HOST:PORT (they read the model and data by path)')
    .option('--json', 'print the report as one JSON object')
    .action(async (input: string, flags: AutoFlags, command: Command) => {
      const report = await runAuto(input, flags, cliRecipeContext(command, context.io), (line) => context.io.stderr(`${line}\n`));
      context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatAuto(report));
    });
}

async function runAuto(input: string, flags: AutoFlags, ctx: ReturnType<typeof cliRecipeContext>, log: (line: string) => void) {
  const maxDrop = flags.maxDrop === undefined ? undefined : positiveNumber(flags.maxDrop, '--max-drop');
  const minCosine = flags.minCosine === undefined ? undefined : Number(flags.minCosine);
  if (minCosine !== undefined && !(minCosine >= -1 && minCosine <= 1)) throw new UsageError(`--min-cosine must be a number from -1 to 1, got '${flags.minCosine}'`);
  const minMetric = flags.minMetric === undefined ? undefined : Number(flags.minMetric);
  if (minMetric !== undefined && (!Number.isFinite(minMetric) || flags.metric === undefined)) throw new UsageError(flags.metric === undefined ? '--min-metric needs --metric MODULE' : `--min-metric must be a number, got '${flags.minMetric}'`);
  const timeBudgetMs = duration(flags.timeBudget);
  const batch = wholeNumber(flags.batch, '--batch', 1);
  const scale = flags.scale === undefined ? undefined : fraction(flags.scale, '--scale');
  if (flags.testLabels !== undefined && flags.testData === undefined) throw new UsageError('--test-labels go with --test-data');
  for (const file of [input, flags.data, flags.labels, flags.testData, flags.testLabels, flags.metric]) {
    if (file !== undefined && path.resolve(file) === path.resolve(flags.output)) throw new UsageError(`-o ${flags.output}: that is an input of this command`);
  }
  if (fs.existsSync(flags.output) && !fs.statSync(flags.output).isDirectory()) throw new UsageError(`-o ${flags.output}: a file; give a folder for the model, its recipe and the report`);
  const outputs = ['model.onnx', 'recipe.json', 'candidates.json', 'report.html'].map((f) => path.join(flags.output, f));
  refuseInputs(path.resolve(outputs[0]), { output: outputs[0], flag: '-o', inputs: [input, flags.data, flags.labels, flags.testData, flags.testLabels] });

  const model = loadModelFile(input);
  const files: AutoDataFiles = { model: input, data: flags.data, labels: flags.labels, scale, metric: flags.metric, requireLabels: maxDrop !== undefined };
  const { recipeData: data, calibration: calibrationCount, tuning: tuningCount, hasLabels } = await autoData(model, files);
  const metric = data.metric;
  const budget = { maxDrop, minCosine, minMetric };

  fs.mkdirSync(flags.output, { recursive: true });
  const cacheFile = path.join(flags.output, '.shrink-auto-cache.json');
  const cache = readJson<Record<string, CandidateOutcome>>(cacheFile);
  // Beside the candidates' cache: per-layer sensitivity and the latency cost model, by input, data and base recipe.
  const profileFile = path.join(flags.output, '.shrink-auto-layers.json');
  const groupsFile = path.join(flags.output, '.shrink-auto-groups.json');
  const searchKey = hash([fileIdentity(input), fileIdentity(flags.data), flags.labels && fileIdentity(flags.labels), flags.metric && fileIdentity(flags.metric), String(scale), String(batch), String(calibrationCount), String(tuningCount)].join('\n'));
  const keyOf = (recipe: unknown) => hash(`${searchKey}\n${JSON.stringify(recipe)}`);
  const storeOutcome = (outcome: CandidateOutcome) => {
    cache[keyOf(outcome.recipe)] = outcome;
    writeFileAtomic(cacheFile, JSON.stringify(cache, null, 1));
  };
  let waves = 0;
  // Where each job's time went: waiting for a worker, running, and coming back to this process.
  const queueJobs: { candidate: string; wait_ms: number; run_ms: number; return_ms: number }[] = [];
  const originalBytes = writeModel(model);
  const started = performance.now();
  const result = await autoSearch(
    model,
    data,
    { budget, target: flags.target, canTrain: hasLabels },
    ctx,
    {
      latency: (candidate) => autoLatency(model, originalBytes, candidate, batch),
      latencyTogether: (candidates) => autoLatencies(model, originalBytes, candidates, batch),
      // On a queue, each wave of candidates goes to the workers at once; they read the files by path.
      // Each outcome is cached as it arrives, so a search stopped mid-wave keeps what finished.
      evaluateMany:
        flags.queue === undefined
          ? undefined
          : async (candidates) => {
              const { dispatchJobs } = await import('../node/queue/dispatch.js');
              const job = { ...files, model: path.resolve(input), data: path.resolve(flags.data), labels: flags.labels && path.resolve(flags.labels), metric: flags.metric && path.resolve(flags.metric), budget, batch };
              const outcomes = await dispatchJobs(
                flags.queue as string,
                'evaluate',
                candidates.map((c) => ({ ...job, name: c.name, recipe: c.recipe })),
                // After the first wave the workers were there: give them time to reconnect after a Redis restart.
                {
                  onResult: (_, outcome) => storeOutcome(outcome),
                  onTiming: (i, t) => queueJobs.push({ candidate: candidates[i].name, wait_ms: t.started - t.added, run_ms: t.finished - t.started, return_ms: t.seen - t.finished }),
                  waitForWorkersMs: waves++ === 0 ? 0 : 30_000,
                  log,
                },
              );
              return outcomes;
            },
      // The layer profile (per-layer sensitivity, latency cost model) is measured once per input, data and base recipe.
      layerProfile: async (base, measure) => {
        const key = keyOf({ layerProfile: base.recipe });
        const profiles = readJson<Record<string, LayerProfile>>(profileFile);
        if (profiles[key] !== undefined) {
          log(`auto: layer profile of ${base.name}: cached (${profileFile})`);
          return profiles[key];
        }
        const profile = await measure();
        writeFileAtomic(profileFile, JSON.stringify({ ...readJson<Record<string, LayerProfile>>(profileFile), [key]: profile }));
        return profile;
      },
      // The channel-group scan of the pruned + int8 generator, also once per input and data.
      groupScan: async (measure) => {
        const key = keyOf({ groupScan: 1 });
        const scans = readJson<Record<string, GroupScan>>(groupsFile);
        if (scans[key] !== undefined) {
          log(`auto: channel-group scan: cached (${groupsFile})`);
          return scans[key];
        }
        const scan = await measure();
        writeFileAtomic(groupsFile, JSON.stringify({ ...readJson<Record<string, GroupScan>>(groupsFile), [key]: scan }));
        return scan;
      },
      profileNodes: async (bytes) => profileNodes(bytes, await benchInputs(model, { batch })),
      cached: (candidate) => cache[keyOf(candidate.recipe)],
      store: storeOutcome,
      timeLeft: () => timeBudgetMs - (performance.now() - started),
      log,
    },
  );
  if (result.best === undefined || result.model === undefined) throw new Error(`${input}: no candidate could be measured (${result.candidates.map((c) => `${c.name}: ${c.why_not}`).join('; ')})`);

  // The chosen model on held-out data the search never saw.
  let heldOut: { samples: number; accuracy?: { original: number; candidate: number; drop_points: number }; cosine: number; metric?: number; data: string } | undefined;
  if (flags.testData !== undefined) {
    const test = await readLabelledArrays({ data: flags.testData, labels: flags.testLabels, models: [model], scale, requireLabels: false });
    const report = await measureFidelity(model, result.model, { samples: arraySamples(test.inputs, flags.testData), labels: test.labels === undefined ? undefined : arrayLabels(test.labels, flags.testLabels ?? `${flags.testData}[labels]`), metric }, ctx);
    const a = report.accuracy;
    heldOut = {
      samples: report.samples,
      data: report.data,
      cosine: Math.min(...Object.values(report.outputs).map((o) => (typeof o.cosine === 'number' ? o.cosine : Number.NaN))),
      metric: typeof report.custom?.mean === 'number' ? report.custom.mean : undefined,
      accuracy: a === undefined ? undefined : { original: a.original, candidate: a.candidate, drop_points: (a.original - a.candidate) * 100 },
    };
  }

  const saved = await writeModelOutput(result.model, outputs[0]);
  writeFileAtomic(outputs[1], `${JSON.stringify(result.best.recipe, null, 2)}\n`);
  writeFileAtomic(outputs[2], `${JSON.stringify(result.candidates, null, 2)}\n`);
  await writeReport(outputs[3], input, model, result, batch);
  const warnings = [...saved.warnings];
  if (result.missed !== undefined) warnings.push({ code: 'budget-missed', message: `no candidate met the budget; the closest, ${result.best.name}, misses it: ${result.missed}` });
  if (result.skipped.length > 0) warnings.push({ code: 'time-budget', message: `the time budget ran out before ${result.skipped.join(', ')}; run again to go on from the cache` });
  if (heldOut === undefined) warnings.push({ code: 'no-held-out', message: 'the figures come from the samples the search chose on; give --test-data for numbers on data it never saw' });
  return envelope(
    { command: 'auto', input, output: flags.output, size: { before: modelFileBytes(input, model), after: saved.bytes, ratio: saved.bytes / modelFileBytes(input, model) }, warnings },
    {
      chosen: result.best.name,
      target: flags.target,
      budget: { max_drop: maxDrop, min_cosine: minCosine, min_metric: minMetric },
      split: { calibration: calibrationCount, tuning: tuningCount },
      held_out: heldOut,
      candidates: result.candidates,
      skipped: result.skipped,
      seconds: (performance.now() - started) / 1000,
      queue: flags.queue === undefined ? undefined : { url: flags.queue, jobs: queueJobs },
      files: { model: outputs[0], recipe: outputs[1], candidates: outputs[2], report: outputs[3] },
    },
    nodeEnvironment(),
  );
}

/** Every candidate that produced a model, timed together with the input, and their fidelity. */
async function writeReport(file: string, input: string, model: Model, result: Awaited<ReturnType<typeof autoSearch>>, batch: number): Promise<void> {
  // Candidates read from the cache have no model in memory: the report shows those run now.
  const shown = result.candidates.filter((c) => result.models.has(c.name) && result.evals.has(c.name));
  const bench = await benchmarkModels(
    nodeOrt,
    [{ name: path.basename(input), source: writeModel(model), model }, ...shown.map((c) => ({ name: c.name, source: writeModel(result.models.get(c.name) as Model) }))],
    { batch, runs: 20, warmup: 2, threads: 1, graphOptimization: 'all' },
  );
  writeReportFile(file, {
    title: `shrink auto: ${path.basename(input)}`,
    models: [reportModelFromFile(input, path.basename(input)), ...shown.map((c) => ({ name: c.name, bytes: c.bytes }))],
    bench,
    evals: shown.map((c) => ({ model: c.name, report: result.evals.get(c.name) as EvalReport })),
    // Every candidate, cached ones too, with the Pareto front the search marked.
    search: {
      quality: qualityName(result.candidates),
      candidates: result.candidates.map((c) => ({
        name: c.name,
        quality: c.bytes > 0 ? candidateQuality(c) : undefined,
        size_ratio: c.size_ratio,
        speedup: c.latency?.speedup,
        feasible: c.feasible,
        pareto: c.pareto === true,
        chosen: c.name === result.best?.name,
        cached: c.cached,
        why_not: c.why_not,
      })),
    },
  });
}

function duration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new UsageError(`--time-budget must be a duration like 90s, 10m or 1h, got '${text}'`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

function fileIdentity(file: string): string {
  const stat = fs.statSync(file);
  return `${path.resolve(file)}:${stat.size}:${stat.mtimeMs}`;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** A cache file's JSON; an empty cache when it is missing or unreadable. */
function readJson<T extends object>(file: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return {} as T;
  }
}

type AutoReport = Awaited<ReturnType<typeof runAuto>>;

function formatAuto(report: AutoReport): string {
  const lines = [`input      ${report.input}`, `output     ${report.output}`, ''];
  for (const c of report.candidates) lines.push(`${c.name === report.chosen ? '*' : c.pareto ? '+' : ' '} ${c.name.padEnd(26)} ${describeOutcome(c)}${c.cached ? ' (cached)' : ''}`);
  lines.push('', `chosen     ${report.chosen} (* chosen, + on the Pareto front of quality, size and latency)`);
  if (report.size !== undefined) lines.push(`size       ${report.size.before} -> ${report.size.after} bytes (${report.size.ratio.toFixed(3)}x)`);
  const h = report.held_out;
  if (h !== undefined) {
    const q = h.metric !== undefined ? `metric ${h.metric.toFixed(4)}, lowest cosine ${h.cosine.toFixed(6)}` : h.accuracy !== undefined ? `accuracy ${(h.accuracy.original * 100).toFixed(2)}% -> ${(h.accuracy.candidate * 100).toFixed(2)}% (${h.accuracy.drop_points >= 0 ? '-' : '+'}${Math.abs(h.accuracy.drop_points).toFixed(2)} points)` : `lowest cosine ${h.cosine.toFixed(6)}`;
    lines.push(`held out   ${q} on ${h.samples} samples the search never saw (${h.data})`);
  }
  lines.push(`search     ${report.candidates.length} candidates in ${report.seconds.toFixed(1)} s; calibration ${report.split.calibration} samples, tuning ${report.split.tuning}`);
  lines.push(`files      ${Object.values(report.files).join(', ')}`);
  for (const w of report.warnings) lines.push(`warning: ${w.message}`);
  return `${lines.join('\n')}\n`;
}
