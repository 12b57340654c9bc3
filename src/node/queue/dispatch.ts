// Sends jobs to `shrink worker`s through BullMQ and waits for every result, in the order the jobs
// were given. Job ids are the dispatcher's run id and the job's position, so BullMQ never holds two
// copies of one job. Jobs fail without retries (a failure is the job's own, e.g. bad data, reported
// once); a worker that dies mid-job is BullMQ's business (the job is retried elsewhere, see worker.ts).
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { shrinkVersion } from '../environment.js';
import { queueConnection } from './connection.js';
import { type JobName, type JobTypes, QUEUE_NAME } from './protocol.js';

export interface DispatchOptions {
  /** Called as jobs finish: (finished, total). */
  onProgress?: (finished: number, total: number) => void;
  /** Give up when no worker is connected to the queue (default true): nobody would ever take the jobs. */
  requireWorkers?: boolean;
}

/** A job payload without the version header, which dispatch adds. */
export type JobPayload<N extends JobName> = Omit<JobTypes[N][0], 'shrink_version'> & { shrink_version?: string };

export async function dispatchJobs<N extends JobName>(url: string, name: N, payloads: readonly JobPayload<N>[], options: DispatchOptions = {}): Promise<JobTypes[N][1][]> {
  const connection = queueConnection(url);
  const queue = new Queue(QUEUE_NAME, { connection });
  const events = new QueueEvents(QUEUE_NAME, { connection });
  try {
    try {
      await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    } catch (error) {
      throw new Error(`--queue ${url}: cannot reach Redis (${(error as Error).message})`);
    }
    if (options.requireWorkers !== false && (await queue.getWorkersCount()) === 0) {
      throw new Error(`--queue ${url}: no shrink worker is connected; start some with: shrink worker --queue ${url}`);
    }
    const run = randomUUID();
    const version = shrinkVersion();
    const jobs = await queue.addBulk(
      payloads.map((payload, i) => ({
        name,
        data: { shrink_version: version, ...payload },
        opts: { jobId: `${run}-${i}`, attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
      })),
    );
    let finished = 0;
    return await Promise.all(
      jobs.map(async (job, i) => {
        try {
          const result = (await job.waitUntilFinished(events)) as JobTypes[N][1];
          options.onProgress?.(++finished, jobs.length);
          return result;
        } catch (error) {
          throw new Error(`job ${i + 1} of ${jobs.length} (${name}) failed on a worker: ${(error as Error).message}`);
        }
      }),
    );
  } finally {
    await events.close();
    await queue.close();
  }
}
