// Checks a sample against the model's declared inputs before it reaches onnxruntime, whose own
// errors name neither the data file nor the sample. Each problem is one line that names the input
// and says what the model expects and what the sample holds.
import { dataTypeName } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { type Dim, tensorTypeOf } from '../ir/value-info.js';
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
