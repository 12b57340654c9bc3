// The samples a command compares models on: --data when given, otherwise generated inputs from the
// model's declared types, with --dims for the symbolic dims (defaults as `shrink bench`: batch 1,
// spatial 320), --seed and --range. Shared by eval and optimize.
import type { Model } from '../ir/model.js';
import { benchDims } from '../eval/bench-inputs.js';
import { modelSignature } from '../eval/match-inputs.js';
import { generatedSamples } from '../eval/sample-generate.js';
import type { SampleSource } from '../eval/samples.js';
import { openSampleFile } from '../node/sample-files.js';
import { UsageError } from './errors.js';
import { parseDims, wholeNumber } from './options.js';
import { generatedRanges } from '../eval/generated-ranges.js';

export interface SampleFlags {
  data?: string;
  dims?: string;
  seed?: string;
  range?: string;
}

export async function openCommandSamples(model: Model, flags: SampleFlags, count: number | undefined): Promise<SampleSource> {
  const signature = modelSignature(model);
  if (flags.data !== undefined) return openSampleFile(flags.data, signature);
  try {
    return generatedSamples(signature.inputs, {
      count: count ?? 4,
      seed: flags.seed === undefined ? undefined : wholeNumber(flags.seed, '--seed', 0),
      range: flags.range === undefined ? undefined : parseRange(flags.range),
      dims: benchDims(signature.inputs, { dims: parseDims(flags.dims) }),
      // --range is the user's word for every input; without it, ids stay inside their tables.
      ranges: flags.range === undefined ? generatedRanges(model) : undefined,
    });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // The generator speaks in library terms ({"N": 1}); say it the command-line way.
    throw new Error((error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N, or samples with --data'));
  }
}

function parseRange(text: string): [number, number] {
  const parts = text.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p)) || parts[0] > parts[1]) {
    throw new UsageError(`--range must be min,max with min <= max, got '${text}'`);
  }
  return [parts[0], parts[1]];
}
