// Applying a channel choice to the graph the analysis was made on (channel-groups.ts): every
// constant member is sliced along its channel axes (or, for the reference model, has the removed
// positions set to zero), and every edit (a depthwise Conv's group, a Reshape's target shape,
// Split sizes, Slice bounds) is rewritten from the count of surviving channels. A constant that
// other readers share with the pruned ones is copied rather than changed under them.
import { constantValue } from '../ir/constants.js';
import { dataTypeInfo, type TypedArray } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { type GatherArray, gatherAxis, zeroAxis, zeroCount } from '../kernels/sparsity.js';
import type { ChannelAnalysis, ChannelMember, MemberRole } from './channel-groups.js';
import { replaceConstant } from './replace-constant.js';

/** One constant rewritten by channel pruning. */
export interface RewrittenTensor {
  name: string;
  /** The node that reads it (the first, when several do). */
  node: string;
  op: string;
  role: MemberRole;
  dimsBefore: number[];
  dimsAfter: number[];
  /** Exact zeros in the rewritten constant. */
  zeros: number;
}

interface TensorPlan {
  scope: Graph;
  name: string;
  tensor: Tensor;
  role: MemberRole;
  /** Positions to drop, per axis. */
  drops: Map<number, number[]>;
  readers: ChannelMember[];
}

/** Whether an atom survives: its channel's root is not among `removed`. */
export function keptBy(analysis: ChannelAnalysis, removed: ReadonlySet<number>): (atom: number) => boolean {
  return (atom) => !removed.has(analysis.atoms.find(atom));
}

/**
 * Removes the channels whose roots are in `removed` from `model` (the model `analysis` was made
 * on): slices the constants, rewrites the edits, drops stale value_info. Returns what changed.
 */
export function removeChannels(model: Model, analysis: ChannelAnalysis, removed: ReadonlySet<number>): RewrittenTensor[] {
  const kept = keptBy(analysis, removed);
  const plans = tensorPlans(analysis, kept);
  const rewritten: RewrittenTensor[] = [];
  for (const plan of plans) {
    let data = plan.tensor.data() as GatherArray;
    let dims = [...plan.tensor.dims];
    for (const [axis, drop] of [...plan.drops].sort((a, b) => a[0] - b[0])) {
      const dropped = new Set(drop);
      const keep = Array.from({ length: dims[axis] }, (_, i) => i).filter((i) => !dropped.has(i));
      data = gatherAxis(data, dims, axis, keep);
      dims = dims.map((d, i) => (i === axis ? keep.length : d));
    }
    writeConstant(model, plan, Tensor.fromArray(plan.name, plan.tensor.dataType, dims, data as TypedArray));
    rewritten.push({ name: plan.name, node: plan.readers[0].node.label, op: plan.readers[0].node.opType, role: plan.role, dimsBefore: [...plan.tensor.dims], dimsAfter: dims, zeros: zeroCount(data as Float32Array) });
  }
  for (const edit of analysis.edits) if (edit.atoms.some((a) => !kept(a))) edit.apply(kept, model);
  // Declared shapes of values that carried channels are stale now; shape inference can redo them.
  for (const [graph, names] of analysis.tagged) {
    const before = graph.valueInfo.length;
    graph.valueInfo = graph.valueInfo.filter((v) => !names.has(v.name));
    if (graph.valueInfo.length !== before) graph.changed();
  }
  return rewritten;
}

/**
 * The reference for checking a removal: the same channels set to zero in every constant member
 * (shapes unchanged). Where the analysis is right, `model` after this computes exactly what the
 * pruned model computes.
 */
export function zeroChannels(model: Model, analysis: ChannelAnalysis, removed: ReadonlySet<number>): void {
  for (const plan of tensorPlans(analysis, keptBy(analysis, removed))) {
    if (!dataTypeInfo(plan.tensor.dataType).isFloat) continue;
    const data = (plan.tensor.data() as Float32Array).slice();
    for (const [axis, drop] of plan.drops) zeroAxis(data, plan.tensor.dims, axis, drop);
    writeConstant(model, plan, Tensor.fromArray(plan.name, plan.tensor.dataType, plan.tensor.dims, data));
  }
}

function tensorPlans(analysis: ChannelAnalysis, kept: (atom: number) => boolean): TensorPlan[] {
  const plans = new Map<string, TensorPlan>();
  const scopes = new Map<Graph, number>();
  for (const m of analysis.members) {
    const scope = m.graph.scopeOf(m.name) ?? m.graph;
    if (!scopes.has(scope)) scopes.set(scope, scopes.size);
    const key = `${scopes.get(scope)}\u0000${m.name}`;
    let plan = plans.get(key);
    if (plan === undefined) {
      const tensor = constantValue(m.graph, m.name) as Tensor;
      plan = { scope, name: m.name, tensor, role: m.role, drops: new Map(), readers: [] };
      plans.set(key, plan);
    }
    plan.readers.push(m);
    if (m.role === 'weight' || m.role === 'weight-in') plan.role = 'weight';
    if (plan.drops.has(m.axis)) continue;
    const drop: number[] = [];
    m.atoms.forEach((a, p) => {
      if (!kept(a)) drop.push(p);
    });
    plan.drops.set(m.axis, drop);
  }
  return [...plans.values()].filter((p) => [...p.drops.values()].some((d) => d.length > 0));
}

/** Writes `tensor` for the plan's readers (in place unless other nodes read the constant too). */
function writeConstant(model: Model, plan: TensorPlan, tensor: Tensor): void {
  replaceConstant(model, plan.scope, plan.name, tensor, plan.readers);
}
