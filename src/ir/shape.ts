// Dims arrive from protobuf as int64 (bigint). They are converted once, here, with checks, so that
// no later code multiplies a corrupt dim into a multi-terabyte allocation.

/** Largest element count shrink will accept for one tensor (2^53 keeps counts exact). */
const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

export function dimsFromProto(dims: readonly bigint[], where: string): number[] {
  return dims.map((d) => {
    if (d < 0n || d > BigInt(MAX_ELEMENTS)) throw new Error(`${where}: dim ${d} is out of range`);
    return Number(d);
  });
}

export function elementCount(dims: readonly number[], where: string): number {
  let count = 1;
  for (const d of dims) count *= d;
  if (!Number.isSafeInteger(count)) {
    throw new Error(`${where}: dims [${dims.join(',')}] describe ${count.toExponential(2)} elements, more than any model can hold`);
  }
  return count;
}
