// Channel rules of the ops that move, merge, cut or join axes. Where an op carries an explicit
// size of a channel axis (a Reshape's target shape, Split's sizes, Slice's bounds, Gather's
// indices, a depthwise Conv's group), the rule records an edit that rewrites it once the kept
// channels are known, so the pruned graph stays consistent without shape surgery afterwards.
import { attr } from '../ir/attribute.js';
import { constantValue } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import { writeNodeConstant } from '../optimize/util/write-constant.js';
import type { ChannelTag } from './channel-atoms.js';
import { blockInputs, type ChannelRule, type ChannelRuleContext, inputRank, mapTags, mergeTags, normaliseAxis } from './channel-rule-context.js';

const transpose: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0);
  if (rank === undefined) {
    blockInputs(ctx, 'Transpose of unknown rank');
    return;
  }
  const perm = ctx.node.attrInts('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  ctx.output(0, mapTags(ctx, 0, (axis) => perm.indexOf(axis), 'Transpose'));
};

const product = (dims: readonly Dim[]): number | undefined => dims.reduce<number | undefined>((p, d) => (p === undefined || typeof d !== 'number' ? undefined : p * d), 1);

/**
 * Where a channel axis of a row-major tensor lands after a reshape from `from` to `to`: the output
 * axis whose positions each see one channel (a merge of the channel axis with neighbours, or the
 * axis unchanged), and the atom at each of its positions. Undefined when the channel axis is split
 * across output axes (attention heads) or the sizes involved are not static.
 */
export function reshapedTag(tag: ChannelTag, from: readonly Dim[], to: readonly Dim[]): ChannelTag | undefined {
  const C = tag.atoms.length;
  const inner = product(from.slice(tag.axis + 1));
  if (inner === undefined) return undefined;
  let outInner = 1;
  for (let b = to.length - 1; b >= 0; b--) {
    const size = to[b];
    if (typeof size !== 'number') return undefined;
    // Axis b spans strides [outInner, outInner * size): the channel stride must fall inside, and
    // the axis must hold whole channels with everything inside them.
    if (outInner <= inner && inner < outInner * size) {
      if (inner % outInner !== 0 || (outInner * size) % (inner * C) !== 0) return undefined;
      const atoms = new Int32Array(size);
      for (let p = 0; p < size; p++) atoms[p] = tag.atoms[Math.floor((p * outInner) / inner) % C];
      return { axis: b, atoms };
    }
    outInner *= size;
  }
  return undefined;
}

/**
 * The output axes a channel axis of size C is split over by a reshape from `from` to `to`
 * (attention's [.., 360] -> [.., 3, 8, 15]): consecutive axes whose sizes multiply to C and whose
 * strides start where the channel's own stride does. Undefined when the axis is not split so.
 */
export function splitAxes(tag: ChannelTag, from: readonly Dim[], to: readonly Dim[]): number[] | undefined {
  const C = tag.atoms.length;
  const inner = product(from.slice(tag.axis + 1));
  if (inner === undefined) return undefined;
  let b = to.length - 1;
  let stride = 1;
  for (; b >= 0 && stride < inner; b--) {
    const size = to[b];
    if (typeof size !== 'number') return undefined;
    stride *= size;
  }
  if (stride !== inner) return undefined;
  const axes: number[] = [];
  let span = 1;
  for (; b >= 0 && span < C; b--) {
    const size = to[b];
    if (typeof size !== 'number') return undefined;
    span *= size;
    axes.unshift(b);
  }
  return span === C && axes.length >= 2 ? axes : undefined;
}

/**
 * A channel axis split over several axes keeps its channels on one of them: the one before the
 * last, the heads axis of every attention layout ([.., heads, head_dim], [.., 3, heads, head_dim]).
 * The positions sharing a head index become one channel (a head: its q, k and v columns together),
 * tagged on that axis.
 */
