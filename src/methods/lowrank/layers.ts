// The layers low-rank factorization can work on: MatMul and Gemm with a constant 2-D float
// weight, and Conv with group 1 (its weight seen as the matrix [M, C·k·k]), in the main graph and
// inside If/Loop bodies, chosen by --only and --exclude as pruning chooses them. A weight read by
// several layers is one target, factored once, when every reader reads it the same way; a weight
// also read by anything else is left alone (the original would stay beside its factors).
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Tensor } from '../../ir/tensor.js';
import { type ConstantReader, constantReaders } from '../../graph-edit/replace-constant.js';
import { isDepthwise, weightedOp } from '../../graph-edit/weighted-layers.js';
import { type LayerChoice, leftAlone, selectors } from '../prune/layers.js';

/** Op types factored; the other weighted ops are listed as skipped with the reason. */
export const FACTORED_OPS: ReadonlySet<string> = new Set(['MatMul', 'Gemm', 'Conv']);

/** Weight types the SVD reads (float16 weights would need decoding first). */
const FACTORED_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.DOUBLE]);

/**
 * How a layer reads its weight, which fixes how the two factors are laid out:
 * 'matrix' W [K, N] (MatMul, Gemm with transB = 0), 'transposed' W stored [N, K] (Gemm transB = 1),
 * 'conv' W [M, C, k...] with group 1.
 */
export type WeightLayout = 'matrix' | 'transposed' | 'conv';

export interface LowRankTarget {
  /** The graph defining the weight. */
  scope: Graph;
  name: string;
  weight: Tensor;
  layout: WeightLayout;
  /** Every layer reading it. */
  readers: ConstantReader[];
  /** The stored weight as the matrix decomposed: [rows, cols] = its first dim by the rest. */
  rows: number;
  cols: number;
  /** Input features K and output features N of the layer (conv: C·k·k and M). */
  inputs: number;
  outputs: number;
}

export interface SkippedLayer {
  node: string;
  reason: string;
}

/** The weights to factor, in graph order; `skipped` says which weighted layers were left alone and why. */
export function lowRankTargets(model: Model, choice: LayerChoice): { targets: LowRankTarget[]; skipped: SkippedLayer[] } {
  const exclude = selectors(choice.exclude, '--exclude');
  const only = selectors(choice.only, '--only');
  const targets = new Map<string, LowRankTarget>();
  const scopes = new Map<Graph, number>();
  const skipped: SkippedLayer[] = [];
  const skip = (label: string, reason: string) => skipped.push({ node: label, reason });
  for (const { node, graph } of model.graph.allNodes()) {
    const op = weightedOp(node);
    if (op === undefined || (op.family !== 'linear' && op.family !== 'conv')) continue;
    const name = node.inputs[op.weight];
    const weight = name ? constantValue(graph, name) : undefined;
    if (weight === undefined) continue;
    if (!FACTORED_OPS.has(node.opType)) {
      skip(node.label, `${node.opType} is not factored (MatMul, Gemm and Conv are)`);
      continue;
    }
    if (!FACTORED_TYPES.has(weight.dataType)) {
      skip(node.label, `weight '${name}' is not float32/float64`);
      continue;
    }
    const reason = leftAlone(node, exclude, only);
    if (reason !== undefined) {
      skip(node.label, reason);
      continue;
    }
    const dims = weight.dims;
    let layout: WeightLayout;
    if (node.opType === 'Conv') {
      const groups = node.attrInt('group', 1);
      if (groups !== 1) {
        skip(node.label, isDepthwise(node, dims) ? `depthwise convolution (group ${groups}): nothing to factor per channel` : `grouped convolution (group ${groups}): only group 1 is factored`);
        continue;
      }
      if (dims.length < 3) {
        skip(node.label, `weight '${name}' has ${dims.length} dims, not a convolution kernel`);
        continue;
      }
      layout = 'conv';
    } else {
      if (dims.length !== 2) {
        skip(node.label, `weight '${name}' is ${dims.length}-D [${dims}]: only 2-D weights are factored`);
        continue;
      }
      layout = node.opType === 'Gemm' && node.attrInt('transB', 0) !== 0 ? 'transposed' : 'matrix';
    }
    const scope = graph.scopeOf(name) ?? graph;
    if (!scopes.has(scope)) scopes.set(scope, scopes.size);
    const key = `${scopes.get(scope)}\u0000${name}`;
    const existing = targets.get(key);
    if (existing !== undefined && existing.layout !== layout) {
      skip(node.label, `weight '${name}' is read as ${layout} here and as ${existing.layout} by '${existing.readers[0].node.label}'`);
      continue;
    }
    const rows = dims[0];
    const cols = dims.slice(1).reduce((a, b) => a * b, 1);
    const [inputs, outputs] = layout === 'matrix' ? [rows, cols] : [cols, rows];
    const target = existing ?? { scope, name, weight, layout, readers: [], rows, cols, inputs, outputs };
    target.readers.push({ graph, node, input: op.weight });
    targets.set(key, target);
  }
  const kept: LowRankTarget[] = [];
  for (const target of targets.values()) {
    const why = sharedWith(target);
    if (why === undefined) kept.push(target);
    else for (const r of target.readers) skip(r.node.label, why);
  }
  return { targets: kept, skipped };
}

/** Why the weight must stay as it is beside any factors (another reader, a graph input or output), or undefined. */
function sharedWith(target: LowRankTarget): string | undefined {
  const { scope, name } = target;
  if (scope.isGraphInput(name)) return `weight '${name}' is also a graph input (it can be overridden at run time)`;
  if (scope.isGraphOutput(name)) return `weight '${name}' is also a graph output`;
  const ours = new Set(target.readers.map((r) => r.node));
  const other = constantReaders(scope, name).find((n) => !ours.has(n));
  if (other !== undefined) return `weight '${name}' is also read by '${other.label}' (${other.opType}), which is not factored`;
  const producer = scope.producer(name);
  if (producer !== undefined && !(producer.opType === 'Constant' && isStandardDomain(producer.domain))) return `weight '${name}' is computed by '${producer.label}'`;
  return undefined;
}
