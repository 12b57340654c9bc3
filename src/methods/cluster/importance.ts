// Activation importance for weight sharing: an error d in weight W[k, n] moves the layer's output
// by x_k · d, so over the samples its cost is E[x_k²] · d² (the diagonal of XᵀX, as GPTQ and AWQ
// weigh weights). Each element of a weight is given the mean square of the input feature it
// multiplies, measured on calibration samples, and k-means minimises the weighted error instead of
// the plain one. Embedding tables (Gather) and layers whose input is not measured keep equal
// weights.
import { type ActivationAccumulator, collectActivations } from '../../eval/activation-stats.js';
import { ChannelNorms } from '../../eval/channel-norms.js';
import type { SampleSource } from '../../eval/samples.js';
import type { Model } from '../../ir/model.js';
import { weightedOp } from '../../graph-edit/weighted-layers.js';
import type { OrtModule } from '../../runtime/ort-types.js';
import type { ClusterTarget } from './targets.js';

export interface ImportanceResult {
  /** Per weight name (main graph), one importance per element. */
  byWeight: Map<string, Float64Array>;
  /** Weights left with equal importance, with why. */
  unmeasured: { tensor: string; reason: string }[];
  samples: number;
}

/** The input channel each weight element multiplies (undefined when the layout is not known). */
function inputChannelOf(target: ClusterTarget): ((i: number) => number) | undefined {
  const reader = target.readers[0];
  const axes = reader.axes;
  const dims = target.weight.dims;
  if (axes === undefined || axes.reduction === undefined) return undefined;
  const inner = dims.slice(axes.reduction + 1).reduce((a, b) => a * b, 1);
  const size = dims[axes.reduction];
  const index = (i: number) => Math.floor(i / inner) % size;
  if (reader.node.opType === 'Conv' && axes.groups > 1) {
    // W [M, C/g, k...]: output channel m reads input channels of its group.
    const perGroup = dims[0] / axes.groups;
    const outerInner = dims.slice(1).reduce((a, b) => a * b, 1);
    return (i) => Math.floor(Math.floor(i / outerInner) / perGroup) * size + index(i);
  }
  return index;
}

/** Mean squares of every target's input features on `samples` (at most `limit`), spread over its elements. */
export async function activationImportance(ort: OrtModule, model: Model, targets: readonly ClusterTarget[], samples: SampleSource, options: { limit?: number; threads?: number } = {}): Promise<ImportanceResult> {
  const unmeasured: { tensor: string; reason: string }[] = [];
  const accumulators = new Map<string, ChannelNorms>();
  const plans: { target: ClusterTarget; key: string; channelOf: (i: number) => number }[] = [];
  for (const target of targets) {
    const reader = target.readers[0];
    const channelOf = inputChannelOf(target);
    if (channelOf === undefined) {
      unmeasured.push({ tensor: target.name, reason: reader.node.opType === 'Gather' ? 'an embedding table: rows are looked up, not summed' : 'no reduction axis' });
      continue;
    }
    if (reader.graph !== model.graph) {
      unmeasured.push({ tensor: target.name, reason: 'read inside an If/Loop body' });
      continue;
    }
    const axis = weightedOp(reader.node)?.activationAxes(reader.node).input;
    if (axis === undefined) {
      unmeasured.push({ tensor: target.name, reason: 'its input has no channel axis' });
      continue;
    }
    const value = reader.node.inputs[0];
    const key = `${value}\u0000${axis}`;
    if (!accumulators.has(key)) accumulators.set(key, new ChannelNorms(value, axis));
    plans.push({ target, key, channelOf });
  }
  const collected = await collectActivations(ort, model, [...accumulators.values()] as ActivationAccumulator[], samples, { threads: options.threads, limit: options.limit ?? 64, purpose: 'cluster importance' });
  const byWeight = new Map<string, Float64Array>();
  for (const { target, key, channelOf } of plans) {
    const norms = accumulators.get(key) as ChannelNorms;
    const sums = norms.sumSquares;
    const expected = target.readers[0].axes?.inputChannels;
    if (sums.length === 0 || (expected !== undefined && sums.length !== expected)) {
      unmeasured.push({ tensor: target.name, reason: sums.length === 0 ? 'its input was not measured (not float32)' : `its input has ${sums.length} channels, the weight reads ${expected}` });
      continue;
    }
    const count = Math.max(1, norms.count);
    // A feature that is always zero still deserves a little weight: k-means must place every value.
    let mean = 0;
    for (const s of sums) mean += s / count / sums.length;
    const floor = mean * 1e-6 + 1e-30;
    byWeight.set(target.name, Float64Array.from({ length: target.weight.elementCount }, (_, i) => sums[channelOf(i)] / count + floor));
  }
  return { byWeight, unmeasured, samples: collected.samples };
}
