// Structured pruning of PP-OCRv4 rec (issue 12): 30% of the prunable channels removed, recovered by
// distillation from the original without labels (the original's reading is the reference).
// Uniform 30% of every group reads 0% of the held-out lines as the original does, before and after
// training: every early group losing 30% is the damage. Each plan below removes 30% of the
// prunable channels in total but puts the cuts elsewhere; all are measured untrained, and one
// (the first, or PRUNE_OCR_REC_PLAN) is then distilled in stages of one epoch.
//   data: scripts/make-rec-corpus.ts. Training lines (by default 4,440: lines 0-639 and 1200-1999
//   of a 2,000-line corpus and 1,000 and 2,000 lines of seeds 29 and 31, all in the training fonts,
//   rendered when missing) feed compensation (the first 64) and distillation; lines 1000-1199 of
//   the same corpus are the tuning split, never trained on; the 200 held-out lines (other fonts,
//   texts and seed) only the measurements. Plans were compared on training lines 64..159 (see
//   REC_PLANS).
//   More distinct lines is what recovers the readings: after the 6 rounds, held-out lines read as
//   the original reads them went 57% (640 training lines) -> 80.5% (1,440) -> 92% (4,440), with the
//   same plan, rounds and settings (bench/results/prune-ocr-rec.md has the 4,440-line run).
//   loss: KL between the original's and the student's distributions over the 6,625 classes at each
//   time step, from the logits before the softmax ('p2o.Add.277').
// Speed: float32 and every plan timed round-robin in one onnxruntime-node run (1 thread, one
// held-out line at batch 1), with the load average around it. The trained model is also run in
// onnxruntime-web (wasm).
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { benchmarkModels } from '../src/eval/benchmark.js';
import { cosineSimilarity } from '../src/eval/metrics.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { LayerRatio } from '../src/methods/prune/channels.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { RecipeContext } from '../src/pipeline/context.js';
import { type PruneOptions, type PruneRecovery, prune } from '../src/pipeline/prune.js';
import type { RoundSchedule } from '../src/pipeline/prune-rounds.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { recoverByTraining } from '../src/pipeline/recovery.js';
import type { OrtModule } from '../src/runtime/ort-types.js';
import { fromOrtTensor, ModelSession, toOrtTensor } from '../src/runtime/session.js';
import type { ArrayField } from '../src/train/array-data.js';
import { OCR } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { characterAgreement, ensureRecCorpus, joinRecSets, lineRangeFromEnv, loadRecSet, seededRecCorpus, REC_CORPUS, type RecSet, readRecSet, recRange, recSlice, sameLines, sameLinesIgnoringSpaces } from './lib/rec-corpus.js';
import { loggedProgress } from './lib/logged-progress.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const RATIO = 0.3;
const REC_LOGITS = 'p2o.Add.277';
const REC_CALIBRATION = 64;
/** The first training lines distilled on, before the tuning split (PRUNE_OCR_REC_LINES overrides; up to 480 read the standard corpus alone). */
const REC_TRAIN_LINES = Number(process.env.PRUNE_OCR_REC_LINES ?? 640);
/**
 * Where they are read from: the first REC_TRAIN_LINES of a corpus of 1,200 training lines (the
 * first 480 the standard corpus's; rendered when missing, ~4 min at load 3, > 17 min at load 18),
 * 2,000 with the default REC_TRAIN_EXTRA, or PRUNE_OCR_REC_CORPUS. The original's logits over
 * 4,440 lines fill 2.2 GiB in float16: the context below lets the teacher hold 4 GiB.
 */
const REC_RENDERED_LINES = 1200;
/**
 * PRUNE_OCR_REC_TRAIN_EXTRA=FROM-TO (default 1200-1999; empty: none) adds lines FROM-TO (after the
 * tuning lines) to the training lines, from a corpus rendered with TO + 1 (its first 1,200 lines
 * are the 1,200-line corpus's).
 */
const REC_TRAIN_EXTRA = lineRangeFromEnv('PRUNE_OCR_REC_TRAIN_EXTRA', '1200-1999');
/**
 * PRUNE_OCR_REC_TRAIN_SEEDS=SEED:COUNT[,SEED:COUNT] (default 29:1000,31:2000; empty: none) adds
 * COUNT lines of each seed to the training lines (`make-rec-corpus --train COUNT --train-seed SEED`: the training fonts, other texts;
 * rendered when missing, ~1 min per 100 lines).
 */
