// The `evaluate` job of `shrink worker`: one `shrink auto` candidate measured exactly as the auto
// process would measure it, on the data rebuilt from the job's paths (src/cli/auto-data.ts), with
// its latency taken on this worker beside the input.
import { loadModel } from '../node/model-files.js';
import type { EvaluateJob } from '../node/queue/protocol.js';
import { writeModel } from '../onnx/model-io.js';
import { type CandidateOutcome, evaluateCandidate } from '../pipeline/auto.js';
import type { RecipeContext } from '../pipeline/context.js';
import { autoData, autoLatency } from './auto-data.js';

export async function evaluateJob(job: EvaluateJob, ctx: RecipeContext): Promise<CandidateOutcome> {
  const model = loadModel(job.model);
  const { recipeData } = await autoData(model, job);
  const modelBytes = writeModel(model);
  const { outcome } = await evaluateCandidate(model, { name: job.name, recipe: job.recipe }, recipeData, job.budget, ctx, (candidate) => autoLatency(model, modelBytes, candidate, job.batch));
  return outcome;
}
