// Peak resident memory of running a model, measured in a short child process per model.
//
// Why not in the benchmark's own process: the kernel keeps one high-water mark per process
// (getrusage maxRSS), and it only ever rises. In the latency run every model's session is loaded
// at once and runs interleaved, so the mark would hold whichever model peaked highest, plus
// everything loaded before it, and could not be split between models. A fresh process per model
// starts from a clean mark; a second child that does the same work on a one-node model gives the
// baseline (Node, tsx when run from sources, the runtime itself), and the difference is what the model added: the
// session's weights and kernels, inputs and activations, and the decoded .onnx file. Each child
// loads its model as the benchmark does (memory-probe.ts: onnxruntime-node from the file's path, so
// a model with external data, even over 2 GiB, is never copied into one buffer). The children run
// one after another, after the timing loop, so they neither disturb the latency figures nor each other.
import { spawn } from 'node:child_process';
import type { MemoryUsage } from '../eval/benchmark.js';
import { silentProgress, type Progress } from '../pipeline/progress.js';
import { childScriptArgs } from './child-script.js';

/** What a probe child does; the JSON it receives on its command line. */
export interface ProbeRequest {
  /** Model file, or null for the baseline (a one-node model on the same runtime). */
  file: string | null;
  backend: 'node' | 'wasm';
  threads: number;
  batch: number;
  dims: Record<string, number>;
  /** Runs after loading: the first reaches the activation peak, more add little. */
  runs: number;
}

export interface MemoryOptions {
  backend: 'node' | 'wasm';
  threads: number;
  batch: number;
  dims?: Record<string, number>;
  /** Runs per child (default 2). */
  runs?: number;
  progress?: Progress;
  /** Debug lines (SHRINK_DEBUG): level 1 per child. */
  debug?: (level: 1 | 2, message: string) => void;
}

/** memory-probe.js (compiled) or memory-probe.ts through tsx (sources). */
const PROBE_ARGS = childScriptArgs(import.meta.url, 'memory-probe');
const CHILD_TIMEOUT_MS = 300_000;

/** Peak and baseline RSS for each file, in order. */
export async function measureMemory(files: readonly string[], options: MemoryOptions): Promise<MemoryUsage[]> {
  const progress = options.progress ?? silentProgress;
  const base = { backend: options.backend, threads: options.threads, batch: options.batch, dims: options.dims ?? {}, runs: options.runs ?? 2 };
  progress.start('memory', files.length + 1);
  const debug = options.debug ?? (() => {});
  const baseline_rss_bytes = await runProbe({ ...base, file: null });
  debug(1, `memory: baseline child peak ${mib(baseline_rss_bytes)}`);
  progress.tick();
  const results: MemoryUsage[] = [];
  for (const file of files) {
    const peak_rss_bytes = await runProbe({ ...base, file });
    debug(1, `memory: ${file}: child peak ${mib(peak_rss_bytes)}`);
    results.push({ peak_rss_bytes, baseline_rss_bytes, model_rss_bytes: Math.max(0, peak_rss_bytes - baseline_rss_bytes) });
    progress.tick();
  }
  progress.done();
  return results;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Runs one probe child and returns its maxRSS in bytes. */
function runProbe(request: ProbeRequest): Promise<number> {
  const what = request.file ?? 'memory baseline';
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...PROBE_ARGS, JSON.stringify(request)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: CHILD_TIMEOUT_MS,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
    child.on('error', (error) => reject(new Error(`${what}: memory probe could not start: ${error.message}`)));
    child.on('close', (code, signal) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code === 0) {
        try {
          const { maxRssBytes } = JSON.parse(last) as { maxRssBytes: number };
          if (typeof maxRssBytes === 'number' && maxRssBytes > 0) return resolve(maxRssBytes);
        } catch {
          // Falls through to the error below.
        }
      }
      const reason = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
      const detail = stderr.trim().split('\n').pop() || last || 'no output';
      reject(new Error(`${what}: memory probe failed (${reason}): ${detail}`));
    });
  });
}