const REC_TRAIN_SEEDS = (process.env.PRUNE_OCR_REC_TRAIN_SEEDS ?? '29:1000,31:2000')
  .split(',')
  .filter((d) => d !== '')
  .map((text) => {
    const match = text.match(/^(\d+):(\d+)$/);
    if (match === null) throw new Error(`PRUNE_OCR_REC_TRAIN_SEEDS: '${text}' is not SEED:COUNT, e.g. 29:1000`);
    return { seed: Number(match[1]), count: Number(match[2]) };
  });
const REC_TRAIN_CORPUS =
  process.env.PRUNE_OCR_REC_CORPUS ?? (REC_TRAIN_EXTRA !== undefined ? `${REC_CORPUS}-${Math.max(REC_TRAIN_EXTRA.to + 1, REC_RENDERED_LINES)}` : REC_TRAIN_LINES <= 480 ? REC_CORPUS : `${REC_CORPUS}-${REC_RENDERED_LINES}`);
/**
 * Gradual pruning of the chosen plan (PRUNE_OCR_REC_ROUNDS, 1 = at once): the plan's shares rise
 * over the rounds on PRUNE_OCR_REC_SCHEDULE ('linear': 5% steps to 30% in 6 rounds; 'cubic'), each
 * round planned on the model the last one trained and followed by one stage of distillation.
 */
export const REC_ROUNDS = Number(process.env.PRUNE_OCR_REC_ROUNDS ?? 6);
export const REC_SCHEDULE = (process.env.PRUNE_OCR_REC_SCHEDULE ?? 'linear') as RoundSchedule;
/** Stages of distillation after the last round, measured after each; PRUNE_OCR_REC_STAGES overrides (0: none). */
const REC_STAGES = Number(process.env.PRUNE_OCR_REC_STAGES ?? 2);
/** One stage: an epoch over the training lines, the rate on a cosine from its peak (a warm restart per stage). */
// BatchNormalization (6, in the neck) frozen at its running statistics while training, or on batch
// statistics with the running ones updated (PRUNE_OCR_REC_BN=batch: the one-shot plan, 30% at once,
// was better so after one stage, held-out cosine 0.8845 vs 0.8685 frozen; see REC_RATE for 5%).
// The rate rises over the first 10 steps of a stage: at the full rate at once, AdamW's first
// steps cost a round-1 model (15% removed, untrained) 4% -> 0% of lines in a 2-step smoke run.
const REC_WARMUP = 10;
// The peak rate of a stage (PRUNE_OCR_REC_RATE). Round 1 (5% pruned, 93% of held-out lines
// untrained), one epoch on 640 lines, measured again after the BatchNormalization fix (adae6fa;
// scratch bench/work/h2/r1.ts): frozen 5e-4 85% (the committed run), frozen 1e-4 72%, batch
// statistics 5e-4 66%. Frozen holds; a lower rate loses more, and the trained lines themselves read
// worse (93% -> 77% at 1e-4): not overfitting (NOTES.md, Issue 12, "Round 1 (H2)").
const REC_RATE = Number(process.env.PRUNE_OCR_REC_RATE ?? 5e-4);
// PRUNE_OCR_REC_MAX_STEPS cuts every stage short (smoke runs of the bench itself).
const REC_MAX_STEPS = process.env.PRUNE_OCR_REC_MAX_STEPS === undefined ? {} : { maxSteps: Number(process.env.PRUNE_OCR_REC_MAX_STEPS) };
// The blank-weighted KL (`--distill-blank 0 --distill-blank-weight W`, PRUNE_OCR_REC_BLANK_WEIGHT=W,
// default 0.1; 'off' for plain KL): a time step's KL weighs W + (1 - W)(1 - p_original(blank)), so
// the 84% of steps that are confident blanks stop dominating the loss. W = 0.1 was chosen on the
// rec pack's tuning lines (bench pack-rec, issue 13); here (session 8, load 8-17) it took the 6
// rounds from 44% of held-out lines (plain KL, the run before) to 56% (tuning lines 53%).
const REC_BLANK_WEIGHT = process.env.PRUNE_OCR_REC_BLANK_WEIGHT === 'off' ? undefined : Number(process.env.PRUNE_OCR_REC_BLANK_WEIGHT ?? 0.1);
const REC_BLANK = REC_BLANK_WEIGHT === undefined ? {} : { distillBlank: 0, distillBlankWeight: REC_BLANK_WEIGHT };
// What replaces a removed channel in the layers reading it (PRUNE_OCR_REC_COMPENSATION): 'mean', its
// mean over the calibration lines folded into their biases, or 'lstsq', its least-squares fit from
// the kept channels of the same activation folded into their weights and biases (every round).
// Untrained, the plan below at once, tuning lines identical mean -> lstsq (bench
// prune-ocr-rec-compensation): 5% 92.5 -> 96, 10% 44 -> 90, 20% 0 -> 68, 30% 0 -> 13. In the 6
// rounds (session 9, load 8-13) the tuning lines after the last round went 53% -> 62% (held-out
// 56% -> 57%), so lstsq is the default here.
export const REC_COMPENSATION = (process.env.PRUNE_OCR_REC_COMPENSATION ?? 'lstsq') as 'mean' | 'lstsq';
// PRUNE_OCR_REC_RECONSTRUCT=1: after compensation, every matrix layer refitted to the round's input model's outputs (--reconstruct).
const REC_RECONSTRUCT = process.env.PRUNE_OCR_REC_RECONSTRUCT === '1';
/** The tuning split: rendered training lines [TUNE_FROM, TUNE_FROM + TUNE_LINES), never trained on (read when the corpus has them). */
const TUNE_FROM = 1000;
const TUNE_LINES = 200;
/** Exported for the test that bench/recipes/prune-rec.yaml states these settings. */
export const REC_RECOVERY: PruneRecovery = { ...REC_MAX_STEPS, ...REC_BLANK, epochs: 1, batchSize: 8, schedule: { kind: 'cosine', rate: REC_RATE, warmup: REC_WARMUP }, optimizer: { kind: 'adamw' }, seed: 0, distillValue: REC_LOGITS, distillLoss: 'kl', temperature: 1, batchNorm: (process.env.PRUNE_OCR_REC_BN ?? 'frozen') as 'frozen' };
const SPEED_RUNS = 20;
// The original's logits over 4,440 lines are 2.2 GiB in float16, past distillation's default 1 GiB.
const ctx: RecipeContext = { ort: nodeOrt, threads: 2, teacherMemory: 4 * 2 ** 30 };

