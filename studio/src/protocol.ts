// Messages between the page and its worker. The worker holds onnxruntime-web and the model; the
// page only renders. Everything here crosses postMessage (structured clone), so plain data only;
// model bytes travel as transferred ArrayBuffers.
import type { EvalReport } from '../../src/eval/eval-report.js';
import type { InspectReport } from '../../src/inspect/inspect.js';
import type { RecipeReport } from '../../src/pipeline/run-recipe.js';

/** How image pixels become input values (PP-OCR uses 'minus-one-to-one'). */
export type ImageScaling = 'zero-to-one' | 'minus-one-to-one' | 'imagenet' | 'zero-to-255';

/** A file the user dropped or picked: its name and bytes. */
export interface DroppedFile {
  name: string;
  bytes: ArrayBuffer;
}

export type ToWorker =
  | { type: 'init'; ortBase: string }
  | { type: 'load'; file: DroppedFile }
  | { type: 'check'; id: number; text: string }
  /** `generated`: how many inputs to generate when no samples are given, and sizes for symbolic dims. */
  | { type: 'run'; text: string; samples: DroppedFile[]; scaling: ImageScaling; generated: { count: number; dims: Record<string, number> } };

/** A recipe text's first problem, with the 1-based line it points at (when it points at one). */
export interface RecipeProblem {
  message: string;
  line?: number;
}

export interface RunProgress {
  /** 1-based step of the recipe, or steps + 1 for the final comparison. */
  step: number;
  steps: number;
  name: string;
  /** The running task inside the step (calibration, eval, ...), with its count so far. */
  task?: string;
  done?: number;
  total?: number;
}

export interface RunResult {
  /** The result model's bytes and a file name to save it under. */
  bytes: ArrayBuffer;
  fileName: string;
  report: RecipeReport;
  /** The result against the original on the samples, with every layer compared. */
  comparison: EvalReport;
  /** What the samples were. */
  samples: string;
  ms: number;
}

export type FromWorker =
  | { type: 'ready'; threads: number; isolated: boolean; ortVersion: string }
  /** `dims`: the symbolic dims of the inputs with first guesses, for generated inputs. */
  | { type: 'loaded'; report: InspectReport; dims: Record<string, number> }
  | { type: 'checked'; id: number; problem?: RecipeProblem }
  | { type: 'progress'; progress: RunProgress }
  | { type: 'result'; result: RunResult }
  /** A failure as one line; `stage` says which action failed. */
  | { type: 'error'; stage: 'init' | 'load' | 'run'; message: string };
