// The weights weight sharing works on: the constant float32 weights of Conv, ConvTranspose, MatMul,
// Gemm and of embedding Gathers (a 2-D table gathered on axis 0), in the main graph and inside
// If/Loop bodies, chosen by --only and --exclude as pruning chooses (op types or node-name
// regexes). A weight read by several layers is one entry; its first reader gives the channel axis.
import { constantValue } from '../../ir/constants.js';
import { DataType, dataTypeName } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Tensor } from '../../ir/tensor.js';
import type { ConstantReader } from '../../graph-edit/replace-constant.js';
import { type WeightAxes, weightedOp } from '../../graph-edit/weighted-layers.js';
import { type LayerChoice, leftAlone, selectors } from '../prune/layers.js';

export const CLUSTERED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Gather']);

export interface ClusterTarget {
  /** The graph defining the weight. */
  scope: Graph;
  name: string;
  weight: Tensor;
  readers: (ConstantReader & { axes: WeightAxes | undefined })[];
}

/** The weights to cluster, in graph order, and the layers left alone with why. */
export function clusterTargets(model: Model, choice: LayerChoice): { targets: ClusterTarget[]; skipped: { node: string; reason: string }[] } {
  const exclude = selectors(choice.exclude, '--exclude');
  const only = selectors(choice.only, '--only');
  const targets = new Map<string, ClusterTarget>();
  const scopes = new Map<Graph, number>();
  const skipped: { node: string; reason: string }[] = [];
  for (const { node, graph } of model.graph.allNodes()) {
    const op = weightedOp(node);
    if (op === undefined || !CLUSTERED_OPS.has(node.opType)) continue;
    const name = node.inputs[op.weight];
    const weight = name ? constantValue(graph, name) : undefined;
    if (weight === undefined) continue;
    const axes = op.axes(node, weight.dims);
    // A Gather of anything but a 2-D float table on axis 0 is not an embedding (shape arithmetic, indices).
    if (node.opType === 'Gather' && (axes === undefined || weight.dataType !== DataType.FLOAT)) continue;
    if (weight.dataType !== DataType.FLOAT) {
      skipped.push({ node: node.label, reason: `weight '${name}' is ${dataTypeName(weight.dataType)}; only float32 weights are clustered` });
      continue;
    }
    const reason = leftAlone(node, exclude, only);
    if (reason !== undefined) {
      skipped.push({ node: node.label, reason });
      continue;
    }
    const scope = graph.scopeOf(name) ?? graph;
    if (!scopes.has(scope)) scopes.set(scope, scopes.size);
    const key = `${scopes.get(scope)}\u0000${name}`;
    const target = targets.get(key) ?? { scope, name, weight, readers: [] };
    target.readers.push({ graph, node, input: op.weight, axes });
    targets.set(key, target);
  }
  return { targets: [...targets.values()], skipped };
}
