// A shrink worker: takes jobs from the BullMQ queue on Redis and runs them in this process with
// onnxruntime-node. BullMQ holds each active job under a lock the worker renews; a worker that dies
// mid-job stops renewing, and after `lockDuration` the job goes back to the queue for another
// worker (a stalled job; at most `maxStalledCount` times), so no result is lost and none is
// delivered twice. A job that fails on its own terms (bad data, a model that does not load, another
// shrink version) fails once with its reason: retrying would fail the same way.
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { collectStatistics } from '../../eval/activation-stats.js';
import { modelSignature } from '../../eval/match-inputs.js';
import { sampleRange } from '../../eval/samples.js';
import { shrinkVersion } from '../environment.js';
import { loadModel } from '../model-files.js';
import { nodeOrt } from '../ort-node.js';
import { openSampleFile } from '../sample-files.js';
import { queueConnection, reachRedis } from './connection.js';
import { type CalibrateJob, type CalibrateResult, type EvaluateJob, JOB_NAMES, type JobHandlers, QUEUE_NAME } from './protocol.js';

export interface WorkerOptions {
  /** Handlers of the other job kinds (the CLI gives `evaluate`). */
  handlers?: JobHandlers;
  /** Jobs run at once (default 1: calibration already keeps onnxruntime busy). */
  concurrency?: number;
  /** How long a job's lock lasts without renewal, ms (default 30000): how soon a dead worker's job is retried. */
  lockDuration?: number;
  /** One line per job event. */
  log?: (line: string) => void;
}

export interface RunningWorker {
  /** Finishes the jobs in hand, then disconnects. */
  close(): Promise<void>;
}

export async function startWorker(url: string, options: WorkerOptions = {}): Promise<RunningWorker> {
  const log = options.log ?? (() => {});
  const version = shrinkVersion();
  const lockDuration = options.lockDuration ?? 30_000;
  const handlers = options.handlers ?? {};
  await reachRedis(url);
  // From here on the connection survives Redis restarts (connection.ts): a job in hand finishes and
  // its result is sent once Redis is back (commands wait); if Redis lost the job's lock, BullMQ drops
  // the result and the dispatcher, which polls, adds the job again.
  const worker = new Worker(QUEUE_NAME, (job: Job) => runJob(job, version, handlers, log), {
    connection: queueConnection(url),
    concurrency: options.concurrency ?? 1,
    lockDuration,
    // Stalled jobs are looked for as often as a lock lasts, so a dead worker's job waits at most about twice that.
    stalledInterval: lockDuration,
    maxStalledCount: 2,
    autorun: true,
  });
  // Redis going away makes BullMQ report the same error on every reconnection attempt: say it once.
  let lastError = '';
  worker.on('error', (error) => {
    if (error.message !== lastError) log(`worker: ${error.message}`);
    lastError = error.message;
  });
  worker.on('ready', () => {
    lastError = '';
  });
  await worker.waitUntilReady();
  log(`worker: shrink ${version} listening on ${url} (queue '${QUEUE_NAME}', ${options.concurrency ?? 1} at a time)`);
  return {
    // BullMQ's close finishes the jobs in hand and waits for Redis to confirm; with Redis away it
    // would wait for ever. Then the worker leaves: its jobs' locks run out and, once Redis is back,
    // they return to the queue as stalled jobs for another worker.
    close: async () => {
      const away = () =>
        reachRedis(url, 1000).then(
          () => false,
          () => true,
        );
      const leave = () => log('worker: Redis is away; leaving without it (jobs in hand go back to the queue when their locks run out)');
      // Asked first, so that leaving without Redis does not depend on how fast BullMQ notices.
      if (await away()) return leave();
      const closed = worker.close().then(() => true);
      for (;;) {
        if (await Promise.race([closed, new Promise<false>((resolve) => setTimeout(() => resolve(false), 500))])) return;
        if (await away()) return leave();
      }
    },
  };
}

async function runJob(job: Job, version: string, handlers: JobHandlers, log: (line: string) => void): Promise<unknown> {
  const started = performance.now();
  const data = job.data as { shrink_version?: string };
  if (data.shrink_version !== version) {
    const reason = `refused: the job comes from shrink ${data.shrink_version ?? '(unknown version)'} and this worker runs shrink ${version}`;
    log(`worker: job ${job.id} ${job.name}: ${reason}`);
    throw new UnrecoverableError(reason);
  }
  log(`worker: job ${job.id} ${job.name} started`);
  try {
    let result: unknown;
    switch (job.name) {
      case 'calibrate':
        result = await calibrate(job.data as CalibrateJob);
        break;
      case 'ping':
        result = { pid: process.pid };
        break;
      case 'evaluate':
        if (handlers.evaluate === undefined) throw new Error('this worker does not evaluate candidates');
        result = await handlers.evaluate(job.data as EvaluateJob);
        break;
      default:
        throw new Error(`unknown job '${job.name}' (this worker runs ${JOB_NAMES.join(', ')})`);
    }
    log(`worker: job ${job.id} ${job.name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return result;
  } catch (error) {
    const reason = (error as Error).message;
    log(`worker: job ${job.id} ${job.name} failed: ${reason}`);
    throw new UnrecoverableError(reason);
  }
}

async function calibrate(job: CalibrateJob): Promise<CalibrateResult> {
  const model = loadModel(job.model);
  const samples = sampleRange(await openSampleFile(job.data, modelSignature(model)), job.from, job.count);
  try {
    const collected = await collectStatistics(nodeOrt, model, job.values, samples, { batch: job.batch, threads: job.threads, valuesPerRun: job.valuesPerRun });
    return {
      samples: collected.samples,
      passes: collected.passes,
      not_float: [...collected.notFloat],
      stats: [...collected.stats.values()].map((s) => s.toJSON()),
    };
  } finally {
    await samples.close?.();
  }
}
