// Comparing tensors in tests: numpy-style allclose (what ONNX's backend tests use, with NaN equal
// to NaN) and bit identity (what a lossless round trip must give).
import { DataType, dataTypeName } from '../../src/ir/dtype.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { readsAsNumbers, tensorNumbers } from '../../src/eval/numeric.js';

export interface Tolerance {
  rtol: number;
  atol: number;
}

/** ONNX's backend tests compare with numpy's assert_allclose at these tolerances. */
export const ONNX_TOLERANCE: Tolerance = { rtol: 1e-3, atol: 1e-7 };

export interface Comparison {
  ok: boolean;
  /** Why not, naming the tensor, the first bad element and the largest error. */
  detail: string;
}

/**
 * |actual - expected| <= atol + rtol * |expected| elementwise, as numpy.allclose; NaN matches NaN,
 * an infinity matches the same infinity. Types and dims must agree exactly. Strings and types
 * without a numeric reading (float8, int4, ...) must match byte for byte.
 */
export function allClose(actual: Tensor, expected: Tensor, tolerance: Tolerance = ONNX_TOLERANCE): Comparison {
  const header = sameHeader(actual, expected);
  if (header !== undefined) return { ok: false, detail: header };
  const a = numbers(actual);
  const e = numbers(expected);
  if (a === undefined || e === undefined) {
    return bitIdentical(actual, expected) ? pass : { ok: false, detail: `'${expected.name}': ${dataTypeName(expected.dataType)} values differ` };
  }
  let bad = 0;
  let first = -1;
  let worst = 0;
  for (let i = 0; i < e.length; i++) {
    const x = a[i];
    const y = e[i];
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (Number.isNaN(x) && Number.isNaN(y)) continue;
    } else if (x === y) {
      continue;
    } else if (Number.isFinite(x) && Number.isFinite(y) && Math.abs(x - y) <= tolerance.atol + tolerance.rtol * Math.abs(y)) {
      // Infinities only match themselves: with |e| infinite the tolerance would accept anything.
      continue;
    }
    bad++;
    if (first < 0) first = i;
    const error = Math.abs(x - y);
    if (!(error <= worst)) worst = error;
  }
  if (bad === 0) return pass;
  return {
    ok: false,
    detail: `'${expected.name}': ${bad} of ${e.length} elements outside rtol ${tolerance.rtol}, atol ${tolerance.atol}; first at ${first}: got ${a[first]}, expected ${e[first]}; largest error ${worst}`,
  };
}

/** Same type, same dims, same bytes (for strings: the same byte strings). */
export function bitIdentical(a: Tensor, b: Tensor): boolean {
  if (sameHeader(a, b) !== undefined) return false;
  if (a.dataType === DataType.STRING) {
    const x = a.strings();
    const y = b.strings();
    return x.length === y.length && x.every((s, i) => bytesEqual(s, y[i]));
  }
  return bytesEqual(a.bytes(), b.bytes());
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

const pass: Comparison = { ok: true, detail: '' };

function sameHeader(actual: Tensor, expected: Tensor): string | undefined {
  if (actual.dataType !== expected.dataType) {
    return `'${expected.name}': type ${dataTypeName(actual.dataType)}, expected ${dataTypeName(expected.dataType)}`;
  }
  const dimsMatch = actual.dims.length === expected.dims.length && actual.dims.every((d, i) => d === expected.dims[i]);
  if (!dimsMatch) return `'${expected.name}': dims [${actual.dims.join(',')}], expected [${expected.dims.join(',')}]`;
  return undefined;
}

/** The elements as plain numbers, or undefined for types compared by bytes only. */
function numbers(tensor: Tensor): ArrayLike<number> | undefined {
  // Complex numbers compare componentwise, which is how numpy views them as real pairs.
  if (tensor.dataType === DataType.COMPLEX64 || tensor.dataType === DataType.COMPLEX128) return tensor.data() as ArrayLike<number>;
  return readsAsNumbers(tensor.dataType) ? tensorNumbers(tensor) : undefined;
}

/** Cosine similarity in float64, computed here rather than by the code under test. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}