function headsTag(ctx: ChannelRuleContext, tag: ChannelTag, axes: readonly number[], to: readonly Dim[]): ChannelTag {
  const headAxis = axes[axes.length - 2];
  const heads = to[headAxis] as number;
  const within = to[axes[axes.length - 1]] as number;
  const atoms = new Int32Array(heads);
  for (let h = 0; h < heads; h++) atoms[h] = tag.atoms[h * within];
  for (let c = 0; c < tag.atoms.length; c++) {
    const head = Math.floor(c / within) % heads;
    ctx.unify(Int32Array.of(atoms[head]), Int32Array.of(tag.atoms[c]));
  }
  ctx.heads(atoms);
  return { axis: headAxis, atoms };
}

const reshape: ChannelRule = (ctx) => {
  const from = ctx.inputDims(0);
  const to = ctx.outputDims(0);
  const out: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    let moved = from === undefined || to === undefined ? undefined : reshapedTag(tag, from, to);
    if (moved === undefined && from !== undefined && to !== undefined) {
      const axes = splitAxes(tag, from, to);
      if (axes !== undefined) moved = headsTag(ctx, tag, axes, to);
    }
    if (moved === undefined) {
      ctx.block(tag.atoms, `Reshape ${from === undefined || to === undefined ? 'of unknown shapes' : `[${from}] -> [${to}] splits the channel axis in a way pruning cannot follow`}`);
      continue;
    }
    const source = shapeElementSource(ctx.graph, ctx.node, 1, moved.axis);
    if (source !== undefined && 'shapeOf' in source) {
      // Read from the Shape of a value whose axis carries the very same channels: it follows by itself.
      const same = ctx.valueTags(source.shapeOf).some((t) => t.axis === source.axis && sameAtoms(t.atoms, moved.atoms));
      if (!same) ctx.block(tag.atoms, 'Reshape target shape is computed at run time');
      else out.push(moved);
      continue;
    }
    if (source === undefined) {
      ctx.block(tag.atoms, 'Reshape target shape is computed at run time');
      continue;
    }
    if (source.value !== -1 && source.value !== 0) {
      const atoms = moved.atoms;
      ctx.edit(atoms, `shape[${moved.axis}]`, (kept, model) => setShapeElement(model, ctx.graph, source, atoms.filter(kept).length));
    }
    out.push(moved);
  }
  ctx.output(0, out);
};

/** The constant element a shape vector's position comes from, followed through Concat, Cast, Unsqueeze and Squeeze. */
interface ShapeElement {
  /** The node reading the constant, and at which input. */
  reader: Node;
  input: number;
  graph: Graph;
  /** Position within the constant. */
  index: number;
  value: number;
}

/** A shape vector's position read at run time from dim `axis` of value `shapeOf` (Shape, then Slice or Gather). */
interface DynamicElement {
  shapeOf: string;
  axis: number;
}

