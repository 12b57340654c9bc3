// Child process of test/external-data.test.ts: builds a model with more than 2 GiB of float
// weights, saves it with external data, loads it back and runs it in onnxruntime-node from the
// path. It runs alone in its own process so that `maxRSS` measures this work and nothing else.
// Usage: node --expose-gc --import tsx test/helpers/big-external-model.ts <empty folder>
// Prints one JSON line (BigModelReport) on stdout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { DataType } from '../../src/ir/dtype.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { makeValueInfo } from '../../src/ir/value-info.js';
import type { ExternalDataSource } from '../../src/onnx/external-data.js';
import { TensorProto_DataLocation, TensorProtoSchema } from '../../src/onnx/onnx_pb.js';
import { folderExternalData, loadModel, saveModel } from '../../src/node/model-files.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { ModelSession } from '../../src/runtime/session.js';

/** Rows and columns of each weight: 3 x 14142² floats = 2.235 GiB, over protobuf's 2 GiB. */
export const K = 14142;
export const WEIGHT_COUNT = 3;
/** Period of the fill pattern (prime, so every multiplier below is invertible modulo it). */
const P = 251;
const COLUMN_STEP = 17;

export interface BigModelReport {
  weightBytes: number;
  modelFileBytes: number;
  dataFileBytes: number;
  offsets: number[];
  maxRssBytes: number;
  /** Peak while the model was built and saved (before onnxruntime). */
  savePeakRssBytes: number;
  saveMs: number;
  loadMs: number;
  sessionMs: number;
  runMs: number;
  spotChecks: number;
  spotMismatches: number;
  /** Largest |ORT - reference| / sum of |terms| over all outputs. */
  maxRelativeError: number;
  /** Outputs outside the tolerance. */
  failures: string[];
  /** Columns where the closed-form reference and a direct sum over rows disagree. */
  referenceMismatches: number;
}

/** Tolerance relative to sum_r |x_r * W_rc|; see test/external-data.test.ts for the reasoning. */
export const RTOL = 1e-4;

// The fill: W_i[r][c] = value((r * a_i + c * COLUMN_STEP + i) mod P) with values multiples of
// 1/64 (exact in float32). Each row is then a shifted window of one period-P sequence, so a
// tensor is made with one memcpy per row, and x·W_i has a closed form over P residues.
function patternValue(k: number): number {
  return (((k * 37) % P) - 125) / 64;
}
function rowMultiplier(i: number): number {
  return 3 + 2 * i;
}
function inputValue(r: number): number {
  return (((r * 13) % 29) - 14) / 16;
}
function modInverse(a: number, m: number): number {
  for (let b = 1; b < m; b++) if ((a * b) % m === 1) return b;
  throw new Error(`${a} has no inverse modulo ${m}`);
}
const stepInverse = modInverse(COLUMN_STEP, P);

/** G[j] = value(COLUMN_STEP * j mod P), repeated to length P + K so any row is a window. */
const periodic = (() => {
  const g = new Float32Array(P + K);
  for (let j = 0; j < g.length; j++) g[j] = patternValue((COLUMN_STEP * (j % P)) % P);
  return g;
})();

/** Row r of W_i starts at window position t with COLUMN_STEP * t = r * a_i + i (mod P). */
function rowShift(i: number, r: number): number {
  return (((r * rowMultiplier(i) + i) % P) * stepInverse) % P;
}

function weightDirect(i: number, r: number, c: number): number {
  return Math.fround(patternValue((r * rowMultiplier(i) + c * COLUMN_STEP + i) % P));
}

/**
 * Generates a weight's bytes on demand: an ExternalDataSource over virtual files `W<i>`. Every
 * read fills the same scratch buffer, as a streaming source would: writeModel promises to finish
 * with one tensor's bytes before asking for the next, and if it did not, the data file would hold
 * the wrong weights and the checks below would fail.
 */
let scratch: Float32Array | undefined;
const generated: ExternalDataSource = {
  size: () => K * K * 4,
  read: (location, offset, length) => {
    const i = Number(location.slice(1));
    scratch ??= new Float32Array(K * K);
    for (let r = 0; r < K; r++) {
      const t = rowShift(i, r);
      scratch.set(periodic.subarray(t, t + K), r * K);
    }
    return new Uint8Array(scratch.buffer, offset, length);
  },
};

/** A float tensor whose bytes exist only while someone reads them. */
function lazyWeight(i: number): Tensor {
  const proto = create(TensorProtoSchema, {
    name: `W${i}`,
    dataType: DataType.FLOAT,
    dims: [BigInt(K), BigInt(K)],
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [{ key: 'location', value: `W${i}` }],
  });
  return Tensor.fromProto(proto, `generated weight W${i}`, generated);
}

function buildModel(): Model {
  const graph = new Graph('big');
  graph.inputs = [makeValueInfo('x', { elemType: DataType.FLOAT, shape: [1, K] })];
  for (let i = 0; i < WEIGHT_COUNT; i++) {
    graph.addInitializer(lazyWeight(i));
    graph.addNode({ opType: 'MatMul', inputs: ['x', `W${i}`], outputs: [`y${i}`] });
    graph.addOutput(`y${i}`, { elemType: DataType.FLOAT, shape: [1, K] });
  }
  return new Model(graph, { opsetImports: [{ domain: '', version: 17 }] });
}