type PlanOptions = Pick<PruneOptions, 'sparsity' | 'scope' | 'maxRatio' | 'layerRatios' | 'importance'>;

/** `ratio` for each of `layers` (exact node names), as --layer-ratio patterns. */
const ratios = (ratio: number, layers: readonly number[], op = 'Conv'): LayerRatio[] => layers.map((n) => ({ pattern: `^p2o\\.${op}\\.${n}$`, ratio }));

/**
 * The plans, each 30% of the 4,948 prunable channels (25 groups; the head's 6,625 classes and the
 * 120 channels a ReduceMean reads stay). Groups by the conv that makes them: Conv.0-6 the stem and
 * first stage (16-64 channels), Conv.8/10 128, Conv.12-20 five of 240, Conv.24-32 and 35 five of
 * 480, Conv.22, 26, 33, 36, 37 the narrow squeeze and neck convs (60-120), MatMul.0/12 the 8 heads
 * of the two attention blocks, MatMul.8/20 their 240-wide MLPs. Measured alone on training lines
 * (bench/work scratch, not committed), each early group at 30% cost 10-23% of the lines (KL per
 * time step 0.12-0.27) for 5-19 channels, the 240-wide ones at 40% 8-28% for 96: per channel the
 * first groups are 5-10x as costly, so they are kept whole. Ranked on training lines by the KL
 * of the untrained plan: uniform 2.18, global l2 1.47, by-width l2 1.96, by-width activation 1.40,
 * protected global activation 1.36 (every plan 0% of lines before training).
 */
