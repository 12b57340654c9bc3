// The calibrator chosen per activation by measured error ('measured'). No one range rule fits every
// tensor: minmax widens as calibration data is added (PP-OCRv4 det lost held-out IoU from 4 to 16
// pages), the clipping rules (expected-minmax, percentile, entropy, mse) cut values that new data
// does reach (the Fashion-MNIST MLP calibrated one image per run lost half its logit SQNR with
// expected-minmax). So each candidate is judged by what it does to the model's outputs on data
// its range did not come from:
//   1. split the calibration samples in two, alternately (pages of one kind are often together);
//   2. candidate ranges of every activation from the statistics of the first half;
//   3. activation by activation in graph order, on (up to a budget of) the second half, the model
//      output error against float with the activations before it quantized at the ranges already
//      chosen and this one at each distinct candidate range (one session per activation, the range
//      fed as the QuantizeLinear's scale and zero point inputs). Measured alone, each activation
//      preferred the clipping rules (their rounding noise is least), and together they lost det
//      IoU (0.917 against minmax's 0.921 at 8 pages): clipping errors of consecutive layers add up;
//   4. the calibrator of least error wins (ties: the earlier one in the list, minmax first), and is
//      applied to the statistics of all samples.
// The cost is one calibration pass over half the samples plus (distinct candidates x measured
// samples) forward runs per activation that has more than one distinct candidate.
import type { Model } from '../../../ir/model.js';
import { Node } from '../../../ir/node.js';
import { topologicalSort } from '../../../ir/toposort.js';
import { makeValueInfo } from '../../../ir/value-info.js';
import { DataType } from '../../../ir/dtype.js';
import { Tensor } from '../../../ir/tensor.js';
import { collectStatistics } from '../../../eval/activation-stats.js';
import { type SampleSource, checkedSamples, sampleFeeds } from '../../../eval/samples.js';
import { modelSignature } from '../../../eval/match-inputs.js';
import { silentProgress, type Progress } from '../../../pipeline/progress.js';
import type { OrtModule, OrtTensor } from '../../../runtime/ort-types.js';
import { ModelSession } from '../../../runtime/session.js';
import type { TensorStatistics } from '../../../eval/tensor-statistics.js';
import type { CalibrationRange } from './calibrator.js';
import { type Int8Type, type QuantParams, rangeParams } from '../quant-params.js';
import { CALIBRATORS, type RangeCalibratorName, RANGE_CALIBRATOR_NAMES } from './registry.js';

/** Measured samples: at most this many... */
export const MEASURE_MAX_SAMPLES = 64;
/** ...and no more once their inputs hold this many values (2 PP-OCRv4 det pages at 640x640; 64 Fashion-MNIST images). */
export const MEASURE_INPUT_VALUES = 1 << 21;
/** Candidate ranges whose ends differ by less than this share of the wider one count as one (steps 2% apart change little). */
const SAME_RANGE = 0.02;

export interface MeasuredChoiceOptions {
  /** Calibrators tried (default every range calibrator, minmax first: it wins ties). */
  candidates?: readonly RangeCalibratorName[];
  symmetric: boolean;
  activationType: Int8Type;
  percentile?: number;
  levels?: number;
  /** Samples stacked per calibration run (as calibration's own). */
  batch?: number;
  limit?: number;
  threads?: number;
  progress?: Progress;
}

export interface MeasuredChoice {
  /** The calibrator chosen for each activation. */
  chosen: Map<string, RangeCalibratorName>;
  /** How often each calibrator was chosen. */
  counts: Record<string, number>;
  /** Per measured activation, each distinct candidate's summed relative output error. */
  errors: Map<string, Partial<Record<RangeCalibratorName, number>>>;
  /** Activations whose candidates differed and were measured; samples measured on; forward runs. */
  measured: number;
  samples: number;
  runs: number;
}

