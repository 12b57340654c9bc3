// Static int8 QAT on PP-OCRv4 rec (issue 15: >= 95% of held-out words at >= 1.5x float32).
// PTQ as bench quantize-static-cnn-rec does it (default command, the first 64 'train' lines of
// bench/work/rec-corpus); then QAT of that QDQ graph (src/pipeline/qat-static.ts): distillation of
// the logits before the softmax (KL per time step, T = 1) from the float model on unlabelled
// training lines of bench/work/rec-corpus-1200 (never the 200 held-out lines or their fonts), Adam,
// BatchNormalization folded by PTQ. After every epoch the int8 model (PTQ's graph with the new
// codes) reads the 200 held-out lines at onnxruntime 'all' (what a user runs); the epoch kept is the
// one `shrink qat` keeps (best SQNR of the logits on the calibration lines), never chosen on held-out lines. Then float32 and that int8 model are timed interleaved at 1 and 2 threads (8 x 48x320).
// Knobs (environment): QAT_REC_LINES (training lines, default 240), QAT_REC_EPOCHS (4),
// QAT_REC_RATE (0.01: weights and biases train in quantization steps, so 1/100 of each one's own
// step per Adam step), QAT_REC_UNITS (steps | float: the rate in float units, e.g. 1e-5),
// QAT_REC_SCHEDULE (constant | cosine), QAT_REC_BATCH (8), QAT_REC_MAX_STEPS (steps per epoch at most).
import * as os from 'node:os';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Sample, SampleSource } from '../src/eval/samples.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { measureFidelity } from '../src/pipeline/fidelity.js';
import { staticInt8Qat } from '../src/pipeline/qat-static.js';
import type { Schedule } from '../src/train/schedules.js';
import { OCR } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { ensureRecCorpus, loadRecSet, REC_CORPUS, readRecSet, recSlice, sameLines, sameLinesIgnoringSpaces } from './lib/rec-corpus.js';
import { type InterleavedTiming, timeInterleaved } from './lib/interleaved.js';
import { loggedProgress } from './lib/logged-progress.js';
import { round } from './lib/stats.js';
import { sameWords } from './lib/words-identical.js';
import type { Bench, BenchOutput } from './run.js';

const REC_FILE = join(OCR, 'ch_PP-OCRv4_rec_infer.onnx');
const REC_LOGITS = 'p2o.Add.277';
const TRAIN_CORPUS = 'bench/work/rec-corpus-1200';
const CALIBRATION = 64;
const LINES = Number(process.env.QAT_REC_LINES ?? 240);
const EPOCHS = Number(process.env.QAT_REC_EPOCHS ?? 4);
const RATE = Number(process.env.QAT_REC_RATE ?? 0.01);
const UNITS = (process.env.QAT_REC_UNITS ?? 'steps') as 'steps' | 'float';
const SCHEDULE = (process.env.QAT_REC_SCHEDULE ?? 'constant') as 'constant' | 'cosine';
const BATCH = Number(process.env.QAT_REC_BATCH ?? 8);
const MAX_STEPS = process.env.QAT_REC_MAX_STEPS === undefined ? undefined : Number(process.env.QAT_REC_MAX_STEPS);
const TIMED_BATCH = 8;
const ROUNDS = 15;
const PER = 3 * 48 * 320;

interface Reading {
  epoch: number;
  words: number;
  lines: number;
  linesIgnoringSpaces: number;
  /** SQNR of the logits against float32's on the calibration lines: what chooses the epoch kept. */
  sqnrDb: number;
  meanLoss?: number;
  seconds: number;
}

const load = () => round(os.loadavg()[0]);

function calibrationBatches(x: Float32Array, count: number): SampleSource {
  const runs = Math.ceil(count / TIMED_BATCH);
  return {
    inputs: ['x'],
    count: runs,
    description: "rec corpus 'train' lines",
    async *[Symbol.asyncIterator]() {
      for (let b = 0; b < runs; b++) {
        const n = Math.min(TIMED_BATCH, count - b * TIMED_BATCH);
        yield { index: b, where: `calibration batch ${b}`, inputs: { x: Tensor.fromArray('x', DataType.FLOAT, [n, 3, 48, 320], x.slice(b * TIMED_BATCH * PER, (b * TIMED_BATCH + n) * PER)) } } satisfies Sample;
      }
    },
  };
}

