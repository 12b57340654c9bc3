// Reductions in the form an opset wants: axes as an input from opset 13 for ReduceSum and from 18
// for the other Reduce ops, as an attribute before. Shared by gradient rules, losses and optimizers.
import { attr } from '../ir/attribute.js';
import type { GraphBuilder } from '../ir/builder.js';

export function emitReduce(
  builder: GraphBuilder,
  opset: number,
  opType: string,
  x: string,
  axes: readonly number[],
  keepdims: boolean,
  int64s: (values: readonly number[]) => string,
  nameBase?: string,
): string {
  const inputAxes = opType === 'ReduceSum' ? opset >= 13 : opset >= 18;
  const keep = attr.int('keepdims', keepdims ? 1 : 0);
  const options = nameBase === undefined ? {} : { nameBase };
  if (inputAxes) return builder.node(opType, [x, int64s(axes)], [keep], options);
  return builder.node(opType, [x], [attr.ints('axes', [...axes]), keep], options);
}
