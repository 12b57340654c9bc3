// `shrink worker --queue redis://HOST:PORT`: takes shrink's jobs from the BullMQ queue on Redis
// (calibration shards of `shrink quantize --queue`, candidates of `shrink auto --queue`) until SIGINT or SIGTERM, then finishes the jobs
// in hand and exits. One line per job on stderr.
import type { Command } from 'commander';
import { nodeOrt } from '../node/ort-node.js';
import type { EvaluateJob } from '../node/queue/protocol.js';
import { startWorker } from '../node/queue/worker.js';
import type { CliContext } from './main.js';
import { wholeNumber } from './options.js';

interface WorkerFlags {
  queue: string;
  concurrency: string;
  lockDuration: string;
}

export function registerWorker(program: Command, context: CliContext): void {
  program
    .command('worker')
    .description('take jobs from a job queue (BullMQ on Redis): calibration shards of shrink quantize --queue; runs until interrupted')
    .requiredOption('--queue <url>', 'the Redis server of the queue: redis://HOST:PORT[/DB]')
    .option('--concurrency <n>', 'jobs at once', '1')
    .option('--lock-duration <ms>', "how long a job stays claimed without this worker's renewal: a dead worker's job is retried after about twice this", '30000')
    .action(async (flags: WorkerFlags) => {
      const concurrency = wholeNumber(flags.concurrency, '--concurrency', 1);
      const lockDuration = wholeNumber(flags.lockDuration, '--lock-duration', 1000);
      const ctx = { ort: nodeOrt, threads: 1 };
      const handlers = { evaluate: async (job: EvaluateJob) => (await import('./auto-evaluate.js')).evaluateJob(job, ctx) };
      const worker = await startWorker(flags.queue, { concurrency, lockDuration, handlers, log: (line) => context.io.stderr(`${line}\n`) });
      await new Promise<void>((resolve) => {
        const stop = () => {
          context.io.stderr('worker: stopping after the jobs in hand\n');
          resolve();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await worker.close();
    });
}
