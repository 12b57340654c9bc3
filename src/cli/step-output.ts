// The end every model-writing training-data command (prune, cluster, lowrank) shares: run the
// recipe step on the model read from `input` (naming the file in errors about the input model),
// write the result (temporary file, onnxruntime load check, the speed check of
// src/cli/speed-check.ts, rename), and put the step's report in the common envelope with every
// warning: --exclude/--only patterns that match nothing, the command's own, the step's, the
// fidelity check's and the writer's.
import type { EvalReport } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { nodeEnvironment } from '../node/environment.js';
import { modelFileBytes } from '../node/model-files.js';
import type { RecipeContext } from '../pipeline/context.js';
import { debugPhase } from '../pipeline/debug-phase.js';
import type { PassWarning } from '../pipeline/pass.js';
import { envelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import { InputModelError } from '../pipeline/train.js';
import { inFile } from './errors.js';
import { writeModelOutput } from './model-output.js';
import { firstInputs, speedCheckWanted } from './speed-check.js';
import { parseDims } from './options.js';
import { arraySamples } from '../pipeline/prune-data.js';
import type { ArrayField } from '../train/array-data.js';

interface StepReport {
  warnings: PassWarning[];
  fidelity?: EvalReport;
}

export async function runStepAndWrite<R extends StepReport>(
  command: string,
  files: { input: string; output: string; exclude: readonly string[]; only: readonly string[] },
  original: Model,
  step: () => Promise<{ model: Model; report: R }>,
  ctx: Pick<RecipeContext, 'debug'>,
  warnings: readonly PassWarning[] = [],
  speed: { flags: { bench?: boolean; dims?: string; data?: string }; arrays?: Record<string, ArrayField>; slowerHint?: string } = { flags: {} },
) {
  let result: { model: Model; report: R };
  try {
    result = await step();
  } catch (error) {
    if (error instanceof InputModelError) throw inFile(files.input, error.error);
    throw error;
  }
  // Timed on the first sample of the command's --data arrays, else on generated inputs at --dims.
  const timedOn = speed.arrays === undefined ? undefined : arraySamples(speed.arrays, speed.flags.data ?? 'data', 1);
  const speedRequest = speedCheckWanted(speed.flags.bench) ? { original: { file: files.input, model: original }, inputs: await firstInputs(timedOn), dims: parseDims(speed.flags.dims), slowerHint: speed.slowerHint } : undefined;
  const saved = await debugPhase(ctx.debug, `${command}: save ${files.output}`, () => writeModelOutput(result.model, files.output, { speed: speedRequest }));
  const unmatched = [...files.exclude, ...files.only].filter((p) => ![...original.graph.allNodes()].some(({ node }) => nodeSelector(p).matches(node)));
  return envelope(
    {
      command,
      input: files.input,
      output: files.output,
      size: sizeChange(modelFileBytes(files.input, original), saved.bytes),
      warnings: [
        ...unmatched.map((p) => ({ code: 'unmatched-pattern', message: `'${p}' matches no node of ${files.input}` })),
        ...warnings,
        ...result.report.warnings,
        ...(result.report.fidelity?.warnings ?? []),
        ...saved.warnings,
      ],
    },
    { ...result.report, ...(saved.speed === undefined ? {} : { speed: saved.speed }) },
    nodeEnvironment(),
  );
}
