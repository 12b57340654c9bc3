// PP-OCRv4 rec as a .shrink pack (issue 13): how small the recogniser gets and how many held-out
// lines it still reads exactly as the original does. No labels: the reference is the original
// model's own greedy-CTC reading, and recovery is distillation from the original.
//
// Data: scripts/make-rec-corpus.ts renders (ImageMagick; the bench runs it when bench/work has no
// corpus) training lines (the first 640 of 1,200 by default) and 200 held-out lines in other fonts, other texts and another seed.
// Training lines feed k-means importance and the centroid distillation; held-out lines only the
// measurements below.
//
// Two routes, each a recipe file that `shrink run` runs as it is:
//   shrink run RECIPE REC.onnx -o rec.shrink --data bench/work/rec-corpus-1200/train-x.npy
// - bench/recipes/pack-rec.yaml: k-means codebooks (mixed bits per layer), centroids distilled
//   from the original's logits (KL per time step, BatchNormalization frozen);
// - bench/recipes/pack-rec-uniform.yaml: uniform codes (a step per channel, no codebooks; the pack
//   entropy-codes the codes), float weights trained under fake quantization (KL per time step).
// Stages of each: Q (no training), Q+D (distilled), Q+D+H (the pack; lines read by the model the
// pack decodes to). Beside them, trade-off curves without training (ratio against lines identical).
// PACK_REC_ROUTES=uniform runs only the uniform route and carries the k-means rows over from the
// last bench/results/pack-rec.json (marked as such): its distillation alone takes 10+ minutes.
// PACK_REC_TUNING=FROM-TO (e.g. 1000-1199, lines of the 1,200-line corpus's training set beyond
// the trained ones) adds a tuning column: the same lines-identical count on those lines, which
// chooses settings while the held-out column is only measured. PACK_REC_KMEANS_RECIPE runs
// another k-means recipe file (a candidate); PACK_REC_SAVE=DIR writes each route's pack there.
// PACK_REC_CALIB=FROM-TO: the calibration lines (--calib) a cluster step's fit_output_bias fits on
// (default: after the trained lines, before the tuning lines: 640-999). PACK_REC_AUGMENT=strokes
// trains on the training lines and a copy of each with thicker or thinner strokes (lib/rec-corpus.ts
// strokeVariants; session 13: 3 epochs over the 1,280 lines read 96% of tuning lines, 92.5% held out).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeNpy } from '../src/eval/npy.js';
import { cosineSimilarity } from '../src/eval/metrics.js';
import { DataType } from '../src/ir/dtype.js';
import { packOnnx } from '../src/methods/pack/pack.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { unpack } from '../src/onnx/pack-decode.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import type { OutputBiasReport } from '../src/pipeline/fit-output-bias.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { parseRecipe, type Recipe } from '../src/pipeline/recipe.js';
import { runRecipe } from '../src/pipeline/run-recipe.js';
import { OCR } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { ensureRecCorpus, joinRecSets, lineRangeFromEnv, loadRecSet, strokeVariants, REC_CORPUS, type RecReading, type RecSet, readRecSet, recRange, sameLines, sameLinesIgnoringSpaces } from './lib/rec-corpus.js';
import type { Bench } from './run.js';

const REC = join(OCR, 'ch_PP-OCRv4_rec_infer.onnx');
const ROUTES = [
  { name: 'k-means', recipe: process.env.PACK_REC_KMEANS_RECIPE ?? 'bench/recipes/pack-rec.yaml' },
  { name: 'uniform', recipe: 'bench/recipes/pack-rec-uniform.yaml' },
];
const RESULTS = 'bench/results/pack-rec.json';
const CARRIED = ' (carried over from ';
const ctx: RecipeContext = { ort: nodeOrt, threads: 2 };
const round = (x: number, digits: number) => Number(x.toFixed(digits));

