// Turns an inference model into one training step: trainable weights become graph inputs, a loss
// is built on the model's outputs, autodiff adds the backward nodes, and the optimizer's update is
// fused in, so one onnxruntime run computes the loss, the new weights and the new optimizer state.
// BatchNormalization switches to batch statistics and reports its updated running mean/variance.
import { attr } from '../ir/attribute.js';
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { DataType, dataTypeInfo } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { makeValueInfo, type Dim } from '../ir/value-info.js';
import { GraphBuilder } from '../ir/builder.js';
import { nodeOrder } from '../ir/toposort.js';
import { upgradeOpset } from '../optimize/upgrade-opset.js';
import { inferShapes, type ShapeInferenceResult } from '../optimize/shape-inference/index.js';
import { addGradients } from './autodiff.js';
import { Emitter } from './emitter.js';
import { GradientError } from './gradient-error.js';
import { crossEntropy, meanSquaredError } from './losses.js';
import { clipByGlobalNorm, emitOptimizer, type OptimizerSpec, type StateSlot } from './optimizers.js';
import { FORWARD_REWRITES } from './rewrites/registry.js';

export type LossSpec =
  | { kind: 'cross-entropy'; output: string; labelSmoothing?: number }
  | { kind: 'mse'; output: string }
  /**
   * Any loss built in the graph (distillation builds its own): `build` emits it and returns the
   * scalar loss plus the graph inputs it declared (targets, teacher logits).
   */
  | { kind: 'custom'; build: (e: Emitter, model: Model) => { loss: string; inputs: string[] } };

export interface TrainingSpec {
  loss: LossSpec;
  optimizer: OptimizerSpec;
  /** Weights to train; default every float weight of the main graph that reaches the loss. */
  trainable?: readonly string[];
  /** Weights kept as they are (names or patterns), taken out of the default set. */
  frozen?: readonly (string | RegExp)[];
  /** Clip gradients by their global L2 norm. */
  clipNorm?: number;
  /** 'batch' (default): BatchNormalization uses batch statistics and updates its running ones. */
  batchNorm?: 'batch' | 'frozen';
  /** Pruning masks by weight name: the weight's gradient and update are multiplied by its mask. */
  masks?: ReadonlyMap<string, Tensor>;
  /** Concrete shapes for inputs, when symbolic ones leave shape inference unsure. */
  inputShapes?: Record<string, Dim[]>;
}

export interface TrainableWeight {
  name: string;
  /** The value the model holds now (initial value of training). */
  initial: Tensor;
  /** Graph output holding the updated weight. */
  updated: string;
}

/** A running statistic of BatchNormalization: fed in each step, updated value read back. */
export interface Buffer {
  name: string;
  initial: Tensor;
  updated: string;
}

export interface TrainingStep {
  /** The training graph. Feed: data inputs, labels/targets, weights, state, buffers, lr, step. */
  model: Model;
  weights: TrainableWeight[];
  state: (StateSlot & { dims: number[] })[];
  buffers: Buffer[];
  /** Inputs the data must provide: the model's own inputs plus the loss's (labels, targets). */
  dataInputs: string[];
  lossInputs: string[];
  learningRate: string;
  step: string;
  loss: string;
  /** Global gradient norm before clipping (only with clipNorm). */
  gradientNorm?: string;
  /** Float type training runs in. */
  type: DataType;
}

/** Inputs added to the training graph for the scalar hyper-parameters. */
const LEARNING_RATE = 'train/learning_rate';
const STEP = 'train/step';
/** The int64 class ids cross-entropy reads, one per sample: training data feeds them under this name. */
export const LABEL_INPUT = 'train/labels';
/** Graph input of the targets of an 'mse' loss. */
export const TARGETS = 'train/targets';

/**
 * Why shape inference left a value untyped: the first node it could not type is the cause (the
 * nodes after it only lack their inputs' types).
 */
export function whyUntyped(inferred: ShapeInferenceResult): string {
  const first = inferred.unknown[0];
  return first === undefined ? 'no node computes it' : `it stops at node '${first.node}' (${first.op}): ${first.reason}`;
}

