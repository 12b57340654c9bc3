// What a gradient rule sees of one forward node: the incoming gradients of its outputs, which of
// its inputs need a gradient, the inferred types of forward values, and (from Emitter) helpers
// that emit standard ai.onnx nodes into the training graph. A rule returns one gradient value name
// per input (undefined where none is wanted).
import { attr } from '../ir/attribute.js';
import type { GraphBuilder } from '../ir/builder.js';
import type { DataType } from '../ir/dtype.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/value-info.js';
import { Emitter, scalarTensor } from './emitter.js';
import { GradientError } from './gradient-error.js';

export { GradientError, scalarTensor };

export interface ValueType {
  elemType: DataType;
  /** Undefined when the rank is unknown. */
  shape: Dim[] | undefined;
}

export type GradientRule = (ctx: GradientContext) => (string | undefined)[];

/** Shared by every node's context: the graph emitted into and what is known of forward values. */
export interface GradientScope {
  readonly builder: GraphBuilder;
  /** The training graph's ai.onnx opset (at least 13: ReduceSum takes axes as an input). */
  readonly opset: number;
  /** Inferred type of a forward value. */
  type(value: string): ValueType | undefined;
  /** The constant behind a forward value (initializer or Constant node), if it is one. */
  constant(value: string): Tensor | undefined;
  /** Constants already emitted, shared by every context. */
  readonly constants: Map<string, string>;
}

export class GradientContext extends Emitter {
  constructor(
    readonly node: Node,
    private readonly scope: GradientScope,
    private readonly incoming: readonly (string | undefined)[],
    private readonly wanted: readonly boolean[],
  ) {
    super(scope.builder, scope.opset, scope.constants, 'grad');
  }

  input(i: number): string {
    return this.node.inputs[i] ?? '';
  }

  output(i = 0): string {
    return this.node.outputs[i] ?? '';
  }

  /** dL/d(output i); undefined when that output does not reach the loss. */
  dy(i = 0): string | undefined {
    return this.incoming[i];
  }

  /** dL/d(output i), zeros of the output's shape when it does not reach the loss. */
  dyOrZeros(i = 0): string {
    return this.incoming[i] ?? this.zerosLike(this.output(i));
  }

  /** Whether the gradient of input i is needed. */
  wants(i: number): boolean {
    return this.wanted[i] === true;
  }

  /** Inferred type of a forward value; fails when shape inference could not type it. */
  type(value: string): ValueType {
    const type = this.scope.type(value);
    if (type === undefined) this.fail(`the type of '${value}' could not be inferred`);
    return type;
  }

  elemType(value: string): DataType {
    return this.type(value).elemType;
  }

  /** Shape of a forward value; fails when its rank is unknown. */
  shape(value: string): Dim[] {
    const shape = this.type(value).shape;
    if (shape === undefined) this.fail(`the rank of '${value}' could not be inferred`);
    return shape;
  }

  rank(value: string): number {
    return this.shape(value).length;
  }

  /** Input i as constant integers (axes, shapes, pads), or undefined when absent; fails when computed at run time. */
  constantInts(i: number): number[] | undefined {
    const name = this.input(i);
    if (name === '') return undefined;
    const tensor = this.scope.constant(name);
    if (tensor === undefined) this.fail(`input ${i} ('${name}') must be a constant for the gradient`);
    return Array.from(tensor.data() as ArrayLike<number | bigint>, Number);
  }

  /** The constant behind a forward value (initializer or Constant node), or undefined. */
  constantOf(value: string): Tensor | undefined {
    return value === '' ? undefined : this.scope.constant(value);
  }

  /** Input i as constant integers, or undefined when it is absent or computed at run time. */
  knownInts(i: number): number[] | undefined {
    const name = this.input(i);
    const tensor = name === '' ? undefined : this.scope.constant(name);
    return tensor === undefined ? undefined : Array.from(tensor.data() as ArrayLike<number | bigint>, Number);
  }

  /** An attribute as an int, with a fallback. */
  int(name: string, fallback: number): number {
    return this.node.attrInt(name, fallback) ?? fallback;
  }

  float(name: string, fallback: number): number {
    return this.node.attrFloat(name, fallback) ?? fallback;
  }

  ints(name: string): number[] | undefined {
    return this.node.attrInts(name);
  }

  /** A scalar constant of `like`'s element type (a forward value's name, or a DataType). */
  scalar(value: number, like: string | DataType): string {
    return this.scalarOf(value, typeof like === 'number' ? like : this.elemType(like));
  }

  /** Zeros with the shape and type of a forward value. */
  zerosLike(value: string): string {
    const zero = scalarTensor(0, this.elemType(value));
    return this.op('ConstantOfShape', [this.shapeOf(value)], [attr.tensor('value', Tensor.fromBytes('zero', zero.dataType, [1], zero.bytes()))]);
  }

  /** Reshape to the (runtime) shape of a forward value. */
  reshapeLike(x: string, like: string): string {
    const shape = this.scope.type(like)?.shape;
    if (shape?.every((d) => typeof d === 'number')) return this.op('Reshape', [x, this.int64s(shape as number[])]);
    return this.op('Reshape', [x, this.shapeOf(like)]);
  }

  /**
   * Undoes numpy broadcasting: sums `grad` (shaped like the forward `output`) down to the shape of
   * the forward `operand`. Axes are chosen from inferred shapes; where a dim cannot be told apart
   * from 1 before run time, they are computed in the graph.
   */
  unbroadcast(grad: string, output: string, operand: string): string {
    const out = this.shape(output);
    const target = this.scope.type(operand)?.shape;
    if (target === undefined) this.fail(`the rank of '${operand}' could not be inferred`);
    const lead = out.length - target.length;
    const leading = Array.from({ length: lead }, (_, i) => i);
    const keep: number[] = [];
    let decidable = true;
    target.forEach((d, i) => {
      const o = out[lead + i];
      if (d === 1 && o !== 1) keep.push(lead + i);
      else if (d !== o && (d === null || typeof d === 'string' || o === null || typeof o === 'string')) decidable = false;
    });
    if (decidable) {
      if (leading.length === 0 && keep.length === 0) return grad;
      let summed = grad;
      if (keep.length > 0) summed = this.reduce('ReduceSum', summed, keep, true);
      if (leading.length > 0) summed = this.reduce('ReduceSum', summed, leading, false);
      return summed;
    }
    // Dims that may or may not be 1: sum over leading axes, then over every axis where the
    // operand's runtime dim is 1 and the gradient's is not; Reshape restores the exact shape.
    let summed = leading.length > 0 ? this.reduce('ReduceSum', grad, leading, false) : grad;
    const one = this.int64(1);
    const operandShape = this.shapeOf(operand);
    const gradShape = this.shapeOf(summed);
    const broadcast = this.op('And', [this.op('Equal', [operandShape, one]), this.op('Not', [this.op('Equal', [gradShape, one])])]);
    const axes = this.op('Reshape', [this.op('NonZero', [broadcast]), this.int64s([-1])]);
    summed = this.op('ReduceSum', [summed, axes], [attr.int('keepdims', 1), attr.int('noop_with_empty_axes', 1)]);
    return this.op('Reshape', [summed, operandShape]);
  }

  /** Throws a GradientError naming this node. */
  fail(reason: string): never {
    throw new GradientError(`node '${this.node.label}' (${this.node.opType}): ${reason}`);
  }

  protected override nameBase(opType: string): string {
    return `grad/${this.node.label}/${opType}`;
  }
}
