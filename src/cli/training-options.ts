// The options every training command (train, qat, distill) takes, declared and parsed in one
// place so they are spelled, defaulted and checked alike.
import { type Command, Option } from 'commander';
import type { EpochSummary } from '../pipeline/train.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import type { Schedule } from '../train/schedules.js';
import { fraction, positiveNumber, wholeNumber } from './options.js';

export interface TrainingFlags {
  epochs: string;
  batchSize: string;
  lr?: string;
  optimizer: 'sgd' | 'adamw';
  schedule: 'cosine' | 'constant';
  scale: string;
  seed: string;
  threads?: string;
  json?: boolean;
}

export interface TrainingSettings {
  epochs: number;
  batchSize: number;
  optimizer: 'sgd' | 'adamw';
  schedule: Schedule;
  /** Multiplier of input values on their way to float. */
  scale: number;
  seed: number;
  threads: number | undefined;
}

/** Default peak learning rates: SGD with momentum 0.9, and AdamW. */
const DEFAULT_RATE = { sgd: 0.05, adamw: 0.001 };

/** Adds the shared options; `optimizer` is the command's default optimizer. */
export function addTrainingOptions(command: Command, defaults: { optimizer: 'sgd' | 'adamw' }): Command {
  return command
    .option('--epochs <n>', 'passes over the data', '1')
    .option('--batch-size <n>', 'samples per step', '64')
    .option('--lr <rate>', `peak learning rate (default ${DEFAULT_RATE.sgd} for sgd, ${DEFAULT_RATE.adamw} for adamw)`)
    .addOption(new Option('--optimizer <kind>', 'sgd (momentum 0.9) or adamw').choices(['sgd', 'adamw']).default(defaults.optimizer))
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule').choices(['cosine', 'constant']).default('cosine'))
    .option('--scale <factor>', 'multiply input values by this: a number or a fraction, e.g. 1/255 for bytes 0-255', '1')
    .option('--seed <n>', 'shuffling seed', '0')
    .option('--threads <n>', "onnxruntime intra-op threads (default: onnxruntime's choice)")
    .option('--json', 'print the report as one JSON object');
  // --no-progress is the program's global option (src/cli/main.ts): one spelling, one meaning.
}

export function parseTrainingOptions(flags: TrainingFlags): TrainingSettings {
  const rate = flags.lr === undefined ? DEFAULT_RATE[flags.optimizer] : positiveNumber(flags.lr, '--lr');
  return {
    epochs: wholeNumber(flags.epochs, '--epochs', 1),
    batchSize: wholeNumber(flags.batchSize, '--batch-size', 1),
    optimizer: flags.optimizer,
    schedule: { kind: flags.schedule, rate },
    scale: fraction(flags.scale, '--scale'),
    seed: wholeNumber(flags.seed, '--seed', 0),
    threads: flags.threads === undefined ? undefined : wholeNumber(flags.threads, '--threads', 1),
  };
}

/** The optimizer a command's --optimizer names: SGD with momentum 0.9, or AdamW (no weight decay). */
export function optimizerSpec(kind: 'sgd' | 'adamw'): OptimizerSpec {
  return kind === 'sgd' ? { kind: 'sgd', momentum: 0.9 } : { kind: 'adamw' };
}

/** How a compression step trains after it changed the model (prune and lowrank recovery, cluster's centroids). */
export function stepTraining(training: TrainingSettings): { epochs: number; batchSize: number; schedule: Schedule; optimizer: OptimizerSpec; seed: number } {
  return { epochs: training.epochs, batchSize: training.batchSize, schedule: training.schedule, optimizer: optimizerSpec(training.optimizer), seed: training.seed };
}

/** The report's line for one epoch. */
export function formatEpoch(e: EpochSummary): string {
  return `  epoch ${e.epoch}: ${e.steps} steps, mean loss ${e.mean_loss.toFixed(4)}, ${e.seconds.toFixed(1)} s`;
}
