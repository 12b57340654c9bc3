// The slow, obvious versions of sparsity.ts for tests: whole sorts of (magnitude, position) pairs
// and full coordinate loops instead of thresholds and strides. Keep these boring.
import { prunedCount, type Values } from './sparsity.js';

/** Magnitude masks over `arrays` ranked together: sort every (|v|, array, position), drop the first `count`. */
export function magnitudeMasksRef(arrays: readonly Values[], sparsity: number): Uint8Array[] {
  const entries: { magnitude: number; array: number; index: number }[] = [];
  arrays.forEach((a, array) => {
    for (let index = 0; index < a.length; index++) entries.push({ magnitude: Math.fround(Math.abs(a[index])), array, index });
  });
  entries.sort((x, y) => x.magnitude - y.magnitude || x.array - y.array || x.index - y.index);
  const masks = arrays.map((a) => new Uint8Array(a.length).fill(1));
  const count = prunedCount(entries.length, sparsity);
  for (let i = 0; i < count; i++) masks[entries[i].array][entries[i].index] = 0;
  return masks;
}

/** Flat index of a coordinate (row-major). */
function flat(coords: readonly number[], dims: readonly number[]): number {
  let index = 0;
  for (let i = 0; i < dims.length; i++) index = index * dims[i] + coords[i];
  return index;
}

/** Every coordinate of `dims`, in row-major order. */
function* coordinates(dims: readonly number[]): Generator<number[]> {
  const total = dims.reduce((a, b) => a * b, 1);
  for (let i = 0; i < total; i++) {
    const coords = new Array<number>(dims.length);
    let rest = i;
    for (let d = dims.length - 1; d >= 0; d--) {
      coords[d] = rest % dims[d];
      rest = Math.floor(rest / dims[d]);
    }
    yield coords;
  }
}

/** N:M mask by coordinates: the group of a coordinate is its other coordinates plus floor(position / m). */
export function nmMaskRef(values: Values, dims: readonly number[], axis: number, n: number, m: number): Uint8Array {
  const groups = new Map<string, { magnitude: number; position: number; index: number }[]>();
  for (const coords of coordinates(dims)) {
    const key = coords.map((c, d) => (d === axis ? Math.floor(c / m) : c)).join(',');
    const index = flat(coords, dims);
    const list = groups.get(key) ?? [];
    list.push({ magnitude: Math.abs(values[index]), position: coords[axis], index });
    groups.set(key, list);
  }
  const mask = new Uint8Array(values.length);
  for (const list of groups.values()) {
    list.sort((a, b) => b.magnitude - a.magnitude || a.position - b.position);
    for (const entry of list.slice(0, n)) mask[entry.index] = 1;
  }
  return mask;
}

/** Per-index sums of |v| or v² along `axis`, by coordinates. */
export function axisNormsRef(values: Values, dims: readonly number[], axis: number, p: 1 | 2): Float64Array {
  const sums = new Float64Array(dims[axis]);
  for (const coords of coordinates(dims)) {
    const v = values[flat(coords, dims)];
    sums[coords[axis]] += p === 1 ? Math.abs(v) : v * v;
  }
  return sums;
}

/** The kept positions of `axis`, by coordinates of the output. */
export function gatherAxisRef(values: Values, dims: readonly number[], axis: number, keep: readonly number[]): number[] {
  const outDims = dims.map((d, i) => (i === axis ? keep.length : d));
  const out: number[] = [];
  for (const coords of coordinates(outDims)) {
    const source = coords.map((c, i) => (i === axis ? keep[c] : c));
    out.push(values[flat(source, dims)]);
  }
  return out;
}

/** Wanda's mask the slow way: each row's (or each run of M's) entries sorted by |w|·‖x‖, the smallest dropped. */
export function wandaMaskRef(weights: Values, rows: number, cols: number, norms: Values, target: { sparsity?: number; pattern?: { n: number; m: number } }): Uint8Array {
  const mask = new Uint8Array(rows * cols).fill(1);
  const group = target.pattern?.m ?? cols;
  const drop = target.pattern === undefined ? prunedCount(cols, target.sparsity ?? 0) : target.pattern.m - target.pattern.n;
  for (let r = 0; r < rows; r++) {
    for (let start = 0; start < cols; start += group) {
      const entries = Array.from({ length: group }, (_, j) => ({ s: Math.abs(weights[r * cols + start + j]) * norms[start + j], j }));
      entries.sort((a, b) => a.s - b.s || a.j - b.j);
      for (const e of entries.slice(0, drop)) mask[r * cols + start + e.j] = 0;
    }
  }
  return mask;
}
