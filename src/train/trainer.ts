// Runs training steps in onnxruntime: each step feeds a batch, the current weights, optimizer
// state and running statistics, the learning rate and step number to the training graph, and
// keeps the updated values it returns for the next step. No tensor math happens here: the graph
// does it all. Works with onnxruntime-node and -web alike.
import { holdsNonFinite, nonFiniteElement } from '../eval/match-inputs.js';
import { attr } from '../ir/attribute.js';
import { isStandardDomain } from '../ir/constants.js';
import { DataType, dataTypeName } from '../ir/dtype.js';
import { tensorTypeOf } from '../ir/value-info.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { type Progress, silentProgress } from '../pipeline/progress.js';
import type { OrtModule, OrtTensor } from '../runtime/ort-types.js';
import { openSession } from '../runtime/ort-errors.js';
import { type ModelSession, fromOrtTensor, toOrtTensor } from '../runtime/session.js';
import { GradientError } from './gradient-error.js';
import { buildMultiStep, type MultiStep } from './multi-step.js';
import { learningRate, type Schedule } from './schedules.js';
import { epochOrder } from './shuffle.js';
import { buildTrainingStep, type TrainingSpec, type TrainingStep } from './training-graph.js';

/** Samples to train on, batched by index. */
export interface TrainingData {
  readonly size: number;
  /** Feeds for the model's inputs and the loss's inputs (labels, targets) of these samples. */
  batch(indices: ArrayLike<number>): Record<string, Tensor>;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  /** Shuffling seed (default 0). */
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default true: batch statistics stay stable). */
  dropLast?: boolean;
  progress?: Progress;
  /** Called after every epoch, e.g. to measure test accuracy; its numbers go into the history. */
  afterEpoch?: (epoch: number, trainer: Trainer) => Promise<Record<string, number>> | Record<string, number>;
  /** Stop after this many steps in total (for benchmarks and smoke runs). */
  maxSteps?: number;
}

export interface EpochRecord {
  epoch: number;
  steps: number;
  meanLoss: number;
  seconds: number;
  metrics: Record<string, number>;
}

/** Everything needed to resume: current weights, optimizer state, running statistics, counters. */
export interface TrainerState {
  tensors: Map<string, Tensor>;
  step: number;
  epoch: number;
}

export interface TrainerOptions {
  threads?: number;
  /** Passed to onnxruntime (e.g. ['wasm'] in a browser). */
  executionProviders?: string[];
  /** Whether onnxruntime's idle threads spin (its default) or sleep; see SessionOptions.spinning. */
  spinning?: boolean;
  /**
   * Steps `fit` hands to onnxruntime in one run (a Loop over the step graph, multi-step.ts), so the
   * weights are copied out once per run; 1 runs each step on its own. Default 8 where the weights,
   * optimizer state and statistics take at most 64 MiB, else 1: the Loop's session holds the
   * graph's constants a second time, and a large model's step dwarfs the copy anyway.
   */
  stepsPerRun?: number;
}

const STEPS_PER_RUN = 8;
const STEPS_PER_RUN_UP_TO_BYTES = 64 * 2 ** 20;

export class Trainer {
  /** Completed optimizer steps. */
  stepCount = 0;
  /** Completed epochs. */
  epochCount = 0;

  private constructor(
    private readonly ort: OrtModule,
    private readonly source: Model,
    readonly training: TrainingStep,
    private readonly session: ModelSession,
    /** Current value of every fed-back input: weights, state, buffers. */
    private readonly values: Map<string, OrtTensor>,
    /** Output name -> the input it feeds next step. */
    private readonly feedback: ReadonlyMap<string, string>,
    private readonly options: TrainerOptions,
  ) {}

  /** The multi-step graph and its session, built on first use. */
  private multi: Promise<{ graph: MultiStep; session: ModelSession }> | undefined;