function sameAtoms(a: Int32Array, b: Int32Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function shapeElementSource(graph: Graph, reader: Node, input: number, index: number): ShapeElement | DynamicElement | undefined {
  const name = reader.inputs[input];
  if (!name) return undefined;
  const constant = constantValue(graph, name);
  if (constant !== undefined) {
    if (constant.dataType !== DataType.INT64 && constant.dataType !== DataType.INT32) return undefined;
    const values = constant.data() as BigInt64Array | Int32Array;
    if (index >= values.length) return undefined;
    return { reader, input, graph, index, value: Number(values[index]) };
  }
  const producer = graph.producer(name);
  if (producer === undefined) return undefined;
  if (producer.opType === 'Cast' || producer.opType === 'Identity' || producer.opType === 'Unsqueeze' || producer.opType === 'Squeeze') {
    return shapeElementSource(graph, producer, 0, producer.opType === 'Unsqueeze' ? 0 : index);
  }
  if (producer.opType === 'Shape') return { shapeOf: producer.inputs[0], axis: producer.attrInt('start', 0) + index };
  if (producer.opType === 'Slice') {
    const starts = producer.attrInts('starts') ?? intsOf(graph, producer.inputs[1]);
    const steps = producer.inputs[4] ? intsOf(graph, producer.inputs[4]) : [1];
    if (starts?.length !== 1 || starts[0] < 0 || steps?.[0] !== 1) return undefined;
    const inner = shapeElementSource(graph, producer, 0, starts[0] + index);
    return inner !== undefined && 'shapeOf' in inner ? inner : undefined;
  }
  if (producer.opType === 'Concat') {
    let offset = 0;
    for (let i = 0; i < producer.inputs.length; i++) {
      const length = elementCount(graph, producer.inputs[i]);
      if (length === undefined) return undefined;
      if (index < offset + length) return shapeElementSource(graph, producer, i, index - offset);
      offset += length;
    }
  }
  return undefined;
}

/** Elements of a 1-D (or scalar) integer value, followed through Cast/Unsqueeze to a constant, a Slice or a Shape-free guess. */
function elementCount(graph: Graph, name: string): number | undefined {
  const constant = constantValue(graph, name);
  if (constant !== undefined) return constant.elementCount;
  const producer = graph.producer(name);
  if (producer === undefined) return undefined;
  if (producer.opType === 'Cast' || producer.opType === 'Identity') return elementCount(graph, producer.inputs[0]);
  if (producer.opType === 'Unsqueeze') return 1;
  if (producer.opType === 'Slice') {
    const starts = producer.attrInts('starts') ?? intsOf(graph, producer.inputs[1]);
    const ends = producer.attrInts('ends') ?? intsOf(graph, producer.inputs[2]);
    if (starts?.length === 1 && ends?.length === 1 && starts[0] >= 0 && ends[0] >= starts[0] && Number.isFinite(ends[0])) return ends[0] - starts[0];
  }
  return undefined;
}

function intsOf(graph: Graph, name: string | undefined): number[] | undefined {
  const t = name ? constantValue(graph, name) : undefined;
  return t === undefined ? undefined : Array.from(t.data() as ArrayLike<number | bigint>, Number);
}

function setShapeElement(model: Model, graph: Graph, source: ShapeElement, value: number): void {
  const current = constantValue(graph, source.reader.inputs[source.input]) as Tensor;
  const values = current.data().slice() as BigInt64Array | Int32Array;
  values[source.index] = (current.dataType === DataType.INT64 ? BigInt(value) : value) as never;
  writeNodeConstant(model, graph, source.reader, source.input, Tensor.fromArray('', current.dataType, current.dims, values), `${current.name}_pruned`);
}

const flatten: ChannelRule = (ctx) => {
  const from = ctx.inputDims(0);
  const rank = from?.length;
  if (from === undefined || rank === undefined) {
    blockInputs(ctx, 'Flatten of unknown shape');
    return;
  }
  const axis = normaliseAxis(ctx.node.attrInt('axis', 1), rank);
  const to = [product(from.slice(0, axis)) ?? null, product(from.slice(axis)) ?? null];
  const out: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    // Flatten is a reshape to [prod(d[:axis]), prod(d[axis:])]; only the axis holding the channel needs static sizes.
    const local = tag.axis < axis ? { from: from.slice(0, axis), at: 0 } : { from: from.slice(axis), at: 1 };
    const moved = reshapedTag({ axis: tag.axis - (tag.axis < axis ? 0 : axis), atoms: tag.atoms }, local.from, [product(local.from) ?? null]);
    if (moved === undefined || to[local.at] === null) ctx.block(tag.atoms, 'Flatten of non-static sizes');
    else out.push({ axis: local.at, atoms: moved.atoms });
  }
  ctx.output(0, out);
};

/** Squeeze and Unsqueeze: axes from the attribute (opset < 13) or input 1. */
function axesOf(ctx: ChannelRuleContext): number[] | undefined {
  return ctx.node.attrInts('axes') ?? (ctx.node.inputs[1] ? ctx.ints(1) : undefined);
}

const squeeze: ChannelRule = (ctx) => {
  const from = ctx.inputDims(0);
  if (from === undefined) {
    blockInputs(ctx, 'Squeeze of unknown shape');
    return;
  }
  const axes = (axesOf(ctx) ?? from.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => normaliseAxis(a, from.length));
  ctx.output(0, mapTags(ctx, 0, (axis) => (axes.includes(axis) ? undefined : axis - axes.filter((a) => a < axis).length), 'Squeeze removes the channel axis'));
};

