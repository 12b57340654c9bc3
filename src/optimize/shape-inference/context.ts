// What a shape rule sees of one node: its inputs' inferred types, the small values known at
// inference time (shape tensors, axes, pads, scales), its attributes, the opset, and a way to
// infer a subgraph. Rules return one result per output and call `fail` with a reason when they
// cannot infer something, so the caller can list it instead of guessing.
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import type { Tensor } from '../../ir/tensor.js';
import type { Dim } from './dims.js';

/** An inferred tensor type plus, for small tensors, its element values (row-major, flattened). */
export interface InferredValue {
  elemType: number;
  /** Undefined when the rank is unknown. */
  shape: Dim[] | undefined;
  /** Element values known before run time: numbers, or symbolic dims read from a Shape. */
  value?: Dim[];
}

/** One result per node output; undefined where that output could not be inferred. */
export type RuleOutput = InferredValue | undefined;

export type ShapeRule = (ctx: RuleContext) => RuleOutput[];

/** Thrown by `RuleContext.fail`: the rule cannot infer this node, for the reason given. */
export class InferenceGap extends Error {}

/** Largest tensor whose values inference tracks (shape tensors and their arithmetic are far smaller). */
export const MAX_KNOWN_ELEMENTS = 1024;

const NUMERIC_TYPES: ReadonlySet<number> = new Set([
  DataType.FLOAT,
  DataType.DOUBLE,
  DataType.INT8,
  DataType.INT16,
  DataType.INT32,
  DataType.INT64,
  DataType.UINT8,
  DataType.UINT16,
  DataType.UINT32,
  DataType.UINT64,
  DataType.BOOL,
]);

/** A constant tensor as an inferred value, with its elements when small and numeric. */
export function constantInferred(tensor: Tensor): InferredValue {
  const result: InferredValue = { elemType: tensor.dataType, shape: [...tensor.dims] };
  if (tensor.elementCount <= MAX_KNOWN_ELEMENTS && NUMERIC_TYPES.has(tensor.dataType) && !tensor.isExternal) {
    result.value = Array.from(tensor.data() as ArrayLike<number | bigint>, (x) => Number(x));
  }
  return result;
}

export interface ScopeAccess {
  /** The inferred type (and value) of a name visible from the node's graph. */
  lookup(name: string): InferredValue | undefined;
  /** A dim name used nowhere else, for sizes only known at run time. */
  fresh(hint: string): string;
  /** Infers a subgraph whose formal inputs have the given types; returns its outputs' types. */
  inferSubgraph(graph: Graph, inputs: RuleOutput[]): RuleOutput[];
}

export class RuleContext {
  constructor(
    readonly node: Node,
    readonly graph: Graph,
    /** The ai.onnx opset the model imports. */
    readonly opset: number,
    private readonly scope: ScopeAccess,
  ) {}

  get inputCount(): number {
    return this.node.inputs.length;
  }

  /** Whether optional input `i` is given. */
  has(i: number): boolean {
    return i < this.node.inputs.length && this.node.inputs[i] !== '';
  }

  /** Input `i`'s inferred type, or undefined when it is absent or unknown. */
  input(i: number): InferredValue | undefined {
    return this.has(i) ? this.scope.lookup(this.node.inputs[i]) : undefined;
  }

  /** Input `i`'s type; fails when it is absent or unknown. */
  type(i: number): InferredValue {
    if (!this.has(i)) this.fail(`input ${i} is missing`);
    const found = this.input(i);
    if (found === undefined) this.fail(`type of input '${this.node.inputs[i]}' is unknown`);
    return found;
  }

  elemType(i: number): number {
    return this.type(i).elemType;
  }

  /** Input `i`'s shape; fails when its rank is unknown. */
  shape(i: number): Dim[] {
    const found = this.type(i);
    if (found.shape === undefined) this.fail(`rank of input '${this.node.inputs[i]}' is unknown`);
    return found.shape;
  }

  rank(i: number): number {
    return this.shape(i).length;
  }

  /** Input `i`'s element values when known at inference time (possibly symbolic). */
  value(i: number): Dim[] | undefined {
    return this.input(i)?.value;
  }

  /** Input `i`'s values when all are known numbers. */
  numbers(i: number): number[] | undefined {
    const value = this.value(i);
    return value?.every((v) => typeof v === 'number') ? (value as number[]) : undefined;
  }

  /** Input `i`'s values; fails naming `what` when they are not known numbers. */
  requireNumbers(i: number, what: string): number[] {
    const found = this.numbers(i);
    if (found === undefined) this.fail(`${what} (input '${this.node.inputs[i] ?? ''}') is not known before run time`);
    return found;
  }

  attrInt(name: string, fallback: number): number {
    return this.node.attrInt(name, fallback);
  }

  attrInts(name: string): number[] | undefined {
    return this.node.attrInts(name);
  }

  fresh(hint = this.node.opType): string {
    return this.scope.fresh(hint);
  }

  fail(reason: string): never {
    throw new InferenceGap(reason);
  }

  inferSubgraph(graph: Graph, inputs: RuleOutput[]): RuleOutput[] {
    return this.scope.inferSubgraph(graph, inputs);
  }

  /** The graph-valued attribute `name`; fails when missing. */
  subgraph(name: string): Graph {
    const found = this.node.attribute(name);
    if (found?.kind !== 'graph') this.fail(`attribute '${name}' is missing`);
    return found.value;
  }
}

/** An output of input `i`'s type and shape (no value): the rule of most unary ops. */
export function sameAs(ctx: RuleContext, i = 0): InferredValue {
  const { elemType, shape } = ctx.type(i);
  return { elemType, shape: shape === undefined ? undefined : [...shape] };
}

export function tensor(elemType: number, shape: Dim[] | undefined, value?: Dim[]): InferredValue {
  return value === undefined ? { elemType, shape } : { elemType, shape, value };
}