  static async create(ort: OrtModule, model: Model, spec: TrainingSpec, options: TrainerOptions = {}): Promise<Trainer> {
    const training = buildTrainingStep(model, spec);
    const session = await openSession(ort, training.model, { threads: options.threads, executionProviders: options.executionProviders, spinning: options.spinning }, 'the training graph');
    const values = new Map<string, OrtTensor>();
    const feedback = new Map<string, string>();
    // Fed as they are (views of the caller's bytes): nothing in the training graph writes into an
    // input. BatchNormalization once did (its running outputs into its running inputs' buffers,
    // which clones share); training-graph.ts gives it inputs of its own (test/prune-channels-gradual).
    for (const w of training.weights) {
      values.set(w.name, toOrtTensor(ort, w.initial));
      feedback.set(w.updated, w.name);
    }
    for (const b of training.buffers) {
      values.set(b.name, toOrtTensor(ort, b.initial));
      feedback.set(b.updated, b.name);
    }
    for (const slot of training.state) {
      const zeros = Tensor.fromArray(slot.input, training.type, slot.dims, training.type === DataType.DOUBLE ? new Float64Array(count(slot.dims)) : new Float32Array(count(slot.dims)));
      values.set(slot.input, toOrtTensor(ort, zeros));
      feedback.set(slot.output, slot.input);
    }
    return new Trainer(ort, model, training, session, values, feedback, options);
  }

  /** One optimizer step on one batch; returns the batch's loss (before the update). */
  async step(batch: Record<string, Tensor>, rate: number): Promise<number> {
    const feeds: Record<string, OrtTensor> = Object.fromEntries(this.values);
    for (const name of [...this.training.dataInputs, ...this.training.lossInputs]) {
      const tensor = batch[name];
      if (tensor === undefined) throw new GradientError(`training data gave no '${name}' (the step needs ${[...this.training.dataInputs, ...this.training.lossInputs].map((n) => `'${n}'`).join(', ')})`);
      checkFeed(this.training, name, tensor);
      feeds[name] = toOrtTensor(this.ort, tensor);
    }
    feeds[this.training.learningRate] = this.scalar(rate);
    feeds[this.training.step] = this.scalar(this.stepCount + 1);
    const wanted = [this.training.loss, ...this.feedback.keys()];
    const result = await this.session.run(feeds, wanted);
    for (const [output, input] of this.feedback) this.values.set(input, result[output]);
    this.stepCount++;
    return Number((result[this.training.loss].data as ArrayLike<number>)[0]);
  }

  /**
   * `rates.length` optimizer steps in one onnxruntime run; `batch` holds their batches one after
   * the other (each input [steps * batch size, ...]). Returns each step's loss (before its update).
   * The same results as that many calls of `step`.
   */
  async steps(batch: Record<string, Tensor>, rates: readonly number[]): Promise<number[]> {
    const count = rates.length;
    if (count === 1) return [await this.step(batch, rates[0])];
    const { graph, session } = await (this.multi ??= this.openMultiStep());
    const feeds: Record<string, OrtTensor> = {};
    for (const [name, stackedName] of graph.stacked) {
      const tensor = batch[name];
      if (tensor === undefined) throw new GradientError(`training data gave no '${name}' (the step needs ${[...graph.stacked.keys()].map((n) => `'${n}'`).join(', ')})`);
      const rows = tensor.dims[0] ?? 0;
      if (rows % count !== 0) throw new GradientError(`training data '${name}' has ${rows} rows, not ${count} equal batches`);
      const bytes = tensor.bytes();
      checkFeed(this.training, name, Tensor.fromBytes(name, tensor.dataType, [rows / count, ...tensor.dims.slice(1)], bytes.subarray(0, bytes.length / count)));
      feeds[stackedName] = toOrtTensor(this.ort, Tensor.fromBytes(name, tensor.dataType, [count, rows / count, ...tensor.dims.slice(1)], bytes));
    }
    const type = this.training.type === DataType.DOUBLE ? 'float64' : 'float32';
    const floats = (values: number[]) => (type === 'float64' ? Float64Array.from(values) : Float32Array.from(values));
    feeds[graph.rates] = new this.ort.Tensor(type, floats([...rates]), [count]);
    feeds[graph.firstStep] = new this.ort.Tensor(type, floats([this.stepCount + 1]), []);
    for (const c of graph.carried) feeds[c.outer] = this.values.get(c.input) as OrtTensor;
    const result = await session.run(feeds, [graph.losses, ...graph.carried.map((c) => c.final)]);
    for (const c of graph.carried) this.values.set(c.input, result[c.final]);
    this.stepCount += count;
    return Array.from(result[graph.losses].data as ArrayLike<number>, Number);
  }