const unsqueeze: ChannelRule = (ctx) => {
  const rank = ctx.outputDims(0)?.length;
  const listed = axesOf(ctx);
  if (rank === undefined || listed === undefined) {
    blockInputs(ctx, 'Unsqueeze of unknown axes');
    return;
  }
  const axes = listed.map((a) => normaliseAxis(a, rank)).sort((a, b) => a - b);
  const kept = Array.from({ length: rank }, (_, i) => i).filter((i) => !axes.includes(i));
  ctx.output(0, mapTags(ctx, 0, (axis) => kept[axis], 'Unsqueeze'));
};

const concat: ChannelRule = (ctx) => {
  const rank = ctx.outputDims(0)?.length;
  if (rank === undefined) {
    blockInputs(ctx, 'Concat of unknown rank');
    return;
  }
  const axis = normaliseAxis(ctx.node.attrInt('axis', 0), rank);
  const inputs = ctx.node.inputs.map((_, i) => i).filter((i) => ctx.node.inputs[i] !== '');
  // Along the concatenated axis the inputs' atoms follow each other; other axes are shared (tied).
  const joined: Int32Array[] = [];
  const tagged = inputs.some((i) => ctx.tags(i).some((t) => t.axis === axis));
  for (const i of tagged ? inputs : []) {
    const tag = ctx.tags(i).find((t) => t.axis === axis);
    if (tag !== undefined) {
      joined.push(tag.atoms);
      continue;
    }
    const size = ctx.inputDims(i)?.[axis];
    if (typeof size !== 'number') {
      joined.length = 0;
      break;
    }
    // Positions from a value without channels: atoms of their own that cannot be removed.
    const fixed = ctx.fresh(size, `input ${i} of Concat`);
    ctx.block(fixed, `Concat joins them with a value that carries no channels (input ${i})`);
    joined.push(fixed);
  }
  const others = mergeTags(
    ctx,
    inputs.flatMap((i) => ctx.tags(i).filter((t) => t.axis !== axis)),
  );
  const out = [...others];
  if (tagged) {
    if (joined.length === 0) {
      for (const i of inputs) for (const t of ctx.tags(i)) if (t.axis === axis) ctx.block(t.atoms, 'Concat of inputs with unknown sizes');
    } else {
      const atoms = new Int32Array(joined.reduce((n, a) => n + a.length, 0));
      let at = 0;
      for (const a of joined) {
        atoms.set(a, at);
        at += a.length;
      }
      out.push({ axis, atoms });
    }
  }
  ctx.output(0, out.sort((a, b) => a.axis - b.axis));
};

const split: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0);
  const count = ctx.node.outputs.length;
  if (rank === undefined) {
    blockInputs(ctx, 'Split of unknown rank');
    return;
  }
  const axis = normaliseAxis(ctx.node.attrInt('axis', 0), rank);
  const others = ctx.tags(0).filter((t) => t.axis !== axis);
  const tag = ctx.tags(0).find((t) => t.axis === axis);
  // null: sizes given at run time.
  let sizes: number[] | null | undefined = ctx.node.attrInts('split') ?? (ctx.node.inputs[1] ? (ctx.ints(1) ?? null) : undefined);
  if (tag !== undefined && sizes === undefined) {
    // Equal parts (the last one smaller when num_outputs does not divide the axis, opset 18).
    const part = Math.ceil(tag.atoms.length / count);
    sizes = Array.from({ length: count }, (_, i) => Math.max(0, Math.min(part, tag.atoms.length - i * part)));
  }
  if (tag !== undefined && (sizes === undefined || sizes === null || sizes.length !== count || sizes.reduce((a, b) => a + b, 0) !== tag.atoms.length)) {
    ctx.block(tag.atoms, 'Split sizes are unknown');
    for (let i = 0; i < count; i++) ctx.output(i, others);
    return;
  }
  let at = 0;
  for (let i = 0; i < count; i++) {
    const piece = tag === undefined ? undefined : tag.atoms.subarray(at, at + (sizes as number[])[i]);
    at += tag === undefined ? 0 : (sizes as number[])[i];
    ctx.output(i, piece === undefined ? others : [...others, { axis, atoms: piece }].sort((a, b) => a.axis - b.axis));
  }
  if (tag !== undefined) {
    const atoms = tag.atoms;
    const given = sizes as number[];
    ctx.edit(atoms, 'split', (kept, model) => {
      const next: number[] = [];
      let start = 0;
      for (const size of given) {
        next.push(atoms.subarray(start, start + size).filter(kept).length);
        start += size;
      }
      if (ctx.opset < 13) ctx.node.setAttribute(attr.ints('split', next));
      else {
        ctx.node.removeAttribute('num_outputs');
        const tensor = Tensor.fromArray('', DataType.INT64, [next.length], BigInt64Array.from(next.map(BigInt)));
        writeNodeConstant(model, ctx.graph, ctx.node, 1, tensor, `${ctx.node.name}_split`);
      }
    });
  }
};

