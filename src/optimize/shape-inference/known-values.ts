// Moving known element values through ops that only rearrange them (Slice, Transpose on shape
// tensors of rank 2, as exporters write Pad's pads). Values are kept flat, row-major.
import { MAX_KNOWN_ELEMENTS } from './context.js';
import type { Dim } from './dims.js';

/**
 * The values of an output of static shape `outShape` whose element at index i (per axis) is the
 * input's element at `source(i)`; undefined when shapes are not static or too large.
 */
export function remapValues(
  inShape: readonly Dim[],
  values: readonly Dim[],
  outShape: readonly Dim[],
  source: (index: readonly number[]) => number[],
): Dim[] | undefined {
  if (!inShape.every((d) => typeof d === 'number') || !outShape.every((d) => typeof d === 'number')) return undefined;
  const inDims = inShape as number[];
  const outDims = outShape as number[];
  const count = outDims.reduce((a, b) => a * b, 1);
  if (count > MAX_KNOWN_ELEMENTS || values.length !== inDims.reduce((a, b) => a * b, 1)) return undefined;
  const out: Dim[] = [];
  const index = new Array<number>(outDims.length).fill(0);
  for (let flat = 0; flat < count; flat++) {
    const from = source(index);
    let offset = 0;
    for (let d = 0; d < inDims.length; d++) offset = offset * inDims[d] + from[d];
    out.push(values[offset]);
    for (let d = outDims.length - 1; d >= 0; d--) {
      if (++index[d] < outDims[d]) break;
      index[d] = 0;
    }
  }
  return out;
}
