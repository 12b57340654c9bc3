// The speed check of every command that writes a model: before the result replaces anything, the
// original and the candidate run side by side (interleaved, src/eval/benchmark.ts) for about a
// second on this machine, so a report shows speed next to fidelity, and a result slower than its
// original says so before it is written. On by default; `--no-bench` skips it, and so does
// SHRINK_NO_BENCH=1 (the test runner sets it: timing is noise there, and test/speed-check.test.ts
// covers the check itself). Models too large to run in this process are not timed; the report says why.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { benchmarkModels } from '../eval/benchmark.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { IN_PROCESS_BYTES } from '../node/load-check.js';
import { nodeOrt } from '../node/ort-node.js';
import type { PassWarning } from '../pipeline/pass.js';

/** Timing budget of the interleaved runs, ms (sessions load on top of it). */
const BUDGET_MS = 1000;
/** Below this ratio the result is called slower: a short run on a shared machine varies by a few percent. */
const SLOWER_BELOW = 0.95;

export interface SpeedCheck {
  /** Median latency of the original and of the result, ms. */
  original_ms: number;
  candidate_ms: number;
  /** original / candidate: above 1 the result is faster. */
  speedup: number;
  threads: number;
  /** Timed runs of each model. */
  runs: number;
  /** What was fed, as `name type[dims]`. */
  inputs: string[];
  /** 'data' (the first sample of --data) or 'generated'. */
  input_source: 'data' | 'generated';
}

export type SpeedReport = SpeedCheck | { skipped: string };

export interface SpeedRequest {
  /** The original model's file and decoded model. */
  original: { file: string; model: Model };
  /** Inputs to time on (the first --data sample); generated from the declared inputs otherwise. */
  inputs?: Readonly<Record<string, Tensor>>;
  /** Sizes of symbolic dims for generated inputs (the command's --dims). */
  dims?: Readonly<Record<string, number>>;
  /** What to try when the result is slower, for the warning (e.g. "--exclude Conv"). */
  slowerHint?: string;
}

/** The first sample of `source` (the inputs to time on), or undefined when it has none. */
export async function firstInputs(source: SampleSource | undefined): Promise<Readonly<Record<string, Tensor>> | undefined> {
  if (source === undefined) return undefined;
  for await (const sample of source) return sample.inputs;
  return undefined;
}

/** `--no-bench` on a command that writes a model (the flag arrives as `bench: false`). */
export function addBenchOption<C extends Command>(command: C): C {
  return command.option('--no-bench', 'skip the speed check (the original and the result timed side by side for about a second before writing)') as C;
}

/** Whether the speed check runs: `--no-bench` (flag false) or SHRINK_NO_BENCH=1 turn it off. */
export function speedCheckWanted(flag: boolean | undefined): boolean {
  return flag !== false && process.env.SHRINK_NO_BENCH !== '1';
}

/**
 * Times `request.original` against the candidate at `file` (bytes on disk). Never throws for the
 * timing itself: a model that cannot be timed gets `{ skipped }` with the reason.
 */
export async function checkSpeed(request: SpeedRequest, candidate: { file: string; model: Model; bytes: number }): Promise<{ speed: SpeedReport; warnings: PassWarning[] }> {
  const originalBytes = fs.statSync(request.original.file).size;
  if (Math.max(originalBytes, candidate.bytes) > IN_PROCESS_BYTES) {
    return { speed: { skipped: `models over ${IN_PROCESS_BYTES / 2 ** 20} MiB are not timed here (run shrink bench)` }, warnings: [] };
  }
  const inputs = request.inputs === undefined ? undefined : [request.inputs, request.inputs];
  let report: Awaited<ReturnType<typeof benchmarkModels>>;
  try {
    report = await benchmarkModels(
      nodeOrt,
      [
        { name: 'original', source: request.original.file, model: request.original.model, size: originalBytes },
        { name: 'result', source: candidate.file, model: candidate.model, size: candidate.bytes },
      ],
      { runs: 50, warmup: 2, threads: 1, maxMs: BUDGET_MS, inputs, dims: request.dims },
    );
  } catch (error) {
    return { speed: { skipped: `the speed check failed: ${(error as Error).message}` }, warnings: [] };
  }
  const [original, result] = report.models;
  const speed: SpeedCheck = {
    original_ms: original.latency_ms.median,
    candidate_ms: result.latency_ms.median,
    speedup: original.latency_ms.median / result.latency_ms.median,
    threads: report.threads,
    runs: report.runs,
    inputs: result.inputs,
    input_source: request.inputs === undefined ? 'generated' : 'data',
  };
  // Both models share their inputs, so a defaulted dim is said once.
  const warnings = report.warnings.filter((w) => w.message.startsWith('result: ')).map((w) => ({ ...w, message: w.message.replace(/^result: /, 'speed check: ') }));
  if (speed.speedup < SLOWER_BELOW) {
    const hint = request.slowerHint === undefined ? '' : `; ${request.slowerHint}`;
    warnings.push({
      code: 'slower-than-original',
      message: `the result runs at ${speed.speedup.toFixed(2)}x the original's speed on this machine (median ${ms(speed.candidate_ms)} ms against ${ms(speed.original_ms)} ms, ${describeSetting(speed)})${hint}`,
    });
  }
  return { speed, warnings };
}

/** `speed      1.52x the original (median 2.01 ms vs 3.06 ms; 1 thread, 20 runs, generated x float32[1,3,48,320])`. */
export function formatSpeedLine(speed: SpeedReport | undefined): string {
  if (speed === undefined) return '';
  if ('skipped' in speed) return `speed      not measured: ${speed.skipped}\n`;
  return `speed      ${speed.speedup.toFixed(2)}x the original (median ${ms(speed.candidate_ms)} ms vs ${ms(speed.original_ms)} ms; ${describeSetting(speed)})\n`;
}

function describeSetting(speed: SpeedCheck): string {
  return `${speed.threads} thread${speed.threads === 1 ? '' : 's'}, ${speed.runs} runs each, ${speed.input_source} ${speed.inputs.join(', ')}`;
}

/** Three significant digits: 0.0312, 3.12, 312. */
function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}
