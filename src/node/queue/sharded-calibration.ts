// Static int8 calibration spread over `shrink worker`s: the model as calibration sees it is written
// to a scratch file beside the output (workers read it by path, as they read the data), the samples
// are cut into shards, each shard's statistics come back as JSON, and they merge in shard order.
// Minimum and maximum merge exactly, so minmax calibration gives the bytes a single process gives;
// the histograms of the other calibrators merge up to re-binning (src/eval/histogram.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CollectedStatistics, StatisticsCollector } from '../../eval/activation-stats.js';
import type { SampleSource } from '../../eval/samples.js';
import { TensorStatistics } from '../../eval/tensor-statistics.js';
import { saveModel } from '../model-files.js';
import { removeTemp, tempPathFor, trackTemp } from '../temp-files.js';
import { dispatchJobs } from './dispatch.js';

export interface ShardedCalibrationOptions {
  /** The queue's redis:// address. */
  url: string;
  /** The calibration data's path (what the local run reads), for the workers. */
  data: string;
  /** Shards the samples are cut into (default 8); the result does not depend on how many workers take them. */
  shards?: number;
  /** Where the scratch model goes (a folder the workers can read: beside the output). */
  scratchBeside: string;
  log?: (line: string) => void;
}

export function shardedCalibration(options: ShardedCalibrationOptions): StatisticsCollector {
  return async (model, values, samples, collect) => {
    const total = Math.min(await sampleCount(samples), collect.limit ?? Number.POSITIVE_INFINITY);
    const shards = Math.max(1, Math.min(options.shards ?? 8, total));
    const scratch = tempPathFor(options.scratchBeside);
    trackTemp(scratch);
    try {
      saveModel(model, scratch);
      const ranges = Array.from({ length: shards }, (_, i) => {
        const from = Math.floor((i * total) / shards);
        return { from, count: Math.floor(((i + 1) * total) / shards) - from };
      });
      options.log?.(`calibration: ${total} samples in ${shards} shards to the workers on ${options.url}`);
      collect.progress?.start('calibration shards', shards);
      const results = await dispatchJobs(
        options.url,
        'calibrate',
        ranges.map((r) => ({ model: path.resolve(scratch), data: path.resolve(options.data), from: r.from, count: r.count, values: [...values], batch: collect.batch, threads: collect.threads, valuesPerRun: collect.valuesPerRun })),
        { onProgress: () => collect.progress?.tick() },
      );
      collect.progress?.done();
      return merged(results);
    } finally {
      removeTemp(scratch);
      for (const file of fs.readdirSync(path.dirname(path.resolve(scratch)))) {
        if (file.startsWith(`${path.basename(scratch)}.`) && file.endsWith('.data')) removeTemp(path.join(path.dirname(path.resolve(scratch)), file));
      }
    }
  };
}

function merged(results: Awaited<ReturnType<typeof dispatchJobs<'calibrate'>>>): CollectedStatistics {
  const stats = new Map<string, TensorStatistics>();
  const notFloat = new Map<string, string>();
  let samples = 0;
  let passes = 0;
  for (const result of results) {
    samples += result.samples;
    passes = Math.max(passes, result.passes);
    for (const [name, type] of result.not_float) notFloat.set(name, type);
    for (const json of result.stats) {
      const part = TensorStatistics.fromJSON(json);
      const whole = stats.get(part.name);
      if (whole === undefined) stats.set(part.name, part);
      else whole.merge(part);
    }
  }
  for (const name of notFloat.keys()) stats.delete(name);
  return { stats, notFloat, samples, passes };
}

/** The number of samples, counting them when the source does not say. */
async function sampleCount(samples: SampleSource): Promise<number> {
  if (samples.count !== undefined) return samples.count;
  let n = 0;
  for await (const _ of samples) n++;
  return n;
}