  private defaultStepsPerRun(): number {
    let bytes = 0;
    for (const value of this.values.values()) bytes += (value.data as ArrayBufferView).byteLength;
    return bytes <= STEPS_PER_RUN_UP_TO_BYTES ? STEPS_PER_RUN : 1;
  }

  private async openMultiStep(): Promise<{ graph: MultiStep; session: ModelSession }> {
    const graph = buildMultiStep(this.training);
    const session = await openSession(this.ort, graph.model, { threads: this.options.threads, executionProviders: this.options.executionProviders, spinning: this.options.spinning }, 'the multi-step training graph');
    return { graph, session };
  }

  /** Epochs over `data` in seeded shuffled batches. */
  async fit(data: TrainingData, options: FitOptions): Promise<EpochRecord[]> {
    const progress = options.progress ?? silentProgress;
    const perEpoch = options.dropLast === false ? Math.ceil(data.size / options.batchSize) : Math.floor(data.size / options.batchSize);
    if (perEpoch === 0) throw new GradientError(`batch size ${options.batchSize} is larger than the ${data.size} training samples`);
    const total = perEpoch * options.epochs;
    const history: EpochRecord[] = [];
    while (this.epochCount < options.epochs) {
      const epoch = this.epochCount;
      const order = epochOrder(data.size, options.seed ?? 0, epoch);
      const started = Date.now();
      let lossSum = 0;
      let steps = 0;
      progress.start(`epoch ${epoch + 1}/${options.epochs}`, perEpoch);
      const perRun = Math.max(1, Math.floor(this.options.stepsPerRun ?? this.defaultStepsPerRun()));
      // Full batches go to onnxruntime `perRun` at a time; a last partial batch runs on its own.
      const full = Math.floor(data.size / options.batchSize);
      for (let b = 0; b < perEpoch; ) {
        const left = options.maxSteps === undefined ? Number.POSITIVE_INFINITY : options.maxSteps - this.stepCount;
        if (left <= 0) break;
        const count = b < full ? Math.min(perRun, full - b, left) : 1;
        const indices = order.subarray(b * options.batchSize, Math.min(data.size, (b + count) * options.batchSize));
        const rates = Array.from({ length: count }, (_, i) => learningRate(options.schedule, this.stepCount + i, total));
        const batch = data.batch(indices);
        const losses = await this.steps(batch, rates);
        for (const [i, loss] of losses.entries()) {
          if (!Number.isFinite(loss)) throw new GradientError(this.explainLoss(loss, batch, epoch, rates[i], this.stepCount - count + i));
          lossSum += loss;
          steps++;
          progress.tick();
        }
        b += count;
      }
      progress.done();
      this.epochCount++;
      const metrics = options.afterEpoch === undefined ? {} : await options.afterEpoch(epoch, this);
      history.push({ epoch: epoch + 1, steps, meanLoss: steps === 0 ? Number.NaN : lossSum / steps, seconds: (Date.now() - started) / 1000, metrics });
      if (options.maxSteps !== undefined && this.stepCount >= options.maxSteps) break;
    }
    return history;
  }

