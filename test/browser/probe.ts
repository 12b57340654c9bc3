// What the browser test computes about one model (IR facts, inspectModel, writeModel, inference), written once and run twice: inside headless
// Chromium (bundled with onnxruntime-web) and under Node (with onnxruntime-node). The test then
// compares the two results. Only core code is imported here, so this file is itself a check that
// the core needs nothing from Node.
import { inspectModel, type InspectReport } from '../../src/inspect/inspect.js';
import { allConstants } from '../../src/ir/constants.js';
import { readModel, writeModel } from '../../src/onnx/model-io.js';
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';
import { ModelSession } from '../../src/runtime/session.js';
import { mlpModel } from '../../src/train/init-models.js';
import { Trainer } from '../../src/train/trainer.js';
import type { OrtModule, OrtTensor } from '../../src/runtime/ort-types.js';
import { memoryByteSource } from '../../src/eval/byte-source.js';
import { modelSignature } from '../../src/eval/match-inputs.js';
import { writeNpy } from '../../src/eval/npy.js';
import { npySamples } from '../../src/eval/sample-arrays.js';
import type { Model } from '../../src/ir/model.js';
import { recipeFromData } from '../../src/pipeline/recipe.js';
import { runRecipe } from '../../src/pipeline/run-recipe.js';

/** The input of the PP-OCR direction classifier: one 48x192 RGB crop. */
export const PROBE_INPUT_DIMS = [1, 3, 48, 192] as const;

export interface ProbeOptions {
  /** File name, passed to readModel (error messages) and inspectModel (report). */
  source: string;
  /** Execution providers for onnxruntime (['wasm'] in the browser). */
  executionProviders?: string[];
}

export interface ProbeOutput {
  type: string;
  dims: number[];
  /** Element values as plain numbers: exact for float32, so results compare bit for bit. */
  data: number[];
}

/** Everything here survives JSON, so it crosses from the page to Node unchanged. */
export interface ProbeResult {
  /** Nodes in the main graph and all subgraphs. */
  nodeCount: number;
  /** opType (prefixed by domain when not ai.onnx) -> count, over all subgraphs, keys sorted. */
  opHistogram: Record<string, number>;
  constantCount: number;
  /** ConstantSource -> count. */
  constantsBySource: Record<string, number>;
  /** inspectModel's report, passed through JSON here too so both sides compare the same form. */
  report: InspectReport;
  /** SHA-256 of writeModel(readModel(bytes)), hex. */
  reencodedSha256: string;
  reencodedByteLength: number;
  /** Outputs of the file as given and of the re-encoded model, on the same input. */
  outputsOriginal: Record<string, ProbeOutput>;
  outputsReencoded: Record<string, ProbeOutput>;
  /** Loss of each of TRAINING_STEPS AdamW steps on a small MLP built in code (training in the runtime). */
  trainingLosses: number[];
  /** PROBE_RECIPE run by runRecipe on the model with recipeDataNpy() as data: what it wrote, and the gate. */
  recipe: { sha256: string; byteLength: number; gatePassed: boolean; steps: string[] };
}

/** A 3-step recipe, as a user would write it in recipe.json; the CLI runs the same file. */
export const PROBE_RECIPE = {
  steps: [{ optimize: {} }, { quantize: { method: 'int8-weight' } }, { gate: { min_cosine: 0.98 } }],
};

/** The recipe's data: 4 deterministic classifier inputs as one .npy (float32 [4,3,48,192]). */
export function recipeDataNpy(): Uint8Array {
  const dims = [4, ...PROBE_INPUT_DIMS.slice(1)];
  return writeNpy({ dataType: DataType.FLOAT, dims, data: new Uint8Array(probeInput(dims).buffer) });
}

export const TRAINING_STEPS = 12;

