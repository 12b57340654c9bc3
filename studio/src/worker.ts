// The studio's worker: onnxruntime-web and every shrink step run here, off the page's thread. It
// holds the dropped model, answers recipe checks as the user types, runs a recipe with progress,
// compares the result with the original layer by layer, and hands back the result's bytes.
// Nothing leaves the browser: the only fetches are onnxruntime's own module and .wasm, from the
// page's own origin.
import type { EvalReport } from '../../src/eval/eval-report.js';
import { compareModels } from '../../src/eval/compare.js';
import { inspectModel } from '../../src/inspect/inspect.js';
import type { Model } from '../../src/ir/model.js';
import { readModel, writeModel } from '../../src/onnx/model-io.js';
import type { Progress } from '../../src/pipeline/progress.js';
import { runRecipe } from '../../src/pipeline/run-recipe.js';
import type { OrtModule } from '../../src/runtime/ort-types.js';
import type { FromWorker, RunProgress, ToWorker } from './protocol.js';
import { checkRecipe } from './recipe-problems.js';
import { sampleSourceFor, symbolicDims } from './samples.js';

/** The worker global, typed by hand: the page's tsconfig has the DOM library, not WebWorker's. */
const scope = self as unknown as {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  crossOriginIsolated: boolean;
};

/** Threads when the page is cross-origin isolated (SharedArrayBuffer exists), up to 4. */
const MAX_THREADS = 4;
/** Progress messages at most this often. */
const PROGRESS_MS = 100;

let ort: OrtModule | undefined;
let loaded: { model: Model; name: string; bytes: number } | undefined;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}

/** One line: the first line of the message (stacks and detail stay in the console). */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0];
}

async function init(ortBase: string): Promise<void> {
  const module = (await import(/* @vite-ignore */ `${ortBase}ort.wasm.min.mjs`)) as OrtModule & {
    env: { wasm: { numThreads: number; wasmPaths: string }; versions: { web: string } };
  };
  const threads = scope.crossOriginIsolated ? Math.max(1, Math.min(MAX_THREADS, navigator.hardwareConcurrency || 1)) : 1;
  module.env.wasm.numThreads = threads;
  module.env.wasm.wasmPaths = ortBase;
  ort = module;
  post({ type: 'ready', threads, isolated: scope.crossOriginIsolated, ortVersion: module.env.versions.web });
}

function load(name: string, bytes: ArrayBuffer): void {
  loaded = undefined;
  const model = readModel(new Uint8Array(bytes), { source: name });
  loaded = { model, name, bytes: bytes.byteLength };
  post({ type: 'loaded', report: inspectModel(model, { fileBytes: bytes.byteLength, source: name }), dims: symbolicDims(model) });
}

async function run(message: Extract<ToWorker, { type: 'run' }>): Promise<void> {
  if (ort === undefined) throw new Error('onnxruntime-web is not loaded yet');
  if (loaded === undefined) throw new Error('drop a model first');
  const { model, name } = loaded;
  const checked = checkRecipe(message.text);
  if ('problem' in checked) throw new Error(checked.problem.message);
  const recipe = checked.recipe;
  const started = performance.now();
  const steps = recipe.steps.length;
  let current: RunProgress = { step: 0, steps, name: '' };
  let lastPost = 0;
  const send = (force = false) => {
    const now = performance.now();
    if (!force && now - lastPost < PROGRESS_MS) return;
    lastPost = now;
    post({ type: 'progress', progress: current });
  };
  const progress: Progress = {
    start(task, total) {
      current = { ...current, task, total, done: 0 };
      send(true);
    },
    tick(n = 1) {
      current = { ...current, done: (current.done ?? 0) + n };
      send();
    },
    done() {
      send(true);
    },
  };
  const samples = await sampleSourceFor(model, message.samples, message.scaling, message.generated);
  try {
    const ctx = { ort, threads: 1, progress };
    const result = await runRecipe(model, recipe, { data: samples, inputBytes: loaded.bytes }, ctx, (index, total, stepName) => {
      current = { step: index + 1, steps: total, name: stepName };
      send(true);
    });
    current = { step: steps + 1, steps, name: 'compare layers' };
    send(true);
    const comparison: EvalReport = await compareModels(ort, model, result.model, samples, { perLayer: true, threads: 1, progress, names: { original: name, candidate: 'result' } });
    const bytes = result.pack ?? writeModel(result.model);
    const base = name.replace(/\.onnx$/i, '');
    const fileName = result.pack === undefined ? `${base}.shrunk.onnx` : `${base}.shrink`;
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    post({ type: 'result', result: { bytes: buffer, fileName, report: result.report, comparison, samples: samples.description, ms: performance.now() - started } }, [buffer]);
  } finally {
    await samples.close?.();
  }
}

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case 'init':
      init(message.ortBase).catch((error) => post({ type: 'error', stage: 'init', message: `onnxruntime-web did not start: ${oneLine(error)}` }));
      return;
    case 'load':
      try {
        load(message.file.name, message.file.bytes);
      } catch (error) {
        post({ type: 'error', stage: 'load', message: oneLine(error) });
      }
      return;
    case 'check': {
      const checked = checkRecipe(message.text);
      post({ type: 'checked', id: message.id, problem: 'problem' in checked ? checked.problem : undefined });
      return;
    }
    case 'run':
      run(message).catch((error) => {
        console.error(error);
        post({ type: 'error', stage: 'run', message: oneLine(error) });
      });
      return;
  }
};