export function buildTrainingStep(source: Model, spec: TrainingSpec): TrainingStep {
  const model = source.clone();
  const opset = model.opset('') ?? 1;
  if (opset < 13) upgradeOpset(model, { to: 13 });
  // Opsets 13 to 17 differ only in added types and optional inputs for the ops used here;
  // 17 brings LayerNormalization and lets BatchNormalization run in training mode.
  if ((model.opset('') ?? 13) < 17) setOpset(model, 17);
  const graph = model.graph;
  const builder = new GraphBuilder(graph);
  const constants = new Map<string, string>();
  const emitter = (prefix: string) => new Emitter(builder, model.opset('') ?? 17, constants, prefix);
  const modelInputs = graph.inputs.map((i) => i.name).filter((n) => graph.initializer(n) === undefined);

  // The loss first: it decides which weights matter.
  const lossInputs: string[] = [];
  let loss: string;
  const outputType = (name: string): { elemType: DataType; shape: Dim[] | undefined } => {
    const inferred = inferShapes(model, { inputShapes: spec.inputShapes });
    const t = inferred.main.get(name);
    if (t === undefined) {
      throw new GradientError(`loss: shape inference cannot type output '${name}', which the loss reads: ${whyUntyped(inferred)}`);
    }
    return { elemType: t.elemType as DataType, shape: t.shape };
  };
  const lossSpec = spec.loss;
  if (lossSpec.kind === 'custom') {
    const built = lossSpec.build(emitter('loss'), model);
    loss = built.loss;
    lossInputs.push(...built.inputs);
  } else {
    if (!graph.isGraphOutput(lossSpec.output)) throw new GradientError(`loss: '${lossSpec.output}' is not an output of the model (outputs: ${graph.outputs.map((o) => o.name).join(', ')})`);
    const type = outputType(lossSpec.output);
    if (lossSpec.kind === 'cross-entropy') {
      const classes = type.shape?.[type.shape.length - 1];
      if (type.shape?.length !== 2 || typeof classes !== 'number') {
        throw new GradientError(`loss: cross-entropy needs logits of shape [N, classes] with a fixed number of classes; '${lossSpec.output}' is ${JSON.stringify(type.shape)}`);
      }
      builder.input(LABEL_INPUT, DataType.INT64, [type.shape[0]]);
      lossInputs.push(LABEL_INPUT);
      loss = crossEntropy(emitter('loss'), lossSpec.output, LABEL_INPUT, type.elemType, { classes, labelSmoothing: lossSpec.labelSmoothing });
    } else {
      if (type.shape === undefined) throw new GradientError(`loss: the rank of '${lossSpec.output}' could not be inferred`);
      builder.input(TARGETS, type.elemType, type.shape);
      lossInputs.push(TARGETS);
      loss = meanSquaredError(emitter('loss'), lossSpec.output, TARGETS, type.shape.length);
    }
  }

  // After the loss, so a value the loss reads is never rewritten away.
  for (const rewrite of FORWARD_REWRITES) rewrite.run(graph);

  const buffers = spec.batchNorm === 'frozen' ? [] : batchStatistics(model);
  const weights = chooseWeights(model, loss, spec, new Set(buffers.map((b) => b.name)));
  if (weights.length === 0) throw new GradientError('nothing to train: no float weight reaches the loss (check trainable/frozen)');
  const type = weights[0].initial.dataType;
  for (const w of weights) {
    if (w.initial.dataType !== type) throw new GradientError(`weight '${w.name}' is ${dataTypeInfo(w.initial.dataType).name}, others ${dataTypeInfo(type).name}: train in one float type`);
    makeGraphInput(model, w.name, w.initial);
  }
  for (const b of buffers) makeGraphInput(model, b.name, b.initial);

  const { gradients } = addGradients(model, { loss, wrt: weights.map((w) => w.name), inputShapes: spec.inputShapes });
  const e = emitter('optimizer');
  let grads = weights.map((w) => gradients.get(w.name) as string);
  const masks = spec.masks ?? new Map<string, Tensor>();
  const maskOf = (name: string) => {
    const mask = masks.get(name);
    if (mask === undefined) return undefined;
    const weight = weights.find((w) => w.name === name) as { initial: Tensor };
    if (mask.dims.join(',') !== weight.initial.dims.join(',')) throw new GradientError(`mask of '${name}' has dims [${mask.dims}], the weight [${weight.initial.dims}]`);
    const maskName = builder.fresh(`${name}/mask`);
    graph.addInitializer(Tensor.fromBytes(maskName, mask.dataType, mask.dims, mask.bytes()));
    return maskName;
  };
  const maskNames = weights.map((w) => maskOf(w.name));
  grads = grads.map((g, i) => (maskNames[i] === undefined ? g : e.op('Mul', [g, maskNames[i] as string])));
  let gradientNorm: string | undefined;
  if (spec.clipNorm !== undefined) {
    const clipped = clipByGlobalNorm(e, grads, weights.map((w) => w.initial.dims.length), spec.clipNorm, type);
    grads = clipped.grads;
    gradientNorm = clipped.norm;
  }
  builder.input(LEARNING_RATE, type, []);
  builder.input(STEP, type, []);
  const state: (StateSlot & { dims: number[] })[] = [];
  const declareState = (param: string, suffix: string) => builder.freshInput(`${param}/${suffix}`, type, [...(weights.find((w) => w.name === param)?.initial.dims ?? [])]);
  const optimized = emitOptimizer(e, spec.optimizer, weights.map((w, i) => ({ param: w.name, grad: grads[i] })), { learningRate: LEARNING_RATE, step: STEP, type }, declareState);
  for (const slot of optimized.state) state.push({ ...slot, dims: [...(weights.find((w) => w.name === slot.param)?.initial.dims ?? [])] });

  // Outputs: the loss, then updated weights, state and running statistics (the model's own stay).
  graph.addOutput(loss);
  const trainable: TrainableWeight[] = weights.map((w, i) => {
    const update = optimized.updates[i].updated;
    const mask = maskNames[i];
    // Masked weights stay exactly zero where the mask is, whatever the optimizer's state says.
    const updated = mask === undefined ? update : e.op('Mul', [update, mask]);
    graph.addOutput(updated);
    return { name: w.name, initial: w.initial, updated };
  });
  for (const slot of state) graph.addOutput(slot.output);
  for (const b of buffers) graph.addOutput(b.updated);
  if (gradientNorm !== undefined) graph.addOutput(gradientNorm);
  graph.changed();
  return { model, weights: trainable, state, buffers, dataInputs: modelInputs, lossInputs, learningRate: LEARNING_RATE, step: STEP, loss, gradientNorm, type };
}