export const qatStaticRecBench: Bench = {
  name: 'qat-static-rec',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    ensureRecCorpus(REC_CORPUS, log);
    ensureRecCorpus(TRAIN_CORPUS, log, { train: Math.max(LINES, 1200) });
    const calibration = recSlice(await loadRecSet('train'), CALIBRATION);
    const training = recSlice(await loadRecSet('train', TRAIN_CORPUS), LINES);
    const heldout = await loadRecSet('heldout');
    const fp32Bytes = new Uint8Array(fs.readFileSync(REC_FILE));
    const float = loadModel(REC_FILE);
    const reference = await readRecSet(nodeOrt, fp32Bytes, heldout, 2, 'all');
    const readings: Reading[] = [];
    let started = performance.now();
    const calibrationSource = calibrationBatches(calibration.x, calibration.count);
    // The epoch kept is chosen as `shrink qat` chooses it (SQNR on the calibration samples); the
    // held-out lines are read after every epoch and never used to choose.
    const evaluate = async (int8: Model, epoch: number) => {
      const fidelity = await measureFidelity(float, int8, { samples: calibrationSource }, { ort: nodeOrt, threads: 2 });
      const sqnrDb = round(Number(Object.values(fidelity.outputs)[0]?.sqnr_db ?? Number.NaN));
      const texts = (await readRecSet(nodeOrt, writeModel(int8), heldout, 2, 'all')).texts;
      const reading = { epoch, sqnrDb, words: round(sameWords(reference.texts, texts) * 100), lines: round(sameLines(reference.texts, texts) * 100), linesIgnoringSpaces: round(sameLinesIgnoringSpaces(reference.texts, texts) * 100), seconds: round((performance.now() - started) / 1000) };
      readings.push(reading);
      log(`epoch ${epoch}: ${reading.words}% of held-out words, ${reading.lines}% of lines identical to fp32 (${reading.linesIgnoringSpaces}% ignoring spaces), SQNR on the calibration lines ${sqnrDb} dB, ${reading.seconds} s, load ${load()}`);
      started = performance.now();
      return sqnrDb;
    };
    const schedule: Schedule = SCHEDULE === 'cosine' ? { kind: 'cosine', rate: RATE } : { kind: 'constant', rate: RATE };
    const result = await staticInt8Qat(
      float,
      {
        calibration: calibrationSource,
        ptq: { biasCorrection: 'auto' },
        inputs: { x: { data: training.x, sampleDims: [3, 48, 320], dataType: DataType.FLOAT } },
        value: REC_LOGITS,
        units: UNITS,
        loss: { kind: 'kl', temperature: 1 },
        epochs: EPOCHS,
        batchSize: BATCH,
        schedule,
        seed: 0,
        maxSteps: MAX_STEPS,
        evaluate,
      },
      { ort: nodeOrt, threads: 2, progress: loggedProgress(log, 10) },
    );
    for (const e of result.report.epochs) {
      const r = readings.find((x) => x.epoch === e.epoch);
      if (r !== undefined) r.meanLoss = e.meanLoss === undefined ? undefined : round(e.meanLoss);
    }
    const kept = readings.find((r) => r.epoch === result.report.kept) as Reading;
    const int8Bytes = writeModel(result.model);
    fs.mkdirSync('bench/work/qat-static-rec', { recursive: true });
    fs.writeFileSync('bench/work/qat-static-rec/rec-qat-int8.onnx', int8Bytes);
    const timings: InterleavedTiming[] = [];
    for (const threads of [1, 2]) {
      timings.push(await timeInterleaved(fp32Bytes, int8Bytes, { x: new nodeOrt.Tensor('float32', heldout.x.slice(0, TIMED_BATCH * PER), [TIMED_BATCH, 3, 48, 320]) }, threads, ROUNDS));
      log(`timing: ${JSON.stringify(timings.at(-1))}`);
    }
    const settings = { trainingLines: training.count, trainCorpus: TRAIN_CORPUS, calibrationLines: CALIBRATION, epochs: EPOCHS, rate: RATE, units: UNITS, schedule: SCHEDULE, batch: BATCH, maxSteps: MAX_STEPS ?? null, optimizer: 'adam (adamw, no decay)', loss: `KL per time step of ${REC_LOGITS}, T = 1` };
    const lines = [
      '# Static int8 QAT on PP-OCRv4 rec (held-out words identical to float32)',
      '',
      `One run. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime}, ${machine.date}, load average ${machine.loadAverage} at the start.`,
      '',
      `PTQ: \`shrink quantize --method static-int8\` defaults, calibrated on the first ${CALIBRATION} 'train' lines of ${REC_CORPUS}. ` +
        `QAT: ${training.count} training lines of ${TRAIN_CORPUS}, ${settings.loss}, ${settings.optimizer}, rate ${RATE} (${UNITS === 'steps' ? 'weights and biases in quantization steps' : 'float units'}; ${SCHEDULE} within each epoch), batch ${BATCH}${MAX_STEPS === undefined ? '' : `, at most ${MAX_STEPS} steps an epoch`}. ` +
        `Read on the ${heldout.count} held-out lines at onnxruntime 'all'; epoch 0 is PTQ alone. Kept: epoch ${result.report.kept}, the best SQNR of the logits against float32 on the calibration lines (as \`shrink qat\` keeps it; the held-out lines never choose).`,
      '',
      '| epoch | words identical | lines identical | lines ignoring spaces | SQNR on calibration lines (dB) | mean loss | seconds (train + read) |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...readings.map((r) => `| ${r.epoch}${r.epoch === result.report.kept ? ' (kept)' : ''} | ${r.words}% | ${r.lines}% | ${r.linesIgnoringSpaces}% | ${r.sqnrDb} | ${r.meanLoss ?? ''} | ${r.seconds} |`),
      '',
      `Speed of the kept model (median of ${ROUNDS} interleaved rounds, ${TIMED_BATCH} x 48x320, graph optimization 'all'):`,
      '',
      '| threads | fp32 (ms) | int8 QAT (ms) | speed-up | load before / after |',
      '|---:|---:|---:|---:|---|',
      ...timings.map((t) => `| ${t.threads} | ${t.fp32Ms} | ${t.int8Ms} | ${t.speedup.toFixed(2)}x | ${t.load.join(' / ')} |`),
      '',
      `Kept model: ${kept.words}% of words, ${kept.lines}% of lines at ${timings.map((t) => `${t.speedup.toFixed(2)}x (${t.threads} thread${t.threads > 1 ? 's' : ''})`).join(', ')}.`,
      '',
    ];
    return { json: { machine, settings, readings, kept: result.report.kept, weights: result.report.weights, biases: result.report.biases, ptqSeconds: round(result.report.ptqSeconds), timings }, markdown: lines.join('\n') };
  },
};
