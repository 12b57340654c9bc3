// Sends jobs to `shrink worker`s through BullMQ and waits for every result, in the order the jobs
// were given. Job ids are the dispatcher's run id and the job's position, so BullMQ never holds two
// copies of one job. Jobs fail without retries (a failure is the job's own, e.g. bad data, reported
// once); a worker that dies mid-job is BullMQ's business (the job is retried elsewhere, see worker.ts).
//
// Redis may restart while the dispatcher waits. The connections reconnect by themselves
// (connection.ts), but what Redis had not saved is gone: the events that announce finished jobs,
// even the jobs. So a result is taken from whichever comes first, the job's event or a poll of its
// state, and a job that Redis no longer knows is added again under its id. Each job settles once,
// whatever arrives later: no duplicate results.
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { shrinkVersion } from '../environment.js';
import { queueConnection, reachRedis } from './connection.js';
import { type JobName, type JobTypes, QUEUE_NAME } from './protocol.js';

export interface DispatchOptions<N extends JobName = JobName> {
  /** Called as jobs finish: (finished, total). */
  onProgress?: (finished: number, total: number) => void;
  /** Called with each result as it arrives (e.g. to cache it before the others finish). */
  onResult?: (index: number, result: JobTypes[N][1]) => void;
  /** Give up when no worker is connected to the queue (default true): nobody would ever take the jobs. */
  requireWorkers?: boolean;
  /** How long to wait for a worker to connect before giving up, ms (default 0; workers reconnecting after a Redis restart need a few seconds). */
  waitForWorkersMs?: number;
  /** How often the state of unfinished jobs is read, in case their events were lost, ms (default 1000). */
  pollMs?: number;
  /** How long the first connection may take, ms (default 5000): an address with no Redis fails in one line. */
  connectMs?: number;
  /** When each job was added, started, finished (the worker's clock) and seen here; read back from Redis once all are done. */
  onTiming?: (index: number, timing: JobTiming) => void;
  /** Connection trouble and re-added jobs, one line each. */
  log?: (line: string) => void;
}

/** Epoch milliseconds of a job's life; `started` and `finished` come from the worker's clock. */
export interface JobTiming {
  added: number;
  started: number;
  finished: number;
  seen: number;
}

/** A job payload without the version header, which dispatch adds. */
export type JobPayload<N extends JobName> = Omit<JobTypes[N][0], 'shrink_version'> & { shrink_version?: string };

export async function dispatchJobs<N extends JobName>(url: string, name: N, payloads: readonly JobPayload<N>[], options: DispatchOptions<N> = {}): Promise<JobTypes[N][1][]> {
  const log = options.log ?? (() => {});
  const connection = queueConnection(url);
  await reachRedis(url, options.connectMs);
  const queue = new Queue(QUEUE_NAME, { connection });
  const events = new QueueEvents(QUEUE_NAME, { connection });
  // Redis going away makes both report the same error on every reconnection attempt: say it once.
  let lastError = '';
  const onError = (error: Error) => {
    if (error.message !== lastError) log(`queue: ${error.message}`);
    lastError = error.message;
  };
  queue.on('error', onError);
  events.on('error', onError);
  try {
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    if (options.requireWorkers !== false && !(await workersConnected(queue, options.waitForWorkersMs ?? 0))) {
      throw new Error(`--queue ${url}: no shrink worker is connected; start some with: shrink worker --queue ${url}`);
    }
    const run = randomUUID();
    const version = shrinkVersion();
    const jobs = payloads.map((payload, i) => ({
      name,
      data: { shrink_version: version, ...payload },
      opts: { jobId: `${run}-${i}`, attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
    }));
    const index = new Map(jobs.map((job, i) => [job.opts.jobId, i]));
    const results: JobTypes[N][1][] = new Array(jobs.length);
    const settled = new Set<number>();
    const seen: number[] = new Array(jobs.length);
    const all = await new Promise<JobTypes[N][1][]>((resolve, reject) => {
      let failed = false;
      const succeed = (i: number, result: JobTypes[N][1]) => {
        if (failed || settled.has(i)) return;
        settled.add(i);
        seen[i] = Date.now();
        results[i] = result;
        options.onResult?.(i, result);
        options.onProgress?.(settled.size, jobs.length);
        if (settled.size === jobs.length) resolve(results);
      };
      const fail = (i: number, reason: string) => {
        if (failed || settled.has(i)) return;
        failed = true;
        reject(new Error(`job ${i + 1} of ${jobs.length} (${name}) failed on a worker: ${reason}`));
      };
      events.on('completed', ({ jobId, returnvalue }) => {
        const i = index.get(jobId);
        if (i !== undefined) succeed(i, returnvalue as unknown as JobTypes[N][1]);
      });
      events.on('failed', ({ jobId, failedReason }) => {
        const i = index.get(jobId);
        if (i !== undefined) fail(i, failedReason);
      });
      const poll = async () => {
        const pollMs = options.pollMs ?? 1000;
        while (!failed && settled.size < jobs.length) {
          await new Promise((r) => setTimeout(r, pollMs));
          for (const [i, job] of jobs.entries()) {
            if (failed || settled.has(i)) continue;
            const stored = await queue.getJob(job.opts.jobId);
            if (stored === undefined) {
              log(`queue: job ${i + 1} of ${jobs.length} (${name}) is no longer in Redis (restarted without it?): added again`);
              await queue.add(job.name, job.data as never, job.opts);
              continue;
            }
            const state = await stored.getState();
            if (state === 'completed') {
              // The job was read before its state: it may have finished in between, with its result
              // not in what was read. Read it again now that it is known to be complete.
              const done = stored.returnvalue ?? (await queue.getJob(job.opts.jobId))?.returnvalue;
              if (done !== undefined && done !== null) succeed(i, done as JobTypes[N][1]);
            } else if (state === 'failed') fail(i, stored.failedReason ?? (await queue.getJob(job.opts.jobId))?.failedReason ?? 'no reason recorded');
          }
        }
      };
      queue
        .addBulk(jobs as Parameters<typeof queue.addBulk>[0])
        .then(poll)
        .catch((error: Error) => {
          if (!failed) reject(error);
          failed = true;
        });
    });
    if (options.onTiming !== undefined) {
      for (const [i, job] of jobs.entries()) {
        const stored = await queue.getJob(job.opts.jobId);
        if (stored?.processedOn !== undefined && stored.finishedOn !== undefined) options.onTiming(i, { added: stored.timestamp, started: stored.processedOn, finished: stored.finishedOn, seen: seen[i] });
      }
    }
    return all;
  } finally {
    await events.close();
    await queue.close();
  }
}

async function workersConnected(queue: Queue, waitMs: number): Promise<boolean> {
  const end = Date.now() + waitMs;
  for (;;) {
    if ((await queue.getWorkersCount()) > 0) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}
