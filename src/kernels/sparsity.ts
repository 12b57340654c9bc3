// Pruning kernels over plain typed arrays: which weights a magnitude or N:M rule removes (masks,
// 1 = keep, 0 = prune), per-channel norms for structured importance, and gathering the kept
// positions of one axis. Ties are broken by position so that every result is reproducible, and
// each kernel has a slow twin in sparsity-ref.ts that tests check it against (STYLE rule 4).

/** Anything indexable by position: Float32Array, Float64Array, number[]. */
export type Values = ArrayLike<number>;

/** Elements pruned for `sparsity` of `count` weights: round half up, as torch.nn.utils.prune does (round()). */
export function prunedCount(count: number, sparsity: number): number {
  return Math.min(count, Math.round(sparsity * count));
}

/**
 * Where magnitude pruning of `arrays` taken together cuts: every |v| below `threshold` goes, and
 * of the values equal to it the first `ties` in array order (arrays in order, then positions).
 * Removes exactly `count` values.
 */
export interface MagnitudeCut {
  threshold: number;
  ties: number;
}

/** The cut that removes the `count` smallest magnitudes of `arrays` together. */
export function magnitudeCut(arrays: readonly Values[], count: number): MagnitudeCut {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  if (count <= 0 || total === 0) return { threshold: -1, ties: 0 };
  if (count >= total) return { threshold: Infinity, ties: 0 };
  // One sorted copy of the magnitudes (native typed-array sort); float32 as the weights are stored.
  const magnitudes = new Float32Array(total);
  let at = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) magnitudes[at++] = Math.abs(a[i]);
  magnitudes.sort();
  const threshold = magnitudes[count - 1];
  let below = 0;
  while (below < count && magnitudes[below] < threshold) below++;
  return { threshold, ties: count - below };
}

/** Keep masks of `arrays` for a cut (see MagnitudeCut); one mask per array. */
export function masksForCut(arrays: readonly Values[], cut: MagnitudeCut): Uint8Array[] {
  let ties = cut.ties;
  return arrays.map((a) => {
    const mask = new Uint8Array(a.length);
    for (let i = 0; i < a.length; i++) {
      const m = Math.fround(Math.abs(a[i]));
      if (m < cut.threshold) continue;
      if (m === cut.threshold && ties > 0) {
        ties--;
        continue;
      }
      mask[i] = 1;
    }
    return mask;
  });
}

/** Keep mask removing the `round(sparsity * n)` smallest magnitudes of `values` (ties: lower position first). */
export function magnitudeMask(values: Values, sparsity: number): Uint8Array {
  return masksForCut([values], magnitudeCut([values], prunedCount(values.length, sparsity)))[0];
}

/** Keep masks for one sparsity over several arrays ranked together (global magnitude pruning). */
export function globalMagnitudeMasks(arrays: readonly Values[], sparsity: number): Uint8Array[] {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  return masksForCut(arrays, magnitudeCut(arrays, prunedCount(total, sparsity)));
}

/** Row-major strides of `dims`. */
export function stridesOf(dims: readonly number[]): number[] {
  const strides = new Array<number>(dims.length);
  let s = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
  return strides;
}

/** The product of `dims` before `axis`, `dims[axis]`, and the product after it. */
function around(dims: readonly number[], axis: number): { outer: number; size: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i];
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
  return { outer, size: dims[axis], inner };
}

/**
 * N:M keep mask: along `axis`, each run of `m` consecutive positions keeps its `n` largest
 * magnitudes (ties: lower position kept). `dims[axis]` must be a multiple of `m`.
 */
export function nmMask(values: Values, dims: readonly number[], axis: number, n: number, m: number): Uint8Array {
  const { outer, size, inner } = around(dims, axis);
  if (size % m !== 0) throw new Error(`N:M pruning: axis ${axis} has ${size} positions, not a multiple of ${m}`);
  const mask = new Uint8Array(values.length);
  const order = new Array<number>(m);
  const magnitude = new Float64Array(m);
  for (let o = 0; o < outer; o++) {
    for (let start = 0; start < size; start += m) {
      for (let i = 0; i < inner; i++) {
        const base = (o * size + start) * inner + i;
        for (let j = 0; j < m; j++) {
          order[j] = j;
          magnitude[j] = Math.abs(values[base + j * inner]);
        }
        // Largest first; equal magnitudes keep the lower position first. m is small (4, 8, 16).
        order.sort((a, b) => magnitude[b] - magnitude[a] || a - b);
        for (let j = 0; j < n; j++) mask[base + order[j] * inner] = 1;
      }
    }
  }
  return mask;
}

/** Sum over every element at each index of `axis` of |v| (p = 1) or v² (p = 2). */
export function axisNorms(values: Values, dims: readonly number[], axis: number, p: 1 | 2): Float64Array {
  const { outer, size, inner } = around(dims, axis);
  const sums = new Float64Array(size);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < size; c++) {
      const base = (o * size + c) * inner;
      let s = 0;
      if (p === 1) for (let i = 0; i < inner; i++) s += Math.abs(values[base + i]);
      else
        for (let i = 0; i < inner; i++) {
          const v = values[base + i];
          s += v * v;
        }
      sums[c] += s;
    }
  }
  return sums;
}

/** Sum over every element at each index of `axis` of |a·b| (first-order Taylor: weight times gradient). */
export function axisProductNorms(a: Values, b: Values, dims: readonly number[], axis: number): Float64Array {
  const { outer, size, inner } = around(dims, axis);
  const sums = new Float64Array(size);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < size; c++) {
      const base = (o * size + c) * inner;
      let s = 0;
      for (let i = 0; i < inner; i++) s += Math.abs(a[base + i] * b[base + i]);
      sums[c] += s;
    }
  }
  return sums;
}

/** Typed arrays the gather keeps the type of. */
export type GatherArray = Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint32Array | BigUint64Array;

/** The positions `keep` (ascending) of `axis`, all other axes whole: a new array of the same type. */
export function gatherAxis<T extends GatherArray>(values: T, dims: readonly number[], axis: number, keep: readonly number[]): T {
  const { outer, size, inner } = around(dims, axis);
  const Ctor = values.constructor as new (length: number) => T;
  const out = new Ctor(outer * keep.length * inner);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < keep.length; k++) {
      const from = (o * size + keep[k]) * inner;
      const to = (o * keep.length + k) * inner;
      out.set(values.subarray(from, from + inner) as never, to);
    }
  }
  return out;
}

/** Sets the positions `drop` of `axis` to zero, in place. */
export function zeroAxis(values: Float32Array | Float64Array, dims: readonly number[], axis: number, drop: readonly number[]): void {
  const { outer, size, inner } = around(dims, axis);
  for (let o = 0; o < outer; o++) for (const c of drop) values.fill(0, (o * size + c) * inner, (o * size + c + 1) * inner);
}

/** `values` times `mask` (a copy). */
export function applyMask(values: Float32Array, mask: Uint8Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) if (mask[i] !== 0) out[i] = values[i];
  return out;
}

/** Number of exact zeros. */
export function zeroCount(values: Values): number {
  let zeros = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros++;
  return zeros;
}