interface Row {
  route?: string;
  stage: string;
  settings: string;
  onnx_bytes: number;
  pack_bytes: number;
  /** float32 file bytes / pack bytes. */
  ratio: number;
  /** Share of held-out lines read exactly as the original reads them (percent). */
  lines_identical: number;
  /** The same once spaces are dropped (most changed lines gain or lose a space); absent in rows carried from before it was measured. */
  lines_ignoring_spaces?: number;
  /** Cosine of the softmax outputs over all held-out lines. */
  cosine: number;
  /** With PACK_REC_TUNING: lines identical (and ignoring spaces) on the tuning lines, in percent. */
  tuning_identical?: number;
  tuning_ignoring_spaces?: number;
  /** Final stages: the lines read differently, original's reading then this model's (held-out, then tuning). */
  misses?: { held_out: [string, string][]; tuning?: [string, string][] };
  seconds: number;
}

/** The recipe without its fine-tuning and pack: the Q stage alone. */
function withoutTraining(recipe: Recipe): Recipe {
  return { ...recipe, steps: recipe.steps.filter((s) => s.kind !== 'pack').map((s) => (s.kind === 'cluster' || s.kind === 'prune' || s.kind === 'lowrank' ? { ...s, training: undefined } : s)) };
}

/** Settings of the trade-off curves: one cluster step each, no training. */
const CURVE: { route: string; settings: string; yaml: string }[] = [
  ...[0.2, 0.25, 0.3, 0.35, 0.4].map((step) => ({ route: 'uniform', settings: `uniform codes per channel, step ${step} x RMS`, yaml: `{step: ${step}, per_channel: true, half_codebooks: true}` })),
  { route: 'k-means', settings: '3 bits per channel, depthwise 8 bits per tensor, head 4 bits per 32 classes', yaml: "{bits: 3, per_channel: true, half_codebooks: true, layers: [{pattern: '^p2o.Conv.(1|3|5|7|9|11|13|15|17|19|21|25|29|31)$', bits: 8, group: 100000}, {pattern: '^p2o.MatMul.24$', bits: 4, group: 32}]}" },
  { route: 'k-means', settings: '4 bits per channel, depthwise 8 bits per tensor, head 4 bits per 8 classes', yaml: "{bits: 4, per_channel: true, half_codebooks: true, layers: [{pattern: '^p2o.Conv.(1|3|5|7|9|11|13|15|17|19|21|25|29|31)$', bits: 8, group: 100000}, {pattern: '^p2o.MatMul.24$', group: 8}]}" },
  { route: 'k-means', settings: '5 bits per channel, depthwise 8 bits per tensor, head 5 bits per 8 classes', yaml: "{bits: 5, per_channel: true, half_codebooks: true, layers: [{pattern: '^p2o.Conv.(1|3|5|7|9|11|13|15|17|19|21|25|29|31)$', bits: 8, group: 100000}, {pattern: '^p2o.MatMul.24$', group: 8}]}" },
  { route: 'k-means', settings: '6 bits per channel, depthwise 8 bits per tensor, head 6 bits per 8 classes', yaml: "{bits: 6, per_channel: true, half_codebooks: true, layers: [{pattern: '^p2o.Conv.(1|3|5|7|9|11|13|15|17|19|21|25|29|31)$', bits: 8, group: 100000}, {pattern: '^p2o.MatMul.24$', group: 8}]}" },
];

interface RouteResult {
  route: string;
  recipe: string;
  description: string;
  recipe_text?: string;
  decodes_identically: boolean;
  finetune: unknown;
  /** The offsets a cluster step's fit_output_bias fitted on the calibration lines. */
  output_bias?: OutputBiasReport;
  rows: Row[];
}