function setOpset(model: Model, version: number): void {
  model.opsetImports = model.opsetImports.map((o) => (isStandardDomain(o.domain) ? { ...o, version } : o));
}

/** A weight candidate: a float constant of the main graph (initializer or Constant node output). */
function chooseWeights(model: Model, loss: string, spec: TrainingSpec, buffers: ReadonlySet<string>): { name: string; initial: Tensor }[] {
  const graph = model.graph;
  const reachesLoss = valuesReaching(model, loss);
  const isFrozen = (name: string) => (spec.frozen ?? []).some((p) => (typeof p === 'string' ? p === name : p.test(name)));
  if (spec.trainable !== undefined) {
    return spec.trainable.map((name) => {
      const tensor = constantValue(graph, name);
      if (tensor === undefined) {
        const inSubgraph = graph.nodes.some((n) => n.subgraphs().some((g) => g.definesLocally(name)));
        throw new GradientError(`trainable '${name}' is not a weight of the main graph${inSubgraph ? ' (it lives inside an If/Loop body, which cannot be trained)' : ''}`);
      }
      if (!dataTypeInfo(tensor.dataType).isFloat) throw new GradientError(`trainable '${name}' is ${dataTypeInfo(tensor.dataType).name}, not a float weight`);
      return { name, initial: tensor };
    });
  }
  const names = new Set<string>();
  for (const t of graph.initializers) names.add(t.name);
  for (const n of graph.nodes) if (n.opType === 'Constant' && isStandardDomain(n.domain)) names.add(n.outputs[0]);
  const chosen: { name: string; initial: Tensor }[] = [];
  for (const name of names) {
    if (buffers.has(name) || isFrozen(name) || !reachesLoss.has(name)) continue;
    const tensor = constantValue(graph, name);
    // Scalars and 1-element constants are hyper-parameters of ops (epsilons, exponents), not weights.
    if (tensor === undefined || !dataTypeInfo(tensor.dataType).isFloat || tensor.elementCount <= 1) continue;
    if (!feedsDifferentiably(model, name)) continue;
    chosen.push({ name, initial: tensor });
  }
  return chosen;
}

/** Values from which the loss can be reached (backward closure over the main graph). */
function valuesReaching(model: Model, loss: string): Set<string> {
  const reached = new Set([loss]);
  const order = nodeOrder(model.graph).order;
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (node.outputs.some((o) => reached.has(o))) for (const v of node.inputs) if (v !== '') reached.add(v);
  }
  return reached;
}

