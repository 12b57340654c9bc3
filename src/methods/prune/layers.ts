// The layers unstructured and N:M pruning work on: every Conv, ConvTranspose, MatMul and Gemm
// with a constant float weight, in the main graph and inside If/Loop bodies, chosen by --only and
// --exclude (op types or node-name regexes, as quantize chooses). A weight read by several
// layers is one entry. Biases, embeddings and normalization parameters are left alone.
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Tensor } from '../../ir/tensor.js';
import type { ConstantReader } from '../../graph-edit/replace-constant.js';
import { type WeightAxes, weightedOp } from '../../graph-edit/weighted-layers.js';
import { firstMatch, type NodeSelector, nodeSelector } from '../quantize/node-selector.js';

/** Op types whose weights are pruned (their `family` in the weighted-layer table is conv or linear). */
export const PRUNED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

/** Weight types the masks are computed on (float16 weights would need decoding first). */
const PRUNABLE_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.DOUBLE]);

export interface PruneTarget {
  /** The graph defining the weight. */
  scope: Graph;
  name: string;
  weight: Tensor;
  /** Every layer reading it, with where. */
  readers: (ConstantReader & { axes: WeightAxes | undefined })[];
}

export interface LayerChoice {
  exclude?: readonly string[];
  only?: readonly string[];
}

/** Selectors from --exclude/--only; `where` names the option in errors. */
export function selectors(patterns: readonly string[] | undefined, where: string): NodeSelector[] {
  return (patterns ?? []).map((p) => nodeSelector(p, where));
}

/** Why `node` is left alone, or undefined when it is pruned. */
export function leftAlone(node: Parameters<NodeSelector['matches']>[0], exclude: readonly NodeSelector[], only: readonly NodeSelector[]): string | undefined {
  const excluded = firstMatch(exclude, node);
  if (excluded !== undefined) return `excluded by '${excluded.text}'`;
  if (only.length > 0 && firstMatch(only, node) === undefined) return 'not selected by --only';
  return undefined;
}

/**
 * What a method says of one candidate weight: take it (undefined), leave the layer out silently
 * ('ignore': not a weight in the method's sense, e.g. a Gather of indices), or skip it with a reason.
 */
export type WeightCheck = (node: Parameters<NodeSelector['matches']>[0], name: string, weight: Tensor, axes: WeightAxes | undefined) => 'ignore' | string | undefined;

/**
 * The constant weights of `ops` layers, in graph order, in the main graph and inside If/Loop
 * bodies, chosen by --only and --exclude; a weight read by several layers is one entry with every
 * reader. `skipped` says which layers were left alone and why.
 */
export function weightTargets(model: Model, choice: LayerChoice, ops: ReadonlySet<string>, check: WeightCheck): { targets: PruneTarget[]; skipped: { node: string; reason: string }[] } {
  const exclude = selectors(choice.exclude, '--exclude');
  const only = selectors(choice.only, '--only');
  const targets = new Map<string, PruneTarget>();
  const scopes = new Map<Graph, number>();
  const skipped: { node: string; reason: string }[] = [];
  for (const { node, graph } of model.graph.allNodes()) {
    const op = weightedOp(node);
    if (op === undefined || !ops.has(node.opType)) continue;
    const name = node.inputs[op.weight];
    const weight = name ? constantValue(graph, name) : undefined;
    if (weight === undefined) continue;
    const axes = op.axes(node, weight.dims);
    const verdict = check(node, name, weight, axes);
    if (verdict === 'ignore') continue;
    const reason = verdict ?? leftAlone(node, exclude, only);
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

/** The weights to prune, in graph order; `skipped` says which layers were left alone and why. */
export function pruneTargets(model: Model, choice: LayerChoice): { targets: PruneTarget[]; skipped: { node: string; reason: string }[] } {
  return weightTargets(model, choice, PRUNED_OPS, (_node, name, weight) => (PRUNABLE_TYPES.has(weight.dataType) ? undefined : `weight '${name}' is not float32/float64`));
}
