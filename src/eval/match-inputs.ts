// Checks a sample against the model's declared inputs before it reaches onnxruntime, whose own
// errors name neither the data file nor the sample. Each problem is one line that names the input
// and says what the model expects and what the sample holds. Values are checked too: a NaN or
// infinity in the data would flow through both models and come out as "cosine 1" in an evaluation
// or as a scale of NaN in calibration, so every consumer of samples refuses it here.
import { DataType, type TypedArray, dataTypeName } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { type Dim, tensorTypeOf } from '../ir/value-info.js';
import { bfloat16ToNumber, float16ToNumber } from '../kernels/float16.js';
import type { ValueInfoProto } from '../onnx/onnx_pb.js';

/** A graph input or output as evaluation sees it. */
export interface ModelValue {
  name: string;
  /** ONNX element type (0 when the model does not declare one). */
  elemType: number;
  /** Undefined when the rank is unknown. */
  shape: Dim[] | undefined;
  /** An input with an initializer of the same name: feeding it is optional (IR >= 4). */
  optional: boolean;
}

export interface ModelSignature {
  inputs: ModelValue[];
  outputs: ModelValue[];
}

/** The values a caller feeds and receives: graph inputs (initializer-backed ones marked optional) and outputs. */
export function modelSignature(model: Model): ModelSignature {
  const graph = model.graph;
  const value = (info: ValueInfoProto, optional: boolean): ModelValue => {
    const type = tensorTypeOf(info);
    return { name: info.name, elemType: type?.elemType ?? 0, shape: type?.shape, optional };
  };
  return {
    inputs: graph.inputs.map((info) => value(info, graph.initializer(info.name) !== undefined)),
    outputs: graph.outputs.map((info) => value(info, false)),
  };
}

/** `float32[N,3,48,W]` for a declared value; `?` for unknown dims or rank. */
export function formatValueType(value: Pick<ModelValue, 'elemType' | 'shape'>): string {
  const dims = value.shape === undefined ? '?' : value.shape.map((d) => (d === null ? '?' : String(d))).join(',');
  return `${value.elemType === 0 ? '?' : dataTypeName(value.elemType)}[${dims}]`;
}

/** `int64[1,3]` for a tensor in a sample. */
export function formatTensorType(tensor: Tensor): string {
  return `${dataTypeName(tensor.dataType)}[${tensor.dims.join(',')}]`;
}

/**
 * Every way `sample` fails to fit `inputs`, one line each (empty when it fits). `where` names the
 * sample ("data.npz sample 3"). Symbolic dims must agree across inputs: if `N` is 2 in one input
 * it cannot be 3 in another.
 */
export function sampleMismatches(sample: Readonly<Record<string, Tensor>>, inputs: readonly ModelValue[], where: string): string[] {
  const problems: string[] = [];
  const known = new Set(inputs.map((i) => i.name));
  const symbols = new Map<string, { size: number; input: string }>();
  for (const input of inputs) {
    const tensor = sample[input.name];
    const expected = formatValueType(input);
    if (tensor === undefined) {
      if (!input.optional) {
        const has = Object.keys(sample);
        const holds = has.length === 0 ? 'nothing' : has.map((n) => `'${n}'`).join(', ');
        problems.push(`${where}: input '${input.name}' is missing (model expects ${expected}; the sample has ${holds})`);
      }
      continue;
    }
    const got = formatTensorType(tensor);
    if (input.elemType !== 0 && tensor.dataType !== input.elemType) {
      problems.push(`${where}: input '${input.name}' has the wrong type: expected ${expected}, got ${got}`);
      continue;
    }
    const bad = holdsNonFinite(tensor.dataType) ? nonFiniteElement(tensor.dataType, tensor.data()) : undefined;
    if (bad !== undefined) {
      problems.push(`${where}: input '${input.name}' holds ${bad.value} at element ${bad.index} of ${got}; sample data must be finite`);
    }
    if (input.shape === undefined) continue;
    if (tensor.dims.length !== input.shape.length) {
      problems.push(`${where}: input '${input.name}' has rank ${tensor.dims.length}, expected rank ${input.shape.length}: expected ${expected}, got ${got}`);
      continue;
    }
    input.shape.forEach((dim, axis) => {
      const size = tensor.dims[axis];
      if (typeof dim === 'number' && dim !== size) {
        problems.push(`${where}: input '${input.name}' dim ${axis} is ${size}, expected ${dim}: expected ${expected}, got ${got}`);
      } else if (typeof dim === 'string' && dim !== '') {
        const seen = symbols.get(dim);
        if (seen === undefined) symbols.set(dim, { size, input: input.name });
        else if (seen.size !== size) {
          problems.push(
            `${where}: input '${input.name}' dim ${axis} ('${dim}') is ${size}, but '${dim}' is ${seen.size} in input '${seen.input}': got ${got}`,
          );
        }
      }
    });
  }
  for (const name of Object.keys(sample)) {
    if (!known.has(name)) {
      problems.push(`${where}: '${name}' is not an input of the model (inputs: ${inputs.map((i) => `'${i.name}'`).join(', ')})`);
    }
  }
  return problems;
}

