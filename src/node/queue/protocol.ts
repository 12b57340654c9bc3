// What travels through the job queue between `shrink quantize --queue` (or any dispatcher) and
// `shrink worker`: job names, their payloads and results, as plain JSON. Models and data reach
// workers by path, never inside the queue (a shared folder when the workers run elsewhere), so a
// job is a few hundred bytes whatever the model's size. Every job carries the dispatcher's shrink
// version: a worker running another version refuses it, since its calibration or quantization could
// differ from what the dispatcher's own run would give.
import type { TensorStatisticsJson } from '../../eval/tensor-statistics.js';

/** The BullMQ queue every shrink job goes through. */
export const QUEUE_NAME = 'shrink';

export interface JobHeader {
  /** The dispatcher's shrink version; workers refuse jobs of another. */
  shrink_version: string;
}

/** Calibration statistics (static int8) of `values` over one shard of a data file. */
export interface CalibrateJob extends JobHeader {
  /** Absolute path of the model to run (the model as calibration sees it, written by the dispatcher). */
  model: string;
  /** Absolute path of the samples (an ONNX test-data folder, .npy, .npz or .json). */
  data: string;
  /** The shard: samples `from` to `from + count - 1`. */
  from: number;
  count: number;
  values: string[];
  batch?: number;
  threads?: number;
  valuesPerRun?: number;
}

export interface CalibrateResult {
  samples: number;
  passes: number;
  /** Values that turned out not to be float32, with onnxruntime's type name. */
  not_float: [string, string][];
  stats: TensorStatisticsJson[];
}

/** Job name -> [payload, result]. */
export interface JobTypes {
  calibrate: [CalibrateJob, CalibrateResult];
}

export type JobName = keyof JobTypes;
export const JOB_NAMES: readonly JobName[] = ['calibrate'];
