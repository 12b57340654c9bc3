// Inputs for timing a model: one generated sample built from the model's declared input types,
// with every symbolic dim given a size. Benchmarks need no real data (latency barely depends on
// the values, only on shapes), but they do need every dim pinned, so this picks sizes the user did
// not give: the leading dim is the batch, any other symbolic dim gets a default that suits the
// image and sequence models shrink targets. The same options always give the same inputs, which
// lets a child process (memory measurement) rebuild exactly what the timing loop fed.
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { formatValueType, modelSignature, type ModelValue } from './match-inputs.js';
import { generatedSamples } from './sample-generate.js';
import { generatedRanges } from './generated-ranges.js';

export interface BenchInputOptions {
  /** Size of a symbolic leading dim (default 1). */
  batch?: number;
  /** Sizes by dim name or `input[axis]`, as in GenerateOptions.dims; they win over the defaults. */
  dims?: Readonly<Record<string, number>>;
}

/**
 * Default for symbolic dims other than the leading one: 320 is a common OCR/detection side (a
 * multiple of 32, as PP-OCR det needs, and of 8 for the recogniser's width) and a modest sequence
 * length.
 */
export const DEFAULT_SYMBOLIC_DIM = 320;

/** Every dim of every required input, as `input[axis]` -> size, with defaults filled in. */
export function benchDims(inputs: readonly ModelValue[], options: BenchInputOptions = {}): Record<string, number> {
  return Object.fromEntries(resolveDims(inputs, options).map((d) => [d.key, d.size]));
}

/** A symbolic dim other than the batch that nobody sized: it got DEFAULT_SYMBOLIC_DIM. */
export interface DefaultedDim {
  /** `input[axis]`. */
  key: string;
  /** The dim's symbolic name, or null for an unnamed dim. */
  name: string | null;
  size: number;
}

/** The dims that took the default size: latency depends on them, so a report says so. */
export function defaultedDims(inputs: readonly ModelValue[], options: BenchInputOptions = {}): DefaultedDim[] {
  return resolveDims(inputs, options)
    .filter((d) => d.defaulted)
    .map(({ key, name, size }) => ({ key, name, size }));
}

function resolveDims(inputs: readonly ModelValue[], options: BenchInputOptions): (DefaultedDim & { defaulted: boolean })[] {
  const given = options.dims ?? {};
  const batch = options.batch ?? 1;
  const resolved: (DefaultedDim & { defaulted: boolean })[] = [];
  for (const input of inputs) {
    if (input.optional) continue;
    if (input.shape === undefined) {
      throw new Error(`input '${input.name}' (${formatValueType(input)}) declares no rank, so no benchmark input can be generated for it`);
    }
    input.shape.forEach((dim, axis) => {
      const key = `${input.name}[${axis}]`;
      if (typeof dim === 'number') {
        resolved.push({ key, name: null, size: dim, defaulted: false });
        return;
      }
      const name = dim === null || dim === '' ? null : dim;
      const chosen = given[key] ?? (name === null ? undefined : given[name]);
      if (chosen !== undefined) resolved.push({ key, name, size: chosen, defaulted: false });
      else if (axis === 0) resolved.push({ key, name, size: batch, defaulted: false });
      else resolved.push({ key, name, size: DEFAULT_SYMBOLIC_DIM, defaulted: true });
    });
  }
  // A dim named as a sum of others ('past_sequence_length + sequence_length': a decoder's
  // attention_mask and present) is their sum, so the past and the mask agree.
  const byName = new Map(resolved.filter((d) => d.name !== null && !d.name.includes('+')).map((d) => [d.name, d.size]));
  for (const dim of resolved) {
    if (dim.name === null || !dim.defaulted || !dim.name.includes('+')) continue;
    const parts = dim.name.split('+').map((part) => byName.get(part.trim()));
    if (parts.every((size) => size !== undefined)) {
      dim.size = parts.reduce((a: number, b) => a + (b as number), 0);
      dim.defaulted = false;
    }
  }
  return resolved;
}

/** The generated input tensors for `model` (seed 0), keyed by input name. */
export async function benchInputs(model: Model, options: BenchInputOptions = {}): Promise<Record<string, Tensor>> {
  const { inputs } = modelSignature(model);
  const source = generatedSamples(inputs, { count: 1, seed: 0, dims: benchDims(inputs, options), ranges: generatedRanges(model) });
  for await (const sample of source) return sample.inputs;
  throw new Error('generated no benchmark sample');
}

/** `x float32[1,3,320,320]`, for reports. */
export function describeInputs(tensors: Readonly<Record<string, Tensor>>): string[] {
  return Object.values(tensors).map((t) => `${t.name} ${formatTypeOf(t)}`);
}

function formatTypeOf(tensor: Tensor): string {
  return formatValueType({ elemType: tensor.dataType, shape: [...tensor.dims] });
}