/** Chooses a calibrator for each of `values` by the model output error its range causes on held-back calibration samples. */
export async function chooseCalibrators(ort: OrtModule, model: Model, values: readonly string[], calibration: SampleSource, options: MeasuredChoiceOptions): Promise<MeasuredChoice> {
  const candidates = options.candidates ?? RANGE_CALIBRATOR_NAMES;
  const progress = options.progress ?? silentProgress;
  const limited = options.limit === undefined ? calibration : firstOf(calibration, options.limit);
  const collected = await collectStatistics(ort, model, values, alternate(limited, 0), { batch: options.batch, threads: options.threads, progress, purpose: 'calibrator choice' });
  // One sample: nothing is held back, so the candidates are measured on the sample they came from.
  const heldBack = await measurementFeeds(ort, model, alternate(limited, 1));
  const held = heldBack.length > 0 ? heldBack : await measurementFeeds(ort, model, limited);

  const chosen = new Map<string, RangeCalibratorName>();
  const order = graphOrder(model, values);
  const candidatesOf = new Map<string, { name: RangeCalibratorName; params: QuantParams }[]>();
  for (const value of order) {
    const stats = collected.stats.get(value);
    if (stats !== undefined) candidatesOf.set(value, distinctCandidates(stats, candidates, options));
  }
  const measured = [...candidatesOf.values()].filter((c) => c.length > 1).length;

  const outputs = modelSignature(model).outputs.map((o) => o.name);
  const reference = await ModelSession.create(ort, model, { threads: options.threads, graphOptimization: 'basic' });
  const expected: Record<string, OrtTensor>[] = [];
  try {
    for (const feeds of held) expected.push(await reference.run(feeds, outputs));
  } finally {
    await reference.release();
  }

  let runs = 0;
  const errors = new Map<string, Partial<Record<RangeCalibratorName, number>>>();
  // The ranges chosen so far: every activation before the one measured is quantized at its own.
  const fixed = new Map<string, QuantParams>();
  progress.start('calibrator choice: output error per activation', measured);
  try {
    for (const [value, ranges] of candidatesOf) {
      if (ranges.length === 1) {
        chosen.set(value, ranges[0].name);
        fixed.set(value, ranges[0].params);
        continue;
      }
      const session = await ModelSession.create(ort, withRangeInputs(model, value, options.activationType, fixed), { threads: options.threads, graphOptimization: 'basic' });
      try {
        let best = ranges[0].name;
        let bestError = Infinity;
        for (const { name, params } of ranges) {
          const scale = new ort.Tensor('float32', Float32Array.of(params.scale), []);
          const zeroPoint = params.type === 'uint8' ? new ort.Tensor('uint8', Uint8Array.of(params.zeroPoint), []) : new ort.Tensor('int8', Int8Array.of(params.zeroPoint), []);
          let error = 0;
          for (const [k, feeds] of held.entries()) {
            const got = await session.run({ ...feeds, [SCALE_INPUT]: scale, [ZERO_POINT_INPUT]: zeroPoint }, outputs);
            error += relativeError(expected[k], got);
            runs++;
          }
          if (error < bestError) [best, bestError] = [name, error];
          errors.set(value, { ...errors.get(value), [name]: error });
        }
        chosen.set(value, best);
        fixed.set(value, ranges.find((r) => r.name === best)?.params as QuantParams);
      } finally {
        await session.release();
      }
      progress.tick(1);
    }
  } finally {
    progress.done();
  }
  const counts: Record<string, number> = Object.fromEntries(candidates.map((c) => [c, 0]));
  for (const name of chosen.values()) counts[name]++;
  return { chosen, counts, errors, measured, samples: held.length, runs };
}

const SCALE_INPUT = 'shrink_choice_scale';
const ZERO_POINT_INPUT = 'shrink_choice_zero_point';

/** The candidates' quantization parameters, those of (nearly) the same range merged into the first. */
function distinctCandidates(stats: TensorStatistics, candidates: readonly RangeCalibratorName[], options: MeasuredChoiceOptions): { name: RangeCalibratorName; params: QuantParams }[] {
  const kept: { name: RangeCalibratorName; range: CalibrationRange; params: QuantParams }[] = [];
  for (const name of candidates) {
    const r = CALIBRATORS[name].range(stats, { symmetric: options.symmetric, percentile: options.percentile, levels: options.levels ?? 256 });
    // Compared as the codes cover them: asymmetric ranges always hold 0 (quant-params.ts).
    const range = { min: Math.min(r.min, 0), max: Math.max(r.max, 0) };
    const same = (k: CalibrationRange) => {
      const tolerance = SAME_RANGE * Math.max(range.max - range.min, k.max - k.min);
      return Math.abs(k.min - range.min) <= tolerance && Math.abs(k.max - range.max) <= tolerance;
    };
    if (kept.some((k) => same(k.range))) continue;
    kept.push({ name, range, params: rangeParams(r, options.activationType, options.symmetric) });
  }
  return kept;
}

/**
 * A copy of `model` in which every main-graph reader of `value` reads it through QuantizeLinear ->
 * DequantizeLinear whose scale and zero point are graph inputs (one session tries every range),
 * and the readers of each `fixed` activation through a pair with its chosen parameters.
 */