export const packRecBench: Bench = {
  name: 'pack-rec',
  async run(log) {
    const machine = machineInfo();
    // PACK_REC_TRAIN_LINES (default 640) above 480 trains on the first N lines of a 1,200-line
    // corpus (its first 480 lines and its held-out lines are the 480-line corpus's own).
    const trainLines = Number(process.env.PACK_REC_TRAIN_LINES ?? 640);
    // PACK_REC_TRAIN_EXTRA=FROM-TO (default 1200-1999; empty: none) adds the lines FROM-TO, after
    // the tuning lines, to the training lines, from a corpus rendered with that many (a 2,000-line
    // corpus's first 1,200 lines are the 1,200-line corpus's own).
    const extra = lineRangeFromEnv('PACK_REC_TRAIN_EXTRA', '1200-1999');
    const corpusLines = extra ? extra.to + 1 : trainLines > 480 ? 1200 : 480;
    const corpus = corpusLines > 480 ? `${REC_CORPUS}-${corpusLines}` : REC_CORPUS;
    ensureRecCorpus(corpus, log, corpusLines > 480 ? { train: corpusLines } : {});
    const all = await loadRecSet('train', corpus);
    if (!(trainLines > 0 && trainLines <= all.count)) throw new Error(`PACK_REC_TRAIN_LINES=${trainLines}: ${corpus} has ${all.count} training lines`);
    const first: RecSet = { x: all.x.subarray(0, trainLines * 3 * 48 * 320), count: trainLines, texts: all.texts.slice(0, trainLines) };
    const lines = extra ? joinRecSets(first, recRange(all, extra.from, extra.count)) : first;
    // PACK_REC_AUGMENT=strokes: the training lines and, after them, each again with thicker or thinner strokes.
    const augment = process.env.PACK_REC_AUGMENT;
    if (augment !== undefined && augment !== 'strokes') throw new Error(`PACK_REC_AUGMENT=${augment}: the one augmentation is 'strokes'`);
    const train: RecSet = augment === undefined ? lines : joinRecSets(lines, strokeVariants(lines, 7));
    const held = await loadRecSet('heldout', corpus);
    const tuningRange = lineRangeFromEnv('PACK_REC_TUNING');
    const tuning = tuningRange === undefined ? undefined : recRange(all, tuningRange.from, tuningRange.count);
    if (tuningRange && tuningRange.from < trainLines) throw new Error(`PACK_REC_TUNING=${process.env.PACK_REC_TUNING} overlaps the ${trainLines} training lines`);
    if (tuningRange && extra && tuningRange.to >= extra.from) throw new Error(`PACK_REC_TUNING=${process.env.PACK_REC_TUNING} overlaps the extra training lines ${process.env.PACK_REC_TRAIN_EXTRA ?? '1200-1999'}`);
    // The training lines as the .npy that `shrink run --data` takes (float32 [N, 3, 48, 320]).
    const npy = join(corpus, augment === undefined ? 'train-x.npy' : `train-x-${augment}.npy`);
    writeFileSync(npy, writeNpy({ dataType: DataType.FLOAT, dims: [train.count, 3, 48, 320], data: new Uint8Array(train.x.buffer, train.x.byteOffset, train.x.byteLength) }));
    const rec = loadModel(REC);
    const floatBytes = readFileSync(REC).byteLength;
    const reference = await readRecSet(nodeOrt, rec, held);
    const tuningReference = tuning === undefined ? undefined : await readRecSet(nodeOrt, rec, tuning);
    log(`original: ${held.count} held-out lines read; ${train.count} training lines${tuning === undefined ? '' : `; ${tuning.count} tuning lines (${process.env.PACK_REC_TUNING})`}`);
    const differing = (want: readonly string[], got: readonly string[]): [string, string][] => want.flatMap((w, i) => (w === got[i] ? [] : [[w, got[i]] as [string, string]]));
    const measure = async (stage: string, settings: string, onnx: Uint8Array, pack: Uint8Array, seconds: number, withMisses = false): Promise<Row> => {
      const reading: RecReading = await readRecSet(nodeOrt, onnx, held);
      const tuned = tuning === undefined || tuningReference === undefined ? undefined : (await readRecSet(nodeOrt, onnx, tuning)).texts;
      const tuningColumns = tuned === undefined || tuningReference === undefined ? {} : { tuning_identical: round(100 * sameLines(tuningReference.texts, tuned), 1), tuning_ignoring_spaces: round(100 * sameLinesIgnoringSpaces(tuningReference.texts, tuned), 1) };
      const misses = withMisses ? { misses: { held_out: differing(reference.texts, reading.texts), ...(tuned === undefined || tuningReference === undefined ? {} : { tuning: differing(tuningReference.texts, tuned) }) } } : {};
      const row = { stage, settings, onnx_bytes: onnx.byteLength, pack_bytes: pack.byteLength, ratio: round(floatBytes / pack.byteLength, 2), lines_identical: round(100 * sameLines(reference.texts, reading.texts), 1), lines_ignoring_spaces: round(100 * sameLinesIgnoringSpaces(reference.texts, reading.texts), 1), cosine: round(cosineSimilarity(reference.probs, reading.probs), 4), ...tuningColumns, ...misses, seconds: round(seconds, 1) };
      log(`${stage} (${settings}): pack ${row.pack_bytes} B = ${row.ratio}x, ${row.lines_identical}% of lines identical (${row.lines_ignoring_spaces}% ignoring spaces), cosine ${row.cosine}${tuned === undefined ? '' : `; tuning lines ${row.tuning_identical}% (${row.tuning_ignoring_spaces}% ignoring spaces)`}`);
      return row;
    };
    const floatPack = packOnnx(new Uint8Array(readFileSync(REC))).pack;
    const rows: Row[] = [await measure('float32', 'the original file', new Uint8Array(readFileSync(REC)), floatPack, 0)];

    // Calibration samples (--calib of `shrink run`): what a cluster step's fit_output_bias fits on.
    // PACK_REC_CALIB=FROM-TO, default the lines after the trained ones up to the tuning lines (or
    // 999): lines neither the centroids trained on nor the tuning or held-out columns judge.
    const calibFrom = trainLines;
    const calibTo = (tuningRange === undefined ? Math.min(all.count, 1000) : tuningRange.from) - 1;
    const calibRange = (process.env.PACK_REC_CALIB ?? (calibTo >= calibFrom ? `${calibFrom}-${calibTo}` : '')).match(/^(\d+)-(\d+)$/);
    if (process.env.PACK_REC_CALIB !== undefined && calibRange === null) throw new Error(`PACK_REC_CALIB=${process.env.PACK_REC_CALIB}: give FROM-TO, e.g. 640-999`);
    if (calibRange !== null) {
      const [from, to] = [Number(calibRange[1]), Number(calibRange[2])];
      if (from < trainLines || to >= all.count || (tuningRange && to >= tuningRange.from && from <= tuningRange.to)) throw new Error(`calibration lines ${from}-${to} overlap the training or tuning lines, or pass the corpus's ${all.count}`);
    }
    // The calibration lines as the .npy that `shrink run --calib` takes.
    const calibNpy = join(corpus, 'calib-x.npy');
    if (calibRange !== null) {
      const lines = all.x.subarray(Number(calibRange[1]) * 3 * 48 * 320, (Number(calibRange[2]) + 1) * 3 * 48 * 320);
      writeFileSync(calibNpy, writeNpy({ dataType: DataType.FLOAT, dims: [lines.length / (3 * 48 * 320), 3, 48, 320], data: new Uint8Array(lines.buffer, lines.byteOffset, lines.byteLength) }));
    }
    const calibration = calibRange === null ? undefined : arraySamples({ x: { data: all.x, sampleDims: [3, 48, 320], dataType: DataType.FLOAT } }, `training lines ${calibRange[1]}-${calibRange[2]}`, Number(calibRange[2]) - Number(calibRange[1]) + 1, Number(calibRange[1]));
    const data = (set: RecSet) => ({ training: { inputs: { x: { data: set.x, sampleDims: [3, 48, 320], dataType: DataType.FLOAT } } }, ...(calibration === undefined ? {} : { calibration }), noDataReason: 'measured by the bench on held-out lines', inputBytes: floatBytes });
    const only = process.env.PACK_REC_ROUTES?.split(',');
    const previous = only === undefined ? undefined : (JSON.parse(readFileSync(RESULTS, 'utf8')) as { stages: Row[]; curve: Row[]; routes?: RouteResult[]; machine: { date: string; loadAverage: string }; finetune?: unknown });
    // A row carried twice keeps its first note (the run that measured it).
    const carried = (r: Row): Row => ({ ...r, route: r.route ?? 'k-means', settings: r.settings.includes(CARRIED) ? r.settings : `${r.settings}${CARRIED}${previous?.machine.date}, load ${previous?.machine.loadAverage})` });
    const routes: RouteResult[] = [];
    for (const route of ROUTES) {
      if (only !== undefined && !only.includes(route.name)) {
        const old = previous?.routes?.find((r) => r.route === route.name);
        if (old !== undefined) routes.push({ ...old, rows: old.rows.map(carried) });
        else if (previous !== undefined && route.name === 'k-means') routes.push({ route: route.name, recipe: route.recipe, description: parseRecipe(readFileSync(route.recipe, 'utf8'), route.recipe).description ?? '', decodes_identically: true, finetune: previous.finetune, rows: previous.stages.filter((r) => r.stage !== 'float32').map(carried) });
        continue;
      }
      const recipeText = readFileSync(route.recipe, 'utf8');
      const recipe = parseRecipe(recipeText, route.recipe);
      let started = performance.now();
      const q = await runRecipe(rec, withoutTraining(recipe), data(train), ctx);
      const qBytes = writeModel(q.model);
      const routeRows: Row[] = [{ route: route.name, ...(await measure('Q', `${route.name}: the recipe's codes, no training`, qBytes, packOnnx(qBytes).pack, (performance.now() - started) / 1000)) }];
      started = performance.now();
      const full = await runRecipe(rec, recipe, data(train), ctx, (i, n, name) => log(`${route.name}: recipe step ${i + 1}/${n}: ${name}`));
      const seconds = (performance.now() - started) / 1000;
      if (full.pack === undefined) throw new Error(`${route.recipe}: the recipe must end with a pack step`);
      const fullBytes = writeModel(full.model);
      const decoded = unpack(full.pack);
      const identical = decoded.byteLength === fullBytes.byteLength && decoded.every((b, i) => b === fullBytes[i]);
      const cluster = full.report.steps.find((s) => s.step === 'cluster')?.report;
      const finetune = cluster !== undefined && 'finetune' in cluster ? cluster.finetune : undefined;
      const clusterStep = full.report.steps.find((s) => s.step === 'cluster');
      const outputBias = clusterStep !== undefined && 'output_bias' in clusterStep ? clusterStep.output_bias : undefined;
      routeRows.push({ route: route.name, ...(await measure('Q+D', `${route.name}: ${route.name === 'uniform' ? 'weights trained under fake quantization' : 'centroids distilled'} from the original`, fullBytes, packOnnx(fullBytes).pack, seconds)) });
      routeRows.push({ route: route.name, ...(await measure('Q+D+H', `${route.name}: the pack, read as it decodes`, decoded, full.pack, seconds, true)) });
      if (process.env.PACK_REC_SAVE !== undefined) {
        mkdirSync(process.env.PACK_REC_SAVE, { recursive: true });
        writeFileSync(join(process.env.PACK_REC_SAVE, `${route.name}.shrink`), full.pack);
      }
      routes.push({ route: route.name, recipe: route.recipe, description: recipe.description ?? route.recipe, recipe_text: recipeText, decodes_identically: identical, finetune, ...(outputBias === undefined ? {} : { output_bias: outputBias }), rows: routeRows });
    }
    for (const r of routes) rows.push(...r.rows);

    const curve: Row[] = [];
    for (const point of CURVE) {
      if (only !== undefined && !only.includes(point.route)) {
        const old = [...(previous?.curve ?? [])].find((c) => c.settings.split(CARRIED)[0] === point.settings);
        if (old !== undefined) curve.push(carried(old));
        continue;
      }
      const started = performance.now();
      const result = await runRecipe(rec, parseRecipe(`steps:\n  - cluster: ${point.yaml}\n`, 'curve'), data(train), ctx);
      const bytes = writeModel(result.model);
      curve.push({ route: point.route, ...(await measure('Q', point.settings, bytes, packOnnx(bytes).pack, (performance.now() - started) / 1000)) });
    }
    const finals = routes.map((r) => r.rows[r.rows.length - 1]);
    const best = finals.filter((r) => r.ratio >= 8).sort((a, b) => b.lines_identical - a.lines_identical)[0] ?? finals[finals.length - 1];
    const met = best !== undefined && best.ratio >= 8 && best.lines_identical >= 95;

    const json = { machine, model: REC, float32_bytes: floatBytes, corpus: { train: train.count, held_out: held.count, dir: corpus, ...(extra ? { train_extra: `${extra.from}-${extra.to}` } : {}), ...(tuning === undefined ? {} : { tuning: process.env.PACK_REC_TUNING }) }, routes, stages: rows, curve, target: { ratio: 8, lines_identical: 95, met, best: best === undefined ? undefined : { route: best.route, ratio: best.ratio, lines_identical: best.lines_identical } } };
    const percent = (v: number | undefined) => (v === undefined ? '-' : `${v}%`);
    const table = (list: Row[]) => [
      `| route | stage | settings | ONNX | pack | ratio to float32 | lines identical | ignoring spaces | cosine |${tuning === undefined ? '' : ' tuning lines identical | tuning ignoring spaces |'} seconds |`,
      `| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |${tuning === undefined ? '' : ' ---: | ---: |'} ---: |`,
      ...list.map((r) => `| ${r.route ?? ''} | ${r.stage} | ${r.settings} | ${r.onnx_bytes} | ${r.pack_bytes} | ${r.ratio}x | ${r.lines_identical}% | ${percent(r.lines_ignoring_spaces)} | ${r.cosine} |${tuning === undefined ? '' : ` ${percent(r.tuning_identical)} | ${percent(r.tuning_ignoring_spaces)} |`} ${r.seconds} |`),
    ];
    const markdown = [
      '# PP-OCRv4 rec as a .shrink pack: size against lines read as the original reads them',
      '',
      `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage}.`,
      '',
      `Model: ${REC} (${floatBytes} bytes float32). Lines: ${train.count} rendered training lines (training and nothing else) and ${held.count} held-out lines in other fonts, texts and seed (scripts/make-rec-corpus.ts); every number below is on the held-out lines, against the original model's own reading (no labels)${tuning === undefined ? '' : `, but the tuning columns: lines ${process.env.PACK_REC_TUNING} of the training set, never trained on, which chose the recipe's settings (the held-out lines chose nothing)`}. Each route is a recipe run by runRecipe as \`shrink run RECIPE ${REC} -o rec.shrink --data ${npy}${calibration === undefined ? '' : ` --calib ${calibNpy}`}\` runs it.`,
      '',
      ...routes.flatMap((r) => {
        const f = r.finetune as { loss: string; value?: string; epochs: number; steps: number; mean_loss: number[]; seconds: number } | undefined;
        const b = r.output_bias;
        const offsets = b === undefined ? '' : ` Output offsets fitted after the centroids on ${calibration?.description ?? 'the calibration lines'} (${b.rows} time steps): ${Object.entries(b.offsets).map(([c, v]) => `class ${c} ${v >= 0 ? '+' : ''}${round(v, 3)}`).join(', ') || 'none'}, top-1 agreement there ${round(100 * b.agreementBefore, 2)}% -> ${round(100 * b.agreementAfter, 2)}%.`;
        return [`- ${r.route}: ${r.recipe} (${r.description}); the pack decodes to the Q+D model byte for byte: ${r.decodes_identically ? 'yes' : 'NO'}.${f === undefined ? '' : ` Training: ${f.loss}${f.value === undefined ? '' : ` on '${f.value}'`}, ${f.epochs} epochs, ${f.steps} steps, mean loss ${f.mean_loss.map((l) => l.toExponential(3)).join(' -> ')}, ${round(f.seconds, 0)} s.`}${offsets}`];
      }),
      '',
      ...table(rows),
      '',
      `Target (issue 13): >= 8x with >= 95% of lines identical: ${met ? 'met' : 'not met'}${best === undefined ? '' : ` (best at >= 8x: ${best.route}, ${best.ratio}x, ${best.lines_identical}%)`}.`,
      '',
      '## Trade-off without training',
      '',
      ...table(curve),
      '',
    ].join('\n');
    return { json, markdown };
  },
};
