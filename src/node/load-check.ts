// Does a written model load in onnxruntime-node? Small models are checked in this process; large
// ones in a child process, so that onnxruntime's copy of the weights (gigabytes for a large
// model) never adds to the peak memory of the run that wrote it, and a crash inside onnxruntime
// on a malformed file cannot take the writer down with it.
import { spawn } from 'node:child_process';
import { ortCause } from '../runtime/ort-errors.js';
import { ModelSession } from '../runtime/session.js';
import { childScriptArgs } from './child-script.js';
import { nodeOrt } from './ort-node.js';

/** Models with more bytes than this are loaded in a child process. */
export const IN_PROCESS_BYTES = 256 * 2 ** 20;
/** load-check-child.js (compiled) or load-check-child.ts through tsx (sources). */
const CHILD_ARGS = childScriptArgs(import.meta.url, 'load-check-child');

/** Resolves when onnxruntime loads `file` (data beside it); rejects with onnxruntime's cause, one line. */
export async function checkLoads(file: string, bytes: number): Promise<void> {
  if (bytes <= IN_PROCESS_BYTES) {
    let session: ModelSession;
    try {
      session = await ModelSession.create(nodeOrt, file, { graphOptimization: 'basic', logSeverityLevel: 4 });
    } catch (error) {
      throw new Error(ortCause(error));
    }
    await session.release();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [...CHILD_ARGS, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', (error) => reject(new Error(`the load check could not start: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(stderr.trim().split('\n').pop() || `the load check ended with ${signal ?? `exit code ${code}`}`));
    });
  });
}