/** Slice bounds: attributes below opset 10, inputs 1-4 from 10 on. */
function sliceSpec(ctx: ChannelRuleContext): { starts?: number[]; ends?: number[]; axes?: number[]; steps?: number[] } {
  // Slice-1 has no steps (all 1) and, without `axes`, slices the first axes in order.
  if (ctx.opset < 10) return { starts: ctx.node.attrInts('starts'), ends: ctx.node.attrInts('ends'), axes: ctx.node.attrInts('axes') ?? [], steps: [] };
  const optional = (i: number) => (ctx.node.inputs[i] ? ctx.ints(i) : []);
  return { starts: ctx.ints(1), ends: ctx.ints(2), axes: optional(3), steps: optional(4) };
}

const slice: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0);
  const spec = sliceSpec(ctx);
  if (rank === undefined || spec.starts === undefined || spec.ends === undefined || spec.axes === undefined || spec.steps === undefined) {
    blockInputs(ctx, 'Slice bounds are computed at run time');
    return;
  }
  const axes = (spec.axes.length === 0 ? spec.starts.map((_, i) => i) : spec.axes).map((a) => normaliseAxis(a, rank));
  const out: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    const at = axes.indexOf(tag.axis);
    if (at < 0) {
      out.push(tag);
      continue;
    }
    const step = spec.steps[at] ?? 1;
    const C = tag.atoms.length;
    if (step !== 1) {
      ctx.block(tag.atoms, `Slice with step ${step} over the channel axis`);
      continue;
    }
    const clamp = (v: number) => Math.min(C, Math.max(0, v < 0 ? v + C : v));
    const start = clamp(spec.starts[at]);
    const end = Math.max(start, clamp(spec.ends[at]));
    const atoms = tag.atoms;
    out.push({ axis: tag.axis, atoms: atoms.subarray(start, end) });
    ctx.edit(atoms, `slice axis ${tag.axis}`, (kept, model) => {
      const newStart = atoms.subarray(0, start).filter(kept).length;
      const newEnd = newStart + atoms.subarray(start, end).filter(kept).length;
      setSliceBound(ctx, model, at, newStart, newEnd);
    });
  }
  ctx.output(0, out);
};

function setSliceBound(ctx: ChannelRuleContext, model: Model, at: number, start: number, end: number): void {
  if (ctx.opset < 10) {
    const starts = ctx.node.attrInts('starts') as number[];
    const ends = ctx.node.attrInts('ends') as number[];
    starts[at] = start;
    ends[at] = end;
    ctx.node.setAttribute(attr.ints('starts', starts));
    ctx.node.setAttribute(attr.ints('ends', ends));
    return;
  }
  for (const [input, value] of [
    [1, start],
    [2, end],
  ] as const) {
    const current = constantValue(ctx.graph, ctx.node.inputs[input]) as Tensor;
    const values = current.data().slice() as BigInt64Array | Int32Array;
    values[at] = (current.dataType === DataType.INT64 ? BigInt(value) : value) as never;
    writeNodeConstant(model, ctx.graph, ctx.node, input, Tensor.fromArray('', current.dataType, current.dims, values), `${ctx.node.name}_${input === 1 ? 'starts' : 'ends'}`);
  }
}