export async function probeModel(ort: OrtModule, bytes: Uint8Array, options: ProbeOptions): Promise<ProbeResult> {
  const model = readModel(bytes, { source: options.source });

  let nodeCount = 0;
  const histogram = new Map<string, number>();
  for (const { node } of model.graph.allNodes()) {
    nodeCount++;
    const key = node.domain === '' || node.domain === 'ai.onnx' ? node.opType : `${node.domain}::${node.opType}`;
    histogram.set(key, (histogram.get(key) ?? 0) + 1);
  }

  let constantCount = 0;
  const bySource = new Map<string, number>();
  for (const { source } of allConstants(model.graph)) {
    constantCount++;
    bySource.set(source, (bySource.get(source) ?? 0) + 1);
  }

  const report = JSON.parse(JSON.stringify(inspectModel(model, { fileBytes: bytes.byteLength, source: options.source }))) as InspectReport;

  const reencoded = writeModel(model);
  const reencodedSha256 = await sha256Hex(reencoded);

  // Copies: a runtime is free to take over the buffer it is given.
  const outputsOriginal = await runOnce(ort, bytes.slice(), options);
  const outputsReencoded = await runOnce(ort, reencoded.slice(), options);
  const trainingLosses = await trainSmallMlp(ort, options);
  const recipe = await runProbeRecipe(ort, model);

  return {
    nodeCount,
    opHistogram: sortedRecord(histogram),
    constantCount,
    constantsBySource: sortedRecord(bySource),
    report,
    reencodedSha256,
    reencodedByteLength: reencoded.byteLength,
    outputsOriginal,
    outputsReencoded,
    trainingLosses,
    recipe,
  };
}

/** runRecipe as the page runs it: the model in memory, the data from .npy bytes, onnxruntime given. */
async function runProbeRecipe(ort: OrtModule, model: Model): Promise<ProbeResult['recipe']> {
  const data = await npySamples(memoryByteSource(recipeDataNpy()), 'data.npy', modelSignature(model).inputs);
  const result = await runRecipe(model, recipeFromData(PROBE_RECIPE, 'recipe.json'), { data }, { ort, threads: 1 });
  const bytes = writeModel(result.model);
  const gate = result.report.steps.find((s) => s.step === 'gate');
  return { sha256: await sha256Hex(bytes), byteLength: bytes.byteLength, gatePassed: gate?.step === 'gate' && gate.report.passed, steps: result.report.steps.map((s) => s.step) };
}

/**
 * Builds a training step for an 8-6-3 MLP (autodiff, loss, AdamW as ONNX graphs) and runs it on
 * the same batch every step: the loss must fall, and match between runtimes.
 */
async function trainSmallMlp(ort: OrtModule, options: ProbeOptions): Promise<number[]> {
  const trainer = await Trainer.create(ort, mlpModel({ imageDims: [8], hidden: [6], classes: 3, seed: 1 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'adamw' } }, { threads: 1, executionProviders: options.executionProviders });
  const batch = {
    input: Tensor.fromArray('input', DataType.FLOAT, [16, 8], probeInput([16, 8])),
    'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [16], BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i % 3))),
  };
  const losses: number[] = [];
  try {
    for (let step = 0; step < TRAINING_STEPS; step++) losses.push(await trainer.step(batch, 0.05));
  } finally {
    await trainer.release();
  }
  return losses;
}

/**
 * A deterministic input in [-1, 1): a 32-bit linear congruential generator with integer-exact
 * arithmetic (Math.imul), so Node and the browser produce the same bits.
 */
export function probeInput(dims: readonly number[] = PROBE_INPUT_DIMS): Float32Array {
  const count = dims.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  let state = 0x2545f491;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 31 - 1;
  }
  return values;
}

async function runOnce(ort: OrtModule, modelBytes: Uint8Array, options: ProbeOptions): Promise<Record<string, ProbeOutput>> {
  const session = await ModelSession.create(ort, modelBytes, {
    threads: 1,
    executionProviders: options.executionProviders,
  });
  try {
    const [inputName] = session.inputNames;
    if (inputName === undefined) throw new Error(`${options.source}: model has no inputs`);
    const feeds = { [inputName]: new ort.Tensor('float32', probeInput(), [...PROBE_INPUT_DIMS]) };
    const results = await session.run(feeds);
    const outputs: Record<string, ProbeOutput> = {};
    for (const name of Object.keys(results).sort()) outputs[name] = plainOutput(results[name] as OrtTensor);
    return outputs;
  } finally {
    await session.release();
  }
}

function plainOutput(tensor: OrtTensor): ProbeOutput {
  const data = tensor.data;
  if (!(data instanceof Float32Array)) throw new Error(`probe expects float32 outputs, got ${tensor.type}`);
  return { type: tensor.type, dims: [...tensor.dims], data: Array.from(data) };
}

/** Web Crypto exists in browsers (secure contexts, which 127.0.0.1 is) and in Node 20 alike. */
async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // Web Crypto takes only ArrayBuffer-backed views; the copy is cheap at this size.
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', new Uint8Array(bytes)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function sortedRecord(map: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
