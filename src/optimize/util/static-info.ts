// What the model states about a value's type and shape without running anything: declared graph
// inputs, outputs and value_info (in this scope or an enclosing one), constants, and the few ops
// whose output type needs no inference (Shape, Size, Cast). Passes use this to prove that a node
// is a no-op; when nothing is known they leave the node alone.
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import { type Dim, type TensorType, tensorTypeOf } from '../../ir/value-info.js';

/** The declared or evident type of `value` as seen from `graph`, or undefined when unknown. */
export function knownType(graph: Graph, value: string): TensorType | undefined {
  const constant = constantValue(graph, value);
  if (constant !== undefined) return { elemType: constant.dataType, shape: [...constant.dims] };
  let declared: TensorType | undefined;
  for (let g: Graph | undefined = graph; g !== undefined && declared === undefined; g = g.parent) {
    const info = [...g.inputs, ...g.outputs, ...g.valueInfo].find((v) => v.name === value);
    if (info !== undefined) declared = tensorTypeOf(info);
    if (g.definesLocally(value)) break;
  }
  if (declared !== undefined && declared.elemType !== DataType.UNDEFINED) return declared;
  const producer = graph.producer(value);
  if (producer === undefined || !isStandardDomain(producer.domain)) return declared;
  const shape = declared?.shape;
  switch (producer.opType) {
    case 'Shape':
    case 'Size':
      return { elemType: DataType.INT64, shape: shape ?? (producer.opType === 'Size' ? [] : undefined) };
    case 'Cast': {
      const to = producer.attrInt('to');
      return to === undefined ? declared : { elemType: to, shape };
    }
    default:
      return declared;
  }
}

/** The element type of `value`, when known. */
export function knownElemType(graph: Graph, value: string): number | undefined {
  const type = knownType(graph, value);
  return type === undefined || type.elemType === DataType.UNDEFINED ? undefined : type.elemType;
}

/** The shape of `value` when every dim is a number, else undefined. */
export function staticShape(graph: Graph, value: string): number[] | undefined {
  const shape = knownType(graph, value)?.shape;
  if (shape === undefined || !shape.every((d): d is number => typeof d === 'number')) return undefined;
  return shape;
}

/** The shape of `value` as declared, symbolic dims included, or undefined when the rank is unknown. */
export function knownShape(graph: Graph, value: string): Dim[] | undefined {
  return knownType(graph, value)?.shape;
}

/** The integer values of a constant int32/int64 tensor, or undefined if `value` is not one. */
export function constantInts(graph: Graph, value: string): number[] | undefined {
  if (value === '') return undefined;
  const tensor = constantValue(graph, value);
  if (tensor === undefined) return undefined;
  if (tensor.dataType === DataType.INT64) return Array.from(tensor.data() as BigInt64Array, clampToNumber);
  if (tensor.dataType === DataType.INT32) return Array.from(tensor.data() as Int32Array);
  return undefined;
}

/** int64 values beyond 2^53 mean "to the end" in Slice; they become +-Infinity here. */
function clampToNumber(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) return Number.POSITIVE_INFINITY;
  if (v < BigInt(Number.MIN_SAFE_INTEGER)) return Number.NEGATIVE_INFINITY;
  return Number(v);
}
