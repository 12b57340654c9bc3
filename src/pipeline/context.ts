// What a recipe step needs from its surroundings: onnxruntime (node or web), progress, debug
// output and a thread count. The CLI builds one for Node; a page or a worker builds its own.
import type { OrtModule } from '../runtime/ort-types.js';
import type { PassContext } from './pass.js';

export interface RecipeContext extends PassContext {
  /** onnxruntime: compression is verified by running the models, so every recipe needs it. */
  ort: OrtModule;
  /** onnxruntime intra-op threads for calibration and comparison (default: onnxruntime's choice). */
  threads?: number;
  /**
   * Bytes of weights onnxruntime may hold at once (two models for a comparison). Checks that need
   * more are skipped with a reason instead of running the machine out of memory; default: no limit.
   */
  memoryBudget?: number;
  /**
   * Bytes the teacher's values may fill in distillation, computed once for every sample: float16
   * past this in float32, refused past it even so (default 1 GiB; train/distill-teacher.ts).
   */
  teacherMemory?: number;
}
