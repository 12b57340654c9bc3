// Class labels for accuracy: one class id per prediction row, in sample order. They come as a
// .npy array of integers (what numpy.save(labels) gives) or as a JSON array of ids. Labels are
// small (8 bytes a sample), so they are read whole; the samples they belong to still stream.
import { DataType, dataTypeName } from '../ir/dtype.js';
import { npyToTensor, parseNpy } from './npy.js';
import { tensorNumbers } from './numeric.js';

/** Class ids in sample order; `where` names the file in errors. */
export interface Labels {
  where: string;
  ids: Int32Array;
}

const INTEGER_TYPES = new Set<number>([
  DataType.INT8,
  DataType.UINT8,
  DataType.INT16,
  DataType.UINT16,
  DataType.INT32,
  DataType.UINT32,
  DataType.INT64,
  DataType.UINT64,
]);

/**
 * Labels from a .npy file: integers of shape (N,) or (N, 1). Float arrays are refused rather than
 * rounded, since a float array is more often scores or one-hot rows than ids.
 */
export function labelsFromNpy(bytes: Uint8Array, where: string): Labels {
  const array = parseNpy(bytes, where);
  if (!INTEGER_TYPES.has(array.dataType)) {
    throw new Error(`${where}: labels must be integer class ids, got ${dataTypeName(array.dataType)} (save them with labels.astype('int64'))`);
  }
  const dims = array.dims;
  if (!(dims.length === 1 || (dims.length === 2 && dims[1] === 1))) {
    const shape = `(${dims.join(', ')}${dims.length === 1 ? ',' : ''})`;
    throw new Error(`${where}: labels must have shape (N,) or (N, 1), got ${shape}; one-hot rows are not supported, save the arg-max`);
  }
  const values = tensorNumbers(npyToTensor(array, 'labels'));
  return { where, ids: toIds(values, where) };
}

/** Labels from JSON: an array of class ids (`[3, 0, 7, ...]`; `[[3], [0], ...]` works too). */
export function labelsFromJson(text: string, where: string): Labels {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${where}: not valid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(parsed)) throw new Error(`${where}: expected a JSON array of class ids, like [3, 0, 7]`);
  const values = parsed.map((entry, i) => {
    const value = Array.isArray(entry) && entry.length === 1 ? entry[0] : entry;
    if (typeof value !== 'number') throw new Error(`${where}: element ${i} is ${JSON.stringify(entry)}, not a class id`);
    return value;
  });
  return { where, ids: toIds(values, where) };
}

/** Picks the reader from the file name: `.npy` or `.json`. */
export function parseLabels(bytes: Uint8Array, where: string): Labels {
  const lower = where.toLowerCase();
  if (lower.endsWith('.npy')) return labelsFromNpy(bytes, where);
  if (lower.endsWith('.json')) return labelsFromJson(new TextDecoder().decode(bytes), where);
  throw new Error(`${where}: unknown label format (use a .npy array of integers or a JSON array of class ids)`);
}

function toIds(values: ArrayLike<number>, where: string): Int32Array {
  const ids = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new Error(`${where}: label ${i} is ${v}, not a class id (a whole number >= 0)`);
    ids[i] = v;
  }
  return ids;
}