  /** The current weights and running statistics, as IR tensors. */
  currentWeights(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const w of this.training.weights) out.set(w.name, this.current(w.name));
    for (const b of this.training.buffers) out.set(b.name, this.current(b.name));
    return out;
  }

  /** The inference model with the trained weights (or `weights`, e.g. averaged ones): the original graph, no training nodes. */
  exportModel(weights: Map<string, Tensor> = this.currentWeights()): Model {
    return withWeights(this.source, weights);
  }

  /** Weights, optimizer state and counters, to resume from. */
  state(): TrainerState {
    const tensors = new Map<string, Tensor>();
    for (const name of this.values.keys()) tensors.set(name, this.current(name));
    return { tensors, step: this.stepCount, epoch: this.epochCount };
  }

  /** Continues from a saved state (of a trainer built with the same model and spec). */
  restore(state: TrainerState): void {
    for (const name of this.values.keys()) {
      const tensor = state.tensors.get(name);
      if (tensor === undefined) throw new GradientError(`checkpoint has no '${name}'`);
      const now = this.values.get(name) as OrtTensor;
      if (tensor.dims.join(',') !== now.dims.join(',')) throw new GradientError(`checkpoint '${name}' has dims [${tensor.dims}], the training graph wants [${now.dims}]`);
      this.values.set(name, toOrtTensor(this.ort, tensor));
    }
    this.stepCount = state.step;
    this.epochCount = state.epoch;
  }

  /**
   * Why the loss is not finite, as far as the values at hand tell: the batch or the model's
   * starting weights hold NaN/infinity, or (both finite) training diverged.
   */
  private explainLoss(loss: number, batch: Record<string, Tensor>, epoch: number, rate: number, step = this.stepCount - 1): string {
    const what = `the loss became ${loss} at step ${step + 1} (epoch ${epoch + 1})`;
    for (const [name, tensor] of Object.entries(batch)) {
      const bad = holdsNonFinite(tensor.dataType) ? nonFiniteElement(tensor.dataType, tensor.data()) : undefined;
      if (bad !== undefined) return `${what}: the batch's '${name}' holds ${bad.value} (element ${bad.index}); training data must be finite`;
    }
    for (const w of this.training.weights) {
      const bad = nonFiniteElement(w.initial.dataType, w.initial.data());
      if (bad !== undefined) return `${what}: the model's weight '${w.name}' holds ${bad.value} (element ${bad.index}) before any training`;
    }
    return `${what} although the batch and the model's starting weights are finite: training diverged; lower the learning rate (${Number(rate.toPrecision(3))} at this step) or clip gradients`;
  }

  async release(): Promise<void> {
    await this.session.release();
    if (this.multi !== undefined) await (await this.multi).session.release();
  }

  private current(name: string): Tensor {
    const tensor = fromOrtTensor(this.values.get(name) as OrtTensor, name);
    // Copy: onnxruntime may reuse the output buffer.
    return Tensor.fromBytes(name, tensor.dataType, tensor.dims, tensor.bytes().slice());
  }

  private scalar(value: number): OrtTensor {
    return this.training.type === DataType.DOUBLE ? new this.ort.Tensor('float64', Float64Array.of(value), []) : new this.ort.Tensor('float32', Float32Array.of(value), []);
  }
}

/** A copy of `model` whose main-graph weights (initializers or Constant nodes) take new values. */
export function withWeights(model: Model, weights: ReadonlyMap<string, Tensor>): Model {
  const copy = model.clone();
  const graph = copy.graph;
  for (const [name, tensor] of weights) {
    const value = Tensor.fromBytes(name, tensor.dataType, tensor.dims, tensor.bytes());
    if (graph.initializer(name) !== undefined) {
      const at = graph.initializers.findIndex((t) => t.name === name);
      graph.initializers[at] = value;
      continue;
    }
    const producer = graph.producer(name);
    if (producer !== undefined && producer.opType === 'Constant' && isStandardDomain(producer.domain)) {
      producer.attributes = [attr.tensor('value', value)];
      continue;
    }
    throw new GradientError(`cannot write trained weight '${name}': the model has no initializer or Constant node of that name`);
  }
  graph.changed();
  return copy;
}

/** A batch tensor must match the declared type and the fixed dims of its graph input. */
function checkFeed(training: TrainingStep, name: string, tensor: Tensor): void {
  const declared = tensorTypeOf(training.model.graph.inputs.find((i) => i.name === name));
  if (declared === undefined) return;
  if (declared.elemType !== tensor.dataType) {
    throw new GradientError(`training data '${name}' is ${dataTypeName(tensor.dataType)}, the model wants ${dataTypeName(declared.elemType)}`);
  }
  const shape = declared.shape;
  if (shape === undefined) return;
  const fits = shape.length === tensor.dims.length && shape.every((d, i) => typeof d !== 'number' || d === tensor.dims[i]);
  if (!fits) throw new GradientError(`training data '${name}' has dims [${tensor.dims.join(',')}], the model wants [${shape.map((d) => d ?? '?').join(',')}]`);
}

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
