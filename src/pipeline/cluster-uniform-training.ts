// Recovery for uniform codes (cluster `step`): quantization-aware distillation. Centroid training
// has nothing to train here (a group's grid is one scale), so the float weights train instead,
// read through fake quantization at the steps the codes were cut with:
//   W -> DequantizeLinear(QuantizeLinear(W, steps, 0, axis), steps, 0, axis)
// (int8 codes; the gradient rules of train/gradients/quantize.ts give W the clipped
// straight-through gradient; the steps are frozen, so training sees exactly the grid the codes will
// use). Biases and other float vectors train with them (they stay float in the file). The student
// learns the original's `value` (MSE, or KL per position), then the trained weights are rounded
// on the same steps again by the cluster pass (`fixedSteps`).
import { constantValue } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import { attr } from '../ir/attribute.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import { topologicalSort } from '../ir/toposort.js';
import type { ClusteredTensor } from '../methods/cluster/cluster.js';
import { upgradeOpset } from '../optimize/upgrade-opset.js';
import { withWeights } from '../train/trainer.js';
import type { TrainingArrays } from '../train/array-data.js';
import type { RecipeContext } from './context.js';
import { distillValue, type ValueDistillSettings } from './recovery.js';

/** The distillation settings of recovery.ts that apply here (masks, frozen constants and BatchNorm are this file's own choice). */
export type UniformTrainingSettings = Pick<ValueDistillSettings, 'epochs' | 'batchSize' | 'schedule' | 'optimizer' | 'seed' | 'maxSteps' | 'loss'>;

/** Uniform tensors of the cluster pass, as the fake quantization needs them. */
type UniformTensor = ClusteredTensor & { uniform: NonNullable<ClusteredTensor['uniform']> };

export function isUniform(t: ClusteredTensor): t is UniformTensor {
  return t.uniform !== undefined;
}

/** A copy of `model` whose `tensors` are read through fake quantization at their steps. */
export function withFakeQuantization(model: Model, tensors: readonly UniformTensor[]): Model {
  const copy = model.clone();
  // Per-axis QuantizeLinear needs opset 13 (the cluster pass upgrades the same way).
  if ((copy.opset('') ?? 1) < 13) upgradeOpset(copy, { to: 13 });
  const graph = copy.graph;
  for (const t of tensors) {
    const weight = constantValue(graph, t.name);
    if (weight === undefined) throw new Error(`cluster: '${t.name}' is not a constant of the main graph: uniform codes train only there`);
    const { axis, steps } = t.uniform;
    const channels = axis === undefined ? 1 : t.dims[axis];
    const perGroup = axis === undefined ? 1 : Math.ceil(channels / steps.length);
    const scaleDims = axis === undefined ? [] : [channels];
    // One step per channel (a group's step repeated over its channels): per-axis Q/DQ take a vector of the axis' length.
    const scale = graph.addInitializer(Tensor.fromArray(graph.uniqueName(`${t.name}/qat_step`), DataType.FLOAT, scaleDims, Float32Array.from({ length: channels }, (_, c) => steps[Math.floor(c / perGroup)]))).name;
    const zero = graph.addInitializer(Tensor.fromArray(graph.uniqueName(`${t.name}/qat_zero`), DataType.INT8, scaleDims, new Int8Array(channels))).name;
    const codes = graph.uniqueName(`${t.name}/qat_codes`);
    const value = graph.uniqueName(`${t.name}/qat_value`);
    const axisAttr = axis === undefined ? [] : [attr.int('axis', axis)];
    const readers = graph.consumers(t.name);
    graph.addNode(new Node({ opType: 'QuantizeLinear', inputs: [t.name, scale, zero], outputs: [codes], name: graph.uniqueName(`${t.name}/qat_Quantize`), attributes: axisAttr }));
    graph.addNode(new Node({ opType: 'DequantizeLinear', inputs: [codes, scale, zero], outputs: [value], name: graph.uniqueName(`${t.name}/qat_Dequantize`), attributes: axisAttr }));
    for (const node of readers) node.inputs = node.inputs.map((i) => (i === t.name ? value : i));
  }
  graph.changed();
  topologicalSort(graph);
  return copy;
}

/**
 * Float constants that train: the quantized weights, and float vectors (biases, norm scales) beside
 * them; never a BatchNormalization's running mean and variance (statistics, not parameters).
 */
function trainableNames(model: Model, tensors: readonly UniformTensor[]): Set<string> {
  const names = new Set(tensors.map((t) => t.name));
  const statistics = new Set(model.graph.nodes.filter((n) => n.opType === 'BatchNormalization').flatMap((n) => n.inputs.slice(3, 5)));
  for (const t of model.graph.initializers) if (t.dataType === DataType.FLOAT && t.dims.length === 1 && t.elementCount > 1 && !statistics.has(t.name)) names.add(t.name);
  return names;
}

/**
 * Trains the float weights of `teacher` under fake quantization of `tensors` so that `value`
 * matches the teacher's; returns the teacher with the trained weights (float, to be cut again at
 * the same steps).
 */
export async function trainUniform(teacher: Model, tensors: readonly UniformTensor[], inputs: TrainingArrays['inputs'], value: string, settings: UniformTrainingSettings, ctx: RecipeContext): Promise<{ model: Model; meanLoss: number[]; steps: number; inner: boolean }> {
  const student = withFakeQuantization(teacher, tensors);
  const trainable = trainableNames(teacher, tensors);
  const frozen: string[] = [];
  for (const t of student.graph.initializers) if (!trainable.has(t.name)) frozen.push(t.name);
  for (const n of student.graph.nodes) if (n.opType === 'Constant' && !trainable.has(n.outputs[0])) frozen.push(n.outputs[0]);
  // BatchNormalization at its running statistics, as deployed: with batch statistics (8 lines) the
  // weights learned a normalization inference never uses (PP-OCRv4 rec: 53.5% -> 8% of held-out
  // lines after 2 epochs, while the training loss fell 0.20 -> 0.08).
  const trained = await distillValue(teacher, student, inputs, value, { ...settings, frozen, batchNorm: 'frozen' }, ctx, 'cluster');
  const weights = new Map<string, Tensor>();
  for (const name of trainable) {
    const t = constantValue(trained.model.graph, name);
    if (t !== undefined) weights.set(name, t);
  }
  return { model: withWeights(teacher, weights), meanLoss: trained.meanLoss, steps: trained.steps, inner: trained.inner };
}
