// What travels through the job queue between `shrink quantize --queue` (or any dispatcher) and
// `shrink worker`: job names, their payloads and results, as plain JSON. Models and data reach
// workers by path, never inside the queue (a shared folder when the workers run elsewhere), so a
// job is a few hundred bytes whatever the model's size. Every job carries the dispatcher's shrink
// version: a worker running another version refuses it, since its calibration or quantization could
// differ from what the dispatcher's own run would give.
import type { TensorStatisticsJson } from '../../eval/tensor-statistics.js';
import type { AutoBudget, AutoCandidate, CandidateOutcome } from '../../pipeline/auto.js';

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

/** One `shrink auto` candidate measured on the search's data, rebuilt from these paths and settings. */
export interface EvaluateJob extends JobHeader {
  name: string;
  recipe: AutoCandidate['recipe'];
  /** Absolute paths: the model, --data, and optionally --labels and --metric. */
  model: string;
  data: string;
  labels?: string;
  metric?: string;
  scale?: number;
  requireLabels?: boolean;
  budget: AutoBudget;
  /** Batch size latency is measured at. */
  batch: number;
}

/** A job that does nothing: what the queue itself costs per job (add, take, return, see the result). */
export type PingJob = JobHeader;

export interface PingResult {
  /** The worker process that answered. */
  pid: number;
}

/** Job name -> [payload, result]. */
export interface JobTypes {
  calibrate: [CalibrateJob, CalibrateResult];
  evaluate: [EvaluateJob, CandidateOutcome];
  ping: [PingJob, PingResult];
}

export type JobName = keyof JobTypes;
export const JOB_NAMES: readonly JobName[] = ['calibrate', 'evaluate', 'ping'];

/** Runs jobs the queue layer does not know itself (evaluate needs the CLI's data readers). */
export type JobHandlers = { [N in Exclude<JobName, 'calibrate' | 'ping'>]?: (job: JobTypes[N][0]) => Promise<JobTypes[N][1]> };