export const PROTECTED: LayerRatio[] = [...ratios(0, [0, 2, 4, 6]), ...ratios(0, [0, 12], 'MatMul')];
export const REC_PLANS: Record<string, { description: string; options: PlanOptions }> = {
  'protected-global-activation': {
    description: 'the stem and first stage (Conv.0-6) and the attention heads kept whole (`--layer-ratio ...=0`), the rest ranked together by mean |activation| on the calibration lines, no group above 50% (`--scope global --max-ratio 0.5 --importance activation`)',
    options: { sparsity: RATIO, scope: 'global', maxRatio: 0.5, importance: 'activation', layerRatios: PROTECTED },
  },
  uniform: { description: '30% of every group, L2 (the earlier default)', options: { sparsity: RATIO } },
  'global-l2': { description: 'global ranking by L2, no group above 50% (`--scope global --max-ratio 0.5`)', options: { sparsity: RATIO, scope: 'global', maxRatio: 0.5 } },
  'by-width-activation': {
    description: 'ratios by width (`--layer-ratio`): Conv.0-6 and the heads 0%, Conv.8/10 15%, the 240-wide 30%, the 480-wide 36%, narrow squeeze and neck 20%, attention MLPs 30%; activation importance',
    options: {
      sparsity: RATIO,
      importance: 'activation',
      layerRatios: [...PROTECTED, ...ratios(0.15, [8, 10]), ...ratios(0.3, [12, 14, 16, 18, 20]), ...ratios(0.36, [24, 28, 30, 32, 35]), ...ratios(0.2, [22, 26, 33, 36, 37]), ...ratios(0.3, [8, 20], 'MatMul')],
    },
  },
};
/** The other plans, measured untrained at once (PRUNE_OCR_REC_OTHERS=0 skips them: a few minutes). */
const REC_OTHER_PLANS = process.env.PRUNE_OCR_REC_OTHERS !== '0';
/** The plan distilled (the first of REC_PLANS unless PRUNE_OCR_REC_PLAN names another); the others are measured untrained. */
const REC_PLAN = process.env.PRUNE_OCR_REC_PLAN ?? Object.keys(REC_PLANS)[0];
const COMPENSATED = `${REC_COMPENSATION === 'lstsq' ? 'least-squares compensation' : 'mean compensation'}${REC_RECONSTRUCT ? ' + reconstruction' : ''}`;

interface Row {
  plan: string;
  variant: string;
  epochs: number;
  /** Channels removed of the prunable groups' channels. */
  removed: number;
  of: number;
  /** Held-out lines read as the original reads them (percent), also once spaces are dropped. */
  lines: number;
  /** The same on the tuning lines (rendered training lines never trained on): what may choose settings. */
  tuning_lines?: number;
  lines_ignoring_spaces: number;
  /** Per-character agreement with the original's reading (1 - edit distance / the longer length, summed over lines; percent). */
  characters: number;
  /** Cosine of the softmax outputs over every held-out line. */
  cosine: number;
  bytes: number;
  macs_ratio?: number;
  speedup?: number;
  web?: { runs: boolean; max_abs?: number; error?: string };
  train_seconds?: number;
  mean_loss?: number[];
}

function recArrays(set: RecSet): Record<string, ArrayField> {
  return { x: { data: set.x, sampleDims: [3, 48, 320], dataType: DataType.FLOAT } };
}

function recLine(set: RecSet, i: number): Tensor {
  const per = 3 * 48 * 320;
  return Tensor.fromArray('x', DataType.FLOAT, [1, 3, 48, 320], set.x.slice(i * per, (i + 1) * per));
}

