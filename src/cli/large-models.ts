// What the CLI does differently for large models: new weights spill to a scratch file beside
// the output as passes produce them (src/node/tensor-spill.ts), and checks that would hold two
// models in onnxruntime are skipped, with the reason, when the machine lacks the memory.
import * as os from 'node:os';
import type { Model } from '../ir/model.js';
import { type ScratchSpill, scratchSpill } from '../node/tensor-spill.js';
import { modelBytes } from '../onnx/model-size.js';

/** Models with more weight bytes than this spill their new tensors to disk. */
const SPILL_ABOVE_BYTES = 512 * 2 ** 20;

/**
 * Attaches a scratch spill near `output` to `model` (clones made from it share it) when the model
 * is large; undefined otherwise. Dispose of it once the output is written.
 */
export function spillForLargeModel(model: Model, output: string): ScratchSpill | undefined {
  if (modelBytes(model) <= SPILL_ABOVE_BYTES) return undefined;
  const spill = scratchSpill(output);
  model.graph.spill = spill;
  return spill;
}

/**
 * Bytes of weights onnxruntime may hold at once: three quarters of the machine's memory (the
 * rest for activations, this process and the system). SHRINK_MEMORY_BUDGET (bytes) overrides it.
 */
export function memoryBudget(): number {
  const set = Number(process.env.SHRINK_MEMORY_BUDGET);
  return Number.isFinite(set) && set > 0 ? set : Math.floor(os.totalmem() * 0.75);
}

/**
 * Bytes distillation may fill with the teacher's values, computed once for every sample (a
 * quarter of the machine's memory, at least the library's 1 GiB: PP-OCRv4 rec's logits over 4,000
 * lines are 2 GiB in float16). SHRINK_TEACHER_MEMORY (bytes) overrides it.
 */
export function teacherMemory(): number {
  const set = Number(process.env.SHRINK_TEACHER_MEMORY);
  return Number.isFinite(set) && set > 0 ? set : Math.max(2 ** 30, Math.floor(os.totalmem() / 4));
}
