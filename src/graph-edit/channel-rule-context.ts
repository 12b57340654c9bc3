// What a channel rule (channel-rules.ts, channel-rules-shape.ts) sees of one node while the
// dependency analysis (channel-groups.ts) walks the graph: the channel tags of its inputs, shapes
// from shape inference, constants, and the calls that record what pruning must rewrite.
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import type { ChannelTag } from './channel-atoms.js';

/**
 * What a constant slice is to its layer: `weight` along the channels a layer produces, `weight-in`
 * along the channels it reads (summed over in its product). Importance reads both (and
 * `norm-scale` for BatchNorm importance); the rest are rewritten alongside.
 */
export type MemberRole = 'weight' | 'weight-in' | 'bias' | 'norm-scale' | 'norm-shift' | 'norm-stat' | 'param';

/** Changes a node once the surviving channels are known (`kept` says whether an atom stays). */
export type EditApply = (kept: (atom: number) => boolean, model: Model) => void;

export interface ChannelRuleContext {
  readonly node: Node;
  readonly graph: Graph;
  /** The model's ai.onnx opset (attributes moved to inputs over the versions). */
  readonly opset: number;
  /** Channel tags of input `i`: empty when it carries none (or is absent). */
  tags(i: number): readonly ChannelTag[];
  /** Channel tags of any value of this graph computed so far (a Shape's input, say). */
  valueTags(name: string): readonly ChannelTag[];
  /** Inferred dims of input `i` / output `i`, undefined when unknown. */
  inputDims(i: number): readonly Dim[] | undefined;
  outputDims(i: number): readonly Dim[] | undefined;
  /** The constant read at input `i` (initializer or Constant node, enclosing scopes included). */
  constant(i: number): Tensor | undefined;
  /** Integer values of a constant input `i` (shapes, axes, starts, split sizes). */
  ints(i: number): number[] | undefined;
  /** New atoms: channels this node creates (`what`: "output channels"). */
  fresh(length: number, what: string): Int32Array;
  /** Ties two tags position by position: they are removed together. */
  unify(a: Int32Array, b: Int32Array): void;
  /** The groups of `atoms` cannot be pruned because of this node; `reason` says why. */
  block(atoms: Int32Array, reason: string): void;
  /** Constant input `i` is sliced along `axis` by `atoms`; blocks them when input `i` is not a constant. */
  member(i: number, axis: number, atoms: Int32Array, role: MemberRole): void;
  /** An edit of this node (an attribute, a shape constant) that depends on which of `atoms` survive. */
  edit(atoms: Int32Array, what: string, apply: EditApply): void;
  /** These atoms are attention heads (a Reshape split them out of a projection's features). */
  heads(atoms: Int32Array): void;
  /** Sets the tags of output `i`. */
  output(i: number, tags: ChannelTag[]): void;
}

/** A rule: how channels flow through one op type. */
export type ChannelRule = (ctx: ChannelRuleContext) => void;

/** Blocks every tag of every input of the node with `reason`. */
export function blockInputs(ctx: ChannelRuleContext, reason: string): void {
  ctx.node.inputs.forEach((_, i) => {
    for (const tag of ctx.tags(i)) ctx.block(tag.atoms, reason);
  });
}

/** The rank of input `i`, when known. */
export function inputRank(ctx: ChannelRuleContext, i: number): number | undefined {
  return ctx.inputDims(i)?.length;
}

/** An axis attribute or input normalised into [0, rank). */
export function normaliseAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Tags of input `i` moved to new axes by `map` (undefined: the axis disappears, and its channels are blocked with `reason`). */
export function mapTags(ctx: ChannelRuleContext, i: number, map: (axis: number) => number | undefined, reason: string): ChannelTag[] {
  const out: ChannelTag[] = [];
  for (const tag of ctx.tags(i)) {
    const axis = map(tag.axis);
    if (axis === undefined) ctx.block(tag.atoms, reason);
    else out.push({ axis, atoms: tag.atoms });
  }
  return out;
}

/** Puts tags that land on the same axis together (uniting them) and returns one tag per axis. */
export function mergeTags(ctx: ChannelRuleContext, tags: readonly ChannelTag[]): ChannelTag[] {
  const byAxis = new Map<number, ChannelTag>();
  for (const tag of tags) {
    const seen = byAxis.get(tag.axis);
    if (seen === undefined) byAxis.set(tag.axis, tag);
    else if (seen.atoms.length === tag.atoms.length) ctx.unify(seen.atoms, tag.atoms);
    else {
      ctx.block(seen.atoms, `axis ${tag.axis} carries ${seen.atoms.length} and ${tag.atoms.length} channels`);
      ctx.block(tag.atoms, `axis ${tag.axis} carries ${seen.atoms.length} and ${tag.atoms.length} channels`);
    }
  }
  return [...byAxis.values()].sort((a, b) => a.axis - b.axis);
}