/** Loads `bytes` in onnxruntime-web and compares its output on `input` with onnxruntime-node's (max abs). */
async function webCheck(web: OrtModule, bytes: Uint8Array, input: Tensor): Promise<NonNullable<Row['web']>> {
  const outputOf = async (ort: OrtModule, options: Parameters<typeof ModelSession.create>[2]) => {
    const session = await ModelSession.create(ort, bytes, options);
    try {
      const result = await session.run({ x: toOrtTensor(ort, input) });
      return (fromOrtTensor(result[session.outputNames[0]], session.outputNames[0]).data() as Float32Array).slice();
    } finally {
      await session.release();
    }
  };
  try {
    const a = await outputOf(web, { executionProviders: WASM_EXECUTION_PROVIDERS });
    const b = await outputOf(nodeOrt, { threads: 2 });
    let maxAbs = 0;
    for (let i = 0; i < a.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    return { runs: true, max_abs: Number(maxAbs.toPrecision(3)) };
  } catch (error) {
    return { runs: false, error: (error instanceof Error ? error.message : String(error)).slice(0, 200) };
  }
}


async function benchRec(web: OrtModule, log: (line: string) => void) {
  ensureRecCorpus(REC_CORPUS, log);
  if (REC_TRAIN_CORPUS !== REC_CORPUS) ensureRecCorpus(REC_TRAIN_CORPUS, log, { train: Math.max(REC_TRAIN_LINES, REC_RENDERED_LINES, (REC_TRAIN_EXTRA?.to ?? 0) + 1) });
  const rec = loadModel(join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'));
  const floatBytes = writeModel(rec);
  const rendered = await loadRecSet('train', REC_TRAIN_CORPUS);
  if (rendered.count < REC_TRAIN_LINES) throw new Error(`${REC_TRAIN_CORPUS}: ${rendered.count} training lines, fewer than PRUNE_OCR_REC_LINES=${REC_TRAIN_LINES}`);
  if (REC_TRAIN_EXTRA !== undefined && (REC_TRAIN_EXTRA.from < TUNE_FROM + TUNE_LINES || REC_TRAIN_EXTRA.to >= rendered.count)) throw new Error(`PRUNE_OCR_REC_TRAIN_EXTRA: lines ${REC_TRAIN_EXTRA.from}-${REC_TRAIN_EXTRA.to} must come after the tuning lines (${TUNE_FROM}-${TUNE_FROM + TUNE_LINES - 1}) and within ${REC_TRAIN_CORPUS}'s ${rendered.count}`);
  const first = recSlice(rendered, REC_TRAIN_LINES);
  let train = REC_TRAIN_EXTRA === undefined ? first : joinRecSets(first, recRange(rendered, REC_TRAIN_EXTRA.from, REC_TRAIN_EXTRA.count));
  for (const { seed, count } of REC_TRAIN_SEEDS) {
    ensureRecCorpus(seededRecCorpus(seed, count), log, { train: count, trainSeed: seed });
    train = joinRecSets(train, await loadRecSet('train', seededRecCorpus(seed, count)));
  }
  const held = await loadRecSet('heldout');
  const reference = await readRecSet(nodeOrt, rec, held);
  const tuning = REC_TRAIN_LINES <= TUNE_FROM && rendered.count >= TUNE_FROM + TUNE_LINES ? recRange(rendered, TUNE_FROM, TUNE_LINES) : undefined;
  const tuningReference = tuning === undefined ? undefined : await readRecSet(nodeOrt, rec, tuning);
  const calibration = arraySamples(recArrays(recSlice(train, REC_CALIBRATION)), 'training lines');
  const measure = async (plan: string, variant: string, model: Model, epochs: number, channels: { removed: number; of: number }, checkWeb = false): Promise<Row> => {
    const bytes = writeModel(model);
    const reading = await readRecSet(nodeOrt, bytes, held);
    const tuned = tuning === undefined || tuningReference === undefined ? {} : { tuning_lines: round(100 * sameLines(tuningReference.texts, (await readRecSet(nodeOrt, bytes, tuning)).texts)) };
    const row: Row = { plan, variant, epochs, ...channels, lines: round(100 * sameLines(reference.texts, reading.texts)), ...tuned, lines_ignoring_spaces: round(100 * sameLinesIgnoringSpaces(reference.texts, reading.texts)), characters: Number((100 * characterAgreement(reference.texts, reading.texts)).toFixed(2)), cosine: Number(cosineSimilarity(reference.probs, reading.probs).toFixed(4)), bytes: bytes.byteLength, ...(checkWeb ? { web: await webCheck(web, bytes, recLine(held, 0)) } : {}) };
    log(`rec ${plan} ${variant}: ${row.tuning_lines === undefined ? '' : `${row.tuning_lines}% of tuning lines, `}${row.lines}% of held-out lines identical (${row.lines_ignoring_spaces}% ignoring spaces, ${row.characters}% of characters), cosine ${row.cosine}, ${channels.removed} of ${channels.of} channels removed`);
    return row;
  };
  const rows: Row[] = [];
  const pruned = new Map<string, { model: Model; macs?: number; channels: { removed: number; of: number; after: number[] } }>();
  const prunePlan = async (name: string) => {
    const plan = REC_PLANS[name];
    if (plan === undefined) throw new Error(`PRUNE_OCR_REC_PLAN: no plan '${name}' (${Object.keys(REC_PLANS).join(', ')})`);
    const { model, report } = await prune(rec, { method: 'channels', importance: 'l2', ...plan.options, inputShapes: { x: [1, 3, 48, 320] }, calibration, compensation: REC_COMPENSATION, reconstruct: REC_RECONSTRUCT }, ctx);
    const prunable = (report.groups ?? []).filter((g) => g.kept === undefined);
    const channels = { removed: prunable.reduce((n, g) => n + g.channels_before - g.channels_after, 0), of: prunable.reduce((n, g) => n + g.channels_before, 0), after: prunable.map((g) => g.channels_after) };
    pruned.set(name, { model, macs: report.macs?.ratio, channels });
    rows.push({ ...(await measure(name, `pruned + ${COMPENSATED}`, model, 0, channels)), macs_ratio: report.macs?.ratio });
    return pruned.get(name) as NonNullable<ReturnType<typeof pruned.get>>;
  };
  // The trained plan first, so a cut-short run still shows its training: pruned in REC_ROUNDS
  // rounds (the prune step's gradual pruning), each measured before and after its distillation.
  const plan = REC_PLANS[REC_PLAN];
  if (plan === undefined) throw new Error(`PRUNE_OCR_REC_PLAN: no plan '${REC_PLAN}' (${Object.keys(REC_PLANS).join(', ')})`);
  const data = { inputs: recArrays(train) };
  const trainCtx: RecipeContext = { ...ctx, progress: loggedProgress(log) };
  const saved = `bench/work/prune-ocr-rec-${REC_PLAN}-bn-${REC_RECOVERY.batchNorm}${REC_BLANK_WEIGHT === undefined ? '' : `-blank-${REC_BLANK_WEIGHT}`}${REC_COMPENSATION === 'lstsq' ? '-lstsq' : ''}${REC_RECONSTRUCT ? '-reconstruct' : ''}${REC_ROUNDS === 6 ? '' : `-rounds-${REC_ROUNDS}`}${REC_TRAIN_EXTRA === undefined ? '' : `-extra-${REC_TRAIN_EXTRA.from}-${REC_TRAIN_EXTRA.to}`}${REC_TRAIN_SEEDS.map((t) => `-seed-${t.seed}-${t.count}`).join('')}.onnx`;
  let seconds = 0;
  const losses: number[] = [];
  let widthsBefore = new Map<string, number>();
  let channels = { removed: 0, of: 0, after: [] as number[] };
  const gradual = await prune(
    rec,
    {
      method: 'channels',
      importance: 'l2',
      ...plan.options,
      inputShapes: { x: [1, 3, 48, 320] },
      calibration,
      compensation: REC_COMPENSATION,
      reconstruct: REC_RECONSTRUCT,
      data,
      recovery: { ...REC_RECOVERY, rounds: REC_ROUNDS, roundSchedule: REC_SCHEDULE },
      async onRound(r) {
        const groups = (r.pass.details.groups ?? []).filter((g) => g.kept === undefined);
        if (r.round === 1) widthsBefore = new Map(groups.map((g) => [g.sources[0], g.channelsBefore]));
        const of = groups.reduce((n, g) => n + (widthsBefore.get(g.sources[0]) ?? g.channelsBefore), 0);
        channels = { removed: of - groups.reduce((n, g) => n + g.channelsAfter, 0), of, after: groups.map((g) => g.channelsAfter) };
        const which = REC_ROUNDS === 1 ? '' : `round ${r.round}/${r.rounds}: `;
        rows.push(await measure(REC_PLAN, `${which}pruned + ${COMPENSATED}`, r.pruned, r.round - 1, channels));
        if (r.training === undefined) return;
        seconds += r.training.seconds;
        losses.push(...r.training.mean_loss.map((l) => Number(l.toPrecision(4))));
        writeFileSync(saved, writeModel(r.trained));
        rows.push({ ...(await measure(REC_PLAN, `${which}+ distillation`, r.trained, r.round * REC_RECOVERY.epochs, channels, r.round === r.rounds && REC_STAGES === 0)), train_seconds: round(seconds), mean_loss: [...losses] });
      },
    },
    trainCtx,
  );
  let trained = gradual.model;
  const macs = gradual.report.macs?.ratio;
  for (const r of rows) r.macs_ratio = macs;
  for (let stage = 1; stage <= REC_STAGES; stage++) {
    const recovered = await recoverByTraining(rec, trained, data, { ...REC_RECOVERY, seed: stage }, rec.graph.outputs[0].name, trainCtx);
    trained = recovered.model;
    seconds += recovered.report.seconds;
    losses.push(...recovered.report.mean_loss.map((l) => Number(l.toPrecision(4))));
    writeFileSync(saved, writeModel(trained));
    rows.push({ ...(await measure(REC_PLAN, `+ distillation, stage ${stage} after the last round`, trained, (REC_ROUNDS + stage) * REC_RECOVERY.epochs, channels, stage === REC_STAGES)), macs_ratio: macs, train_seconds: round(seconds), mean_loss: [...losses] });
  }
  pruned.set(REC_PLAN, { model: trained, macs, channels });
  if (REC_OTHER_PLANS) for (const name of Object.keys(REC_PLANS)) if (name !== REC_PLAN) await prunePlan(name);
  // Shapes are the plan's whatever the training: the untrained models stand for every row.
  const names = [...pruned.keys()];
  const loadBefore = round(loadavg()[0]);
  const timing = await benchmarkModels(nodeOrt, [{ name: 'float32', source: floatBytes }, ...names.map((name) => ({ name, source: writeModel((pruned.get(name) as { model: Model }).model) }))], { runs: SPEED_RUNS, warmup: 3, threads: 1, inputs: [0, ...names].map(() => ({ x: recLine(held, 0) })) });
  const medians = timing.models.map((m) => round(m.latency_ms.median));
  const speed = { float32_ms: medians[0], plans_ms: Object.fromEntries(names.map((n, i) => [n, medians[i + 1]])), load_before: loadBefore, load_after: round(loadavg()[0]) };
  for (const r of rows) r.speedup = Number((medians[0] / speed.plans_ms[r.plan]).toFixed(3));
  log(`rec speed at 1 thread, interleaved: float32 ${medians[0]} ms, ${names.map((n) => `${n} ${speed.plans_ms[n]} ms`).join(', ')}; load ${speed.load_before} -> ${speed.load_after}`);
  return { trainLines: train.count, rows, speed, widths: Object.fromEntries(names.map((n) => [n, (pruned.get(n) as { channels: { after: number[] } }).channels.after])) };
}

export const pruneOcrRecBench: Bench = {
  name: 'prune-ocr-rec',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo({ web: true });
    const web = await loadWebOrt();
    const recFloat = readFileSync(join(OCR, 'ch_PP-OCRv4_rec_infer.onnx')).byteLength;
    const { trainLines, rows, speed, widths } = await benchRec(web, log);
    const json = { machine, ratio: RATIO, compensation: REC_COMPENSATION, reconstruct: REC_RECONSTRUCT, float32_bytes: recFloat, calibration_lines: REC_CALIBRATION, training_lines: trainLines, ...(REC_TRAIN_SEEDS.length === 0 ? {} : { training_seeds: REC_TRAIN_SEEDS }), ...(REC_TRAIN_EXTRA === undefined ? {} : { training_extra: `${REC_TRAIN_EXTRA.from}-${REC_TRAIN_EXTRA.to}` }), held_out_lines: 200, plans: REC_PLANS, trained_plan: REC_PLAN, rounds: REC_ROUNDS, round_schedule: REC_SCHEDULE, stages: REC_STAGES, recovery: REC_RECOVERY, speed: { threads: 1, runs: SPEED_RUNS, warmup: 3, ...speed }, widths, rows };
    const last = rows.filter((r) => r.mean_loss !== undefined).pop();
    const markdown = [
      '# Structured pruning of PP-OCRv4 rec, recovered by distillation',
      '',
      `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, onnxruntime-web ${machine.onnxruntimeWeb}; ${machine.date}, load ${machine.loadAverage} at the start (a shared machine: speeds are rough).`,
      '',
      `\`shrink prune --method channels\` (importance as each plan says, L2 unless told; ${REC_COMPENSATION === 'lstsq' ? `\`--compensation lstsq\`: each removed channel's least-squares fit from the kept channels of its activation, measured on ${REC_CALIBRATION} training lines (256 positions per line), folded into the weights and biases of the layers reading it, every round` : `the removed channels' means over ${REC_CALIBRATION} training lines folded into the next layers' biases`}), 30% of the prunable channels in total by each plan (the others at once, untrained); the plan '${REC_PLAN}' ${REC_ROUNDS === 1 ? 'at once' : `gradually, in ${REC_ROUNDS} rounds (\`--rounds ${REC_ROUNDS} --round-schedule ${REC_SCHEDULE}\`: the shares rising ${REC_SCHEDULE === 'linear' ? 'in equal steps' : 'on a cubic schedule'} to 30%, each round planned on the model the last one trained)`}, distilled from the original without labels after each round (the prune step's recovery, as with --epochs 1 on unlabelled --data), then ${REC_STAGES} more stages: every stage one epoch over ${trainLines} training lines${REC_TRAIN_EXTRA === undefined && REC_TRAIN_SEEDS.length === 0 ? '' : ` (0-${REC_TRAIN_LINES - 1}${REC_TRAIN_EXTRA === undefined ? '' : ` and ${REC_TRAIN_EXTRA.from}-${REC_TRAIN_EXTRA.to}`} of ${REC_TRAIN_CORPUS}${REC_TRAIN_SEEDS.map((t) => `, ${t.count} lines of seed ${t.seed} (\`make-rec-corpus --train ${t.count} --train-seed ${t.seed}\`)`).join('')})`} (the rate on a cosine from ${(REC_RECOVERY.schedule as { rate: number }).rate} in each: warm restarts), measured after each. Loss: ${REC_BLANK_WEIGHT === undefined ? 'KL' : `blank-weighted KL (\`--distill-blank 0 --distill-blank-weight ${REC_BLANK_WEIGHT}\`: a time step weighs ${REC_BLANK_WEIGHT} + ${round(1 - REC_BLANK_WEIGHT)} (1 - the original's p(blank)))`} at temperature ${REC_RECOVERY.temperature} between the original's and the pruned model's distributions over the 6,625 classes at each time step, from the logits before the softmax ('${REC_LOGITS}'), batch ${REC_RECOVERY.batchSize}, AdamW; BatchNormalization (6 in the neck) ${REC_RECOVERY.batchNorm === 'frozen' ? 'frozen at its running statistics' : 'on batch statistics, its running ones updated'} while training.`,
      '',
      `rec: ${recFloat} bytes float32; 200 held-out lines, other fonts, texts and seed than the training lines (scripts/make-rec-corpus.ts), never used to choose or train. Metric: greedy-CTC text identical to the original's reading (also with spaces dropped, and the per-character agreement: 1 - edit distance / the longer of the two lines, summed over lines). Target (issue 12): >= 90% of lines identical. Tuning lines: rendered training lines ${TUNE_FROM}-${TUNE_FROM + TUNE_LINES - 1} (training fonts, never trained on), read the same way; settings are chosen there, never on the held-out lines.`,
      '',
      'Plans:',
      '',
      ...Object.entries(REC_PLANS).map(([name, p]) => `- ${name}: ${p.description}${widths[name] === undefined ? ' (not measured in this run: PRUNE_OCR_REC_OTHERS=0)' : `; channels kept per group: ${widths[name].join(' ')}`}`),
      '',
      '| plan | variant | channels removed | epochs | tuning lines identical | lines identical | ignoring spaces | characters | output cosine | speed vs float32 | MACs | file bytes | onnxruntime-web |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
      ...rows.map((r) => `| ${r.plan} | ${r.variant} | ${r.removed} of ${r.of} (${round((100 * r.removed) / r.of)}%) | ${r.epochs} | ${r.tuning_lines === undefined ? '-' : `${r.tuning_lines}%`} | ${r.lines}% | ${r.lines_ignoring_spaces}% | ${r.characters}% | ${r.cosine} | ${r.speedup}x | ${r.macs_ratio ?? '-'}x | ${r.bytes} | ${r.web === undefined ? '-' : r.web.runs ? `runs (max abs vs node ${r.web.max_abs})` : `fails: ${r.web.error}`} |`),
      '',
      `Speed at 1 thread, float32 and every plan interleaved in one run, ${SPEED_RUNS} runs after 3 warm-up runs, median per line: float32 ${speed.float32_ms} ms, ${names(speed.plans_ms)}; load average ${speed.load_before} before timing, ${speed.load_after} after. MACs at [1, 3, 48, 320].`,
      '',
      last?.mean_loss === undefined ? 'No training (0 stages).' : `Mean distillation loss per epoch: ${last.mean_loss.join(', ')}; ${last.train_seconds} s of training in all.`,
      '',
    ].join('\n');
    return { json, markdown };
  },
};

const names = (ms: Record<string, number>) =>
  Object.entries(ms)
    .map(([n, v]) => `${n} ${v} ms`)
    .join(', ');