const gather: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0);
  const indexRank = inputRank(ctx, 1);
  const data = ctx.constant(0);
  if (rank === undefined || indexRank === undefined) {
    blockInputs(ctx, 'Gather of unknown rank');
    return;
  }
  const axis = normaliseAxis(ctx.node.attrInt('axis', 0), rank);
  for (const tag of ctx.tags(1)) ctx.block(tag.atoms, 'Gather reads them as indices');
  if (data !== undefined && data.dims.length === 2 && axis === 0) {
    // An embedding table: each looked-up row has new features.
    const features = ctx.fresh(data.dims[1], 'embedding features');
    ctx.member(0, 1, features, 'weight');
    ctx.output(0, [{ axis: indexRank, atoms: features }]);
    return;
  }
  const indices = ctx.ints(1);
  const out: ChannelTag[] = [];
  for (const tag of ctx.tags(0)) {
    if (tag.axis < axis) out.push(tag);
    else if (tag.axis > axis) out.push({ axis: tag.axis - 1 + indexRank, atoms: tag.atoms });
    else if (indices === undefined || indexRank !== 1) ctx.block(tag.atoms, 'Gather picks channels by indices computed at run time (or a scalar index)');
    else {
      const C = tag.atoms.length;
      const positions = indices.map((i) => (i < 0 ? i + C : i));
      const atoms = tag.atoms;
      out.push({ axis, atoms: Int32Array.from(positions, (p) => atoms[p]) });
      ctx.edit(atoms, 'indices', (kept, model) => {
        // Each kept index points at its channel's new position.
        const newPosition = new Map<number, number>();
        let next = 0;
        atoms.forEach((a, p) => {
          if (kept(a)) newPosition.set(p, next++);
        });
        const remaining = positions.filter((p) => kept(atoms[p])).map((p) => newPosition.get(p) as number);
        writeNodeConstant(model, ctx.graph, ctx.node, 1, Tensor.fromArray('', DataType.INT64, [remaining.length], BigInt64Array.from(remaining.map(BigInt))), `${ctx.node.name}_indices`);
      });
    }
  }
  ctx.output(0, out);
};

/** Pad: channels pass on axes without padding. */
const pad: ChannelRule = (ctx) => {
  const rank = inputRank(ctx, 0);
  const pads = ctx.node.attrInts('pads') ?? ctx.node.attrInts('paddings') ?? (ctx.node.inputs[1] ? ctx.ints(1) : undefined);
  const axes = ctx.node.inputs[3] ? ctx.ints(3) : undefined;
  if (rank === undefined || pads === undefined || (ctx.node.inputs[3] && axes === undefined)) {
    blockInputs(ctx, 'Pad amounts are computed at run time');
    return;
  }
  const padded = (axis: number) => {
    const list = axes === undefined ? Array.from({ length: rank }, (_, i) => i) : axes.map((a) => normaliseAxis(a, rank));
    const at = list.indexOf(axis);
    return at >= 0 && (pads[at] !== 0 || pads[at + list.length] !== 0);
  };
  ctx.output(0, mapTags(ctx, 0, (axis) => (padded(axis) ? undefined : axis), 'Pad pads the channel axis'));
};

/** Resize/Upsample: channels pass on axes scaled by exactly 1; `sizes` that name the channel count block. */
const resize: ChannelRule = (ctx) => {
  const scalesAt = ctx.node.opType === 'Upsample' || ctx.opset < 11 ? 1 : 2;
  const scales = ctx.node.attrFloats('scales') ?? (ctx.node.inputs[scalesAt] ? (ctx.constant(scalesAt)?.data() as Float32Array | undefined) : undefined);
  const axesAttr = ctx.node.attrInts('axes');
  const ok = (axis: number) => {
    const at = axesAttr === undefined ? axis : axesAttr.indexOf(axis);
    if (axesAttr !== undefined && at < 0) return true;
    // Explicit sizes would name the channel count; they are not rewritten.
    return scales !== undefined && scales.length > 0 && scales[at] === 1;
  };
  for (let i = 1; i < ctx.node.inputs.length; i++) for (const tag of ctx.tags(i)) ctx.block(tag.atoms, `input ${i} of ${ctx.node.opType}`);
  ctx.output(0, mapTags(ctx, 0, (axis) => (ok(axis) ? axis : undefined), `${ctx.node.opType} resizes the channel axis, or names its size`));
};

export const SHAPE_RULES: Readonly<Record<string, ChannelRule>> = {
  Transpose: transpose,
  Reshape: reshape,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  Pad: pad,
  Resize: resize,
  Upsample: resize,
};