function withRangeInputs(model: Model, value: string, type: Int8Type, fixed: ReadonlyMap<string, QuantParams>): Model {
  const copy = model.clone();
  const graph = copy.graph;
  const zeroPointType = type === 'uint8' ? DataType.UINT8 : DataType.INT8;
  for (const [other, params] of fixed) {
    const scale = graph.addInitializer(Tensor.fromArray(graph.uniqueName(`${other}_choice_scale`), DataType.FLOAT, [], Float32Array.of(params.scale))).name;
    const zeroPoint = graph.addInitializer(Tensor.fromArray(graph.uniqueName(`${other}_choice_zero_point`), zeroPointType, [], params.type === 'uint8' ? Uint8Array.of(params.zeroPoint) : Int8Array.of(params.zeroPoint))).name;
    insertQdq(copy, other, scale, zeroPoint);
  }
  insertQdq(copy, value, SCALE_INPUT, ZERO_POINT_INPUT);
  graph.inputs.push(makeValueInfo(SCALE_INPUT, { elemType: DataType.FLOAT, shape: [] }));
  graph.inputs.push(makeValueInfo(ZERO_POINT_INPUT, { elemType: zeroPointType, shape: [] }));
  topologicalSort(graph);
  return copy;
}

/** value -> QuantizeLinear -> DequantizeLinear, every main-graph node reading the dequantized value. */
function insertQdq(model: Model, value: string, scale: string, zeroPoint: string): void {
  const graph = model.graph;
  const dequantized = graph.uniqueName(`${value}_choice_dq`);
  const quantized = graph.uniqueName(`${value}_choice_q`);
  for (const node of graph.nodes) node.inputs = node.inputs.map((n) => (n === value ? dequantized : n));
  graph.changed();
  graph.addNode(new Node({ opType: 'QuantizeLinear', inputs: [value, scale, zeroPoint], outputs: [quantized] }));
  graph.addNode(new Node({ opType: 'DequantizeLinear', inputs: [quantized, scale, zeroPoint], outputs: [dequantized] }));
}

/** `values` in the order the graph computes them (graph inputs first). */
function graphOrder(model: Model, values: readonly string[]): string[] {
  const graph = model.graph;
  const position = new Map<string, number>();
  for (const [i, node] of graph.nodes.entries()) for (const out of node.outputs) position.set(out, i);
  return [...values].sort((a, b) => (position.get(a) ?? -1) - (position.get(b) ?? -1));
}

/** Sum over float outputs of ||got - expected||^2 / ||expected||^2 (each output weighs the same). */
function relativeError(expected: Record<string, OrtTensor>, got: Record<string, OrtTensor>): number {
  let total = 0;
  for (const [name, e] of Object.entries(expected)) {
    if (e.type !== 'float32') continue;
    const a = e.data as Float32Array;
    const b = got[name].data as Float32Array;
    let difference = 0;
    let energy = 0;
    for (let i = 0; i < a.length; i++) {
      const d = a[i] - b[i];
      difference += Number.isFinite(d) ? d * d : 0;
      energy += a[i] * a[i];
    }
    total += difference / Math.max(energy, 1e-30);
  }
  return total;
}

/** Feeds of the samples measured on: up to MEASURE_MAX_SAMPLES, stopping once their inputs hold MEASURE_INPUT_VALUES. */
async function measurementFeeds(ort: OrtModule, model: Model, samples: SampleSource): Promise<Record<string, OrtTensor>[]> {
  const feeds: Record<string, OrtTensor>[] = [];
  let inputValues = 0;
  for await (const sample of checkedSamples(samples, modelSignature(model).inputs)) {
    feeds.push(sampleFeeds(ort, sample));
    for (const t of Object.values(sample.inputs)) inputValues += t.dims.reduce((n, d) => n * d, 1);
    if (feeds.length >= MEASURE_MAX_SAMPLES || inputValues >= MEASURE_INPUT_VALUES) break;
  }
  return feeds;
}

/** Every second sample of `source`, starting at `parity` (0 or 1). */
function alternate(source: SampleSource, parity: 0 | 1): SampleSource {
  return {
    inputs: source.inputs,
    count: source.count === undefined ? undefined : Math.floor((source.count + 1 - parity) / 2),
    description: `${source.description}, ${parity === 0 ? 'even' : 'odd'} samples`,
    warning: source.warning,
    async *[Symbol.asyncIterator]() {
      let position = 0;
      for await (const sample of source) if (position++ % 2 === parity) yield sample;
    },
  };
}

/** The first `limit` samples of `source`. */
function firstOf(source: SampleSource, limit: number): SampleSource {
  return {
    ...source,
    count: source.count === undefined ? undefined : Math.min(source.count, limit),
    async *[Symbol.asyncIterator]() {
      if (limit <= 0) return;
      let n = 0;
      for await (const sample of source) {
        yield sample;
        if (++n >= limit) return;
      }
    },
  };
}