/** x·W_i and sum_r |x_r W_rc| per column, in float64, from P residues instead of K rows. */
function reference(i: number): { y: Float64Array; magnitude: Float64Array } {
  const byShift = new Float64Array(P);
  const absByShift = new Float64Array(P);
  for (let r = 0; r < K; r++) {
    const t = rowShift(i, r);
    byShift[t] += inputValue(r);
    absByShift[t] += Math.abs(inputValue(r));
  }
  const y = new Float64Array(K);
  const magnitude = new Float64Array(K);
  for (let c = 0; c < Math.min(K, P); c++) {
    let sum = 0;
    let abs = 0;
    for (let t = 0; t < P; t++) {
      const w = periodic[t + c];
      sum += byShift[t] * w;
      abs += absByShift[t] * Math.abs(w);
    }
    y[c] = sum;
    magnitude[c] = abs;
  }
  // Column c + P sees the same window shifted by a whole period.
  for (let c = P; c < K; c++) {
    y[c] = y[c - P];
    magnitude[c] = magnitude[c - P];
  }
  return { y, magnitude };
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run this script with --expose-gc');
  gc();
}

async function main(): Promise<void> {
  const folder = process.argv[2];
  if (folder === undefined) throw new Error('usage: big-external-model.ts <folder>');
  const file = path.join(folder, 'big.onnx');
  const weightBytes = WEIGHT_COUNT * K * K * 4;

  let started = performance.now();
  saveModel(buildModel(), file, { externalData: true });
  const saveMs = performance.now() - started;
  const savePeakRssBytes = process.resourceUsage().maxRSS * 1024;
  // The generator's scratch tensor is garbage now, but nothing would prompt V8 to collect it before
  // onnxruntime's native allocations (which V8 does not see) begin; a real tool allocates in JS
  // between saving and running and gets it collected. Collect it here so the peak below measures
  // shrink and onnxruntime, not the test's generator.
  scratch = undefined;
  collectGarbage();

  started = performance.now();
  const loaded = loadModel(file);
  const loadMs = performance.now() - started;
  const offsets: number[] = [];
  let spotChecks = 0;
  let spotMismatches = 0;
  const dataFolder = folderExternalData(folder);
  for (let i = 0; i < WEIGHT_COUNT; i++) {
    const tensor = loaded.graph.initializer(`W${i}`);
    if (tensor === undefined || !tensor.isExternal || tensor.external === undefined) throw new Error(`W${i} did not come back as external data`);
    const { location, offset } = tensor.external;
    offsets.push(offset);
    // A few rows (first, middle, last) read straight from the data file, element by element.
    for (const r of [0, 1, K >> 1, K - 1]) {
      const row = new Float32Array(dataFolder.read(location, offset + r * K * 4, K * 4).buffer);
      for (let c = 0; c < K; c += 97) {
        spotChecks++;
        if (row[c] !== weightDirect(i, r, c)) spotMismatches++;
      }
    }
  }
  const modelFileBytes = fs.statSync(file).size;
  const dataFileBytes = fs.statSync(path.join(folder, 'big.onnx.data')).size;

  started = performance.now();
  const session = await ModelSession.create(nodeOrt, file);
  const sessionMs = performance.now() - started;
  const x = new Float32Array(K);
  for (let r = 0; r < K; r++) x[r] = inputValue(r);
  started = performance.now();
  const outputs = await session.run({ x: new nodeOrt.Tensor('float32', x, [1, K]) });
  const runMs = performance.now() - started;
  await session.release();

  let maxRelativeError = 0;
  let referenceMismatches = 0;
  const failures: string[] = [];
  for (let i = 0; i < WEIGHT_COUNT; i++) {
    const { y, magnitude } = reference(i);
    // The closed form above must agree with the plain definition; check a few columns directly.
    for (const c of [0, 1, 250, 251, 7000, K - 1]) {
      let direct = 0;
      for (let r = 0; r < K; r++) direct += inputValue(r) * weightDirect(i, r, c);
      if (Math.abs(direct - y[c]) > 1e-9 * magnitude[c]) referenceMismatches++;
    }
    const got = outputs[`y${i}`].data as Float32Array;
    for (let c = 0; c < K; c++) {
      const error = Math.abs(got[c] - y[c]) / magnitude[c];
      maxRelativeError = Math.max(maxRelativeError, error);
      if (error > RTOL && failures.length < 5) failures.push(`y${i}[${c}]: ${got[c]} vs ${y[c]}`);
    }
  }

  const report: BigModelReport = {
    weightBytes,
    modelFileBytes,
    dataFileBytes,
    offsets,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    savePeakRssBytes,
    saveMs,
    loadMs,
    sessionMs,
    runMs,
    spotChecks,
    spotMismatches,
    maxRelativeError,
    failures,
    referenceMismatches,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

// Imported by the test for its types and tolerance; runs only as a script.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
