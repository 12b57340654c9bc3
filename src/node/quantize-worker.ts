// The worker side of quantize-workers.ts: quantizes the rows it is given, reading the weights
// and writing codes, scales and zero points in shared memory, and answers with its job id.
import { parentPort } from 'node:worker_threads';
import { type WorkerJob, runJob } from './quantize-workers.js';

parentPort?.on('message', (job: WorkerJob) => {
  runJob(job);
  parentPort?.postMessage(job.id);
});