/** Thrown when a sample does not fit the model; the message is the first problem, one line. */
export class SampleMismatchError extends Error {
  constructor(readonly problems: string[]) {
    super(problems[0]);
  }
}

/** Throws a SampleMismatchError naming the first problem when `sample` does not fit `inputs`. */
export function checkSample(sample: Readonly<Record<string, Tensor>>, inputs: readonly ModelValue[], where: string): void {
  const problems = sampleMismatches(sample, inputs, where);
  if (problems.length > 0) throw new SampleMismatchError(problems);
}

/** Bit patterns of NaN and infinity in float types stored as raw bits: `(bits & mask) === match`. */
const NON_FINITE_BITS: Partial<Record<DataType, { mask: number; match: number; decode?: (bits: number) => number }>> = {
  [DataType.FLOAT16]: { mask: 0x7c00, match: 0x7c00, decode: float16ToNumber },
  [DataType.BFLOAT16]: { mask: 0x7f80, match: 0x7f80, decode: bfloat16ToNumber },
  [DataType.FLOAT8E4M3FN]: { mask: 0x7f, match: 0x7f },
  [DataType.FLOAT8E4M3FNUZ]: { mask: 0xff, match: 0x80 },
  [DataType.FLOAT8E5M2]: { mask: 0x7c, match: 0x7c, decode: (b) => ((b & 0x03) !== 0 ? Number.NaN : b & 0x80 ? -Infinity : Infinity) },
  [DataType.FLOAT8E5M2FNUZ]: { mask: 0xff, match: 0x80 },
  [DataType.FLOAT8E8M0]: { mask: 0xff, match: 0xff },
};

/** Whether elements of ONNX type `dataType` can be NaN or infinite (the float types). */
export function holdsNonFinite(dataType: number): boolean {
  return dataType === DataType.FLOAT || dataType === DataType.DOUBLE || NON_FINITE_BITS[dataType as DataType] !== undefined;
}

/** The first element that is NaN or infinite: its position and its value in words. */
export interface NonFiniteElement {
  index: number;
  /** 'NaN', 'Infinity', '-Infinity' (or a value beyond `bound`). */
  value: string;
}

/**
 * The first NaN or infinite element of `values`, elements of ONNX type `dataType` (undefined when
 * every element is finite; integer types never hold such values and are not read). With `bound`,
 * a float32/float64 value whose magnitude reaches it counts too: 2^128 - 2^103 is where a float64
 * turns into float32's infinity. One pass, no allocation.
 */
export function nonFiniteElement(dataType: number, values: TypedArray, bound = Infinity): NonFiniteElement | undefined {
  if (dataType === DataType.FLOAT || dataType === DataType.DOUBLE) {
    const floats = values as Float32Array | Float64Array;
    for (let i = 0; i < floats.length; i++) {
      // False for NaN too, so a single comparison covers NaN, infinities and values past `bound`.
      if (!(Math.abs(floats[i]) < bound)) return { index: i, value: String(floats[i]) };
    }
    return undefined;
  }
  const bits = NON_FINITE_BITS[dataType as DataType];
  if (bits === undefined) return undefined;
  const codes = values as Uint16Array | Uint8Array;
  for (let i = 0; i < codes.length; i++) {
    if ((codes[i] & bits.mask) === bits.match) return { index: i, value: bits.decode === undefined ? 'NaN' : String(bits.decode(codes[i])) };
  }
  return undefined;
}
