// Emits standard ai.onnx nodes into a graph under a common name prefix: ops, shared constants
// (int64 vectors, float scalars) and opset-aware reductions. Gradient rules, losses and optimizers
// all build their pieces of the training graph through one of these.
import type { Attribute } from '../ir/attribute.js';
import type { GraphBuilder } from '../ir/builder.js';
import { DataType, dataTypeInfo, dataTypeName } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import { emitReduce } from './emit-reduce.js';
import { GradientError } from './gradient-error.js';

export class Emitter {
  constructor(
    readonly builder: GraphBuilder,
    /** The graph's ai.onnx opset. */
    readonly opset: number,
    /** Shared by every emitter of one graph, so a constant is added once. */
    private readonly constants: Map<string, string>,
    private readonly prefix: string,
  ) {}

  /** Emits one node and returns its output. */
  op(opType: string, inputs: string[], attributes: Attribute[] = []): string {
    return this.builder.node(opType, inputs, attributes, { nameBase: this.nameBase(opType) });
  }

  /** Emits a node with `count` outputs. */
  opN(opType: string, inputs: string[], count: number, attributes: Attribute[] = []): string[] {
    return this.builder.node(opType, inputs, attributes, { nameBase: this.nameBase(opType), outputs: count });
  }

  /** A 1-D int64 constant (shapes, axes, pads), shared across the graph. */
  int64s(values: readonly number[]): string {
    return this.constant(`i64:${values.join(',')}`, () => Tensor.fromArray('ints', DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  }

  /** A scalar int64 constant. */
  int64(value: number): string {
    return this.constant(`i64s:${value}`, () => Tensor.fromArray('int', DataType.INT64, [], BigInt64Array.of(BigInt(value))));
  }

  /** A float scalar of type `type` (float32 or float64). */
  scalarOf(value: number, type: DataType): string {
    return this.constant(`${type}:${value}`, () => scalarTensor(value, type));
  }

  /** Shape of a value, as an int64 vector computed at run time. */
  shapeOf(value: string): string {
    return this.op('Shape', [value]);
  }

  /** ReduceSum / ReduceMean / ... over constant axes, in the form the opset wants. */
  reduce(opType: string, x: string, axes: readonly number[], keepdims: boolean): string {
    return emitReduce(this.builder, this.opset, opType, x, axes, keepdims, (v) => this.int64s(v), this.nameBase(opType));
  }

  protected nameBase(opType: string): string {
    return `${this.prefix}/${opType}`;
  }

  private constant(key: string, make: () => Tensor): string {
    const known = this.constants.get(key);
    if (known !== undefined) return known;
    const tensor = make();
    const name = this.builder.fresh(`const_${tensor.name}`);
    // `fresh` reserved the name, so the initializer goes straight into the graph.
    this.builder.graph.addInitializer(Tensor.fromBytes(name, tensor.dataType, tensor.dims, tensor.bytes()));
    this.constants.set(key, name);
    return name;
  }
}

/** A scalar tensor of a floating type the training graph computes in. */
export function scalarTensor(value: number, type: DataType): Tensor {
  switch (type) {
    case DataType.FLOAT:
      return Tensor.fromArray('scalar', type, [], Float32Array.of(value));
    case DataType.DOUBLE:
      return Tensor.fromArray('scalar', type, [], Float64Array.of(value));
    default:
      if (!dataTypeInfo(type).isFloat) throw new GradientError(`gradients of ${dataTypeName(type)} values are not supported`);
      throw new GradientError(`gradients in ${dataTypeName(type)} are not supported (train in float32 or float64)`);
  }
}