/** Shape-like uses (Reshape's shape, Resize's scales, Clip bounds, ...) are not weights. */
const NON_WEIGHT_INPUTS: Record<string, number[]> = {
  Reshape: [1], Expand: [1], Tile: [1], Slice: [1, 2, 3, 4], Pad: [1, 2, 3], Resize: [1, 2, 3], Upsample: [1],
  Clip: [1, 2], ConstantOfShape: [0], Range: [0, 1, 2], OneHot: [1, 2], TopK: [1], Split: [1],
  Squeeze: [1], Unsqueeze: [1], ReduceSum: [1], ReduceMean: [1], ReduceMax: [1], ReduceMin: [1],
  BatchNormalization: [3, 4], QuantizeLinear: [1, 2], DequantizeLinear: [1, 2], Dropout: [1, 2], Pow: [1],
};

function feedsDifferentiably(model: Model, name: string): boolean {
  return model.graph.consumers(name).some((node) => node.inputs.some((v, i) => v === name && !(NON_WEIGHT_INPUTS[node.opType] ?? []).includes(i)));
}

/** Replaces an initializer or Constant node by a graph input of the same name. */
function makeGraphInput(model: Model, name: string, value: Tensor): void {
  const graph = model.graph;
  if (graph.initializer(name) !== undefined) graph.removeInitializer(name);
  const producer = graph.producer(name);
  if (producer !== undefined) graph.removeNode(producer);
  if (!graph.isGraphInput(name)) graph.inputs.push(makeValueInfo(name, { elemType: value.dataType, shape: [...value.dims] }));
  graph.changed();
}

/**
 * Switches every BatchNormalization of the main graph to batch statistics (training_mode = 1)
 * and returns its running mean and variance as buffers with their updated outputs.
 */
function batchStatistics(model: Model): Buffer[] {
  const graph = model.graph;
  const builder = new GraphBuilder(graph);
  const buffers: Buffer[] = [];
  for (const node of graph.nodes) {
    if (node.opType !== 'BatchNormalization' || !isStandardDomain(node.domain)) continue;
    const [mean, variance] = [node.inputs[3], node.inputs[4]];
    const meanValue = constantValue(graph, mean);
    const varianceValue = constantValue(graph, variance);
    if (meanValue === undefined || varianceValue === undefined) throw new GradientError(`node '${node.label}' (BatchNormalization): its running mean and variance must be constants`);
    if (graph.consumers(mean).length > 1 || graph.consumers(variance).length > 1) {
      throw new GradientError(`node '${node.label}' (BatchNormalization): its running statistics are shared with other nodes`);
    }
    // Momentum 0 makes the node's running outputs the batch mean and variance themselves, which its
    // gradient rule then reads instead of recomputing them from x (two passes over x); the running
    // update is done here on per-channel vectors, as the node did. (The node keeps its running
    // inputs, two distinct graph inputs: fed one shared zero tensor, onnxruntime gave both outputs
    // the variance.)
    const momentum = node.attrFloat('momentum', 0.9);
    node.setAttribute(attr.int('training_mode', 1));
    node.setAttribute(attr.float('momentum', 0));
    const constant = (base: string, dims: readonly number[], values: number[]) => {
      const name = builder.fresh(`${node.outputs[0]}/${base}`);
      graph.addInitializer(Tensor.fromArray(name, meanValue.dataType, dims, meanValue.dataType === DataType.DOUBLE ? Float64Array.from(values) : Float32Array.from(values)));
      return name;
    };
    const [batchMean, batchVariance] = [builder.fresh(`${node.outputs[0]}/batch_mean`), builder.fresh(`${node.outputs[0]}/batch_variance`)];
    node.outputs = [node.outputs[0], batchMean, batchVariance];
    // At momentum 0 the node's running inputs do not change its outputs, and onnxruntime may write
    // its running outputs into the buffers of those inputs: given the fed buffers, it overwrote the
    // running mean before the update below read it (the update became the batch mean alone). So the
    // node reads constants of its own, and only the update reads the fed running statistics.
    const channels = meanValue.dims;
    node.inputs = [...node.inputs.slice(0, 3), constant('unused_mean', channels, new Array(meanValue.elementCount).fill(0)), constant('unused_variance', channels, new Array(meanValue.elementCount).fill(1))];
    const [kept, taken] = [constant('momentum', [], [momentum]), constant('one_minus_momentum', [], [1 - momentum])];
    const running = (input: string, batch: string) => builder.node('Add', [builder.node('Mul', [input, kept]), builder.node('Mul', [batch, taken])], [], { nameBase: `${input}/running` });
    const updatedMean = running(mean, batchMean);
    const updatedVariance = running(variance, batchVariance);
    buffers.push({ name: mean, initial: meanValue, updated: updatedMean }, { name: variance, initial: varianceValue, updated: updatedVariance });
  }
  graph.changed();
  return buffers;
}
