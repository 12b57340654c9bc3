// GPTQ on single layers of a 7B decoder's shapes: the JS path (kernels/gptq.ts: factor, inverse
// and factor again, then the sweep, all in float64 loops) against the blocked one
// (kernels/gptq-blocked.ts: one Cholesky of the reversed Hessian and the lazy block updates on
// onnxruntime GEMMs, the sweep inside each block of 128 columns in JS), interleaved on the same
// layers, then the blocked one alone on 4096 x 4096 (q/k/v/o) and 4096 x 11008 (Llama-7B's
// up projection: K 4096; down projection: K 11008). Weights Gaussian, H = XᵀX of 512 correlated
// activation rows (a few calibration sequences). Reported: wall and CPU seconds (onnxruntime's
// threads included), the Cholesky alone, the OBS loss, load average.
// Usage: npm run bench -- gptq-layers       (GPTQ_LAYERS_JS=0 skips the JS path's 2048 x 2048)
import * as os from 'node:os';
import { OrtGram } from '../src/eval/gram-matrix.js';
import { choleskyBlocked } from '../src/kernels/cholesky-blocked.js';
import { gptq } from '../src/kernels/gptq.js';
import { gptqBlocked } from '../src/kernels/gptq-blocked.js';
import { mulberry32 } from '../src/kernels/random.js';
import { dampedHessian } from '../src/kernels/sparsegpt.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { OrtMatrixProducts } from '../src/runtime/ort-matrix-products.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const TOKENS = 512;
const THREADS = 2;
const OPTIONS = { bits: 4 as const, blockSize: 128, symmetric: false };

interface Row {
  layer: string;
  path: 'js' | 'blocked';
  wallSeconds: number;
  cpuSeconds: number;
  choleskySeconds: number | null;
  loss: number;
  load: number;
}

/** Σ xᵀx of TOKENS rows with 16 shared factors plus noise (rank > TOKENS never reached: damping decides the rest). */
async function hessian(k: number, products: OrtGram): Promise<Float64Array> {
  const next = mulberry32(k);
  const factors = 16;
  const mixing = Float32Array.from({ length: factors * k }, () => next() - 0.5);
  const x = new Float32Array(TOKENS * k);
  for (let i = 0; i < TOKENS; i++) {
    const z = Array.from({ length: factors }, () => next() - 0.5);
    for (let j = 0; j < k; j++) {
      let v = 0.3 * (next() - 0.5);
      for (let f = 0; f < factors; f++) v += z[f] * mixing[f * k + j];
      x[i * k + j] = v;
    }
  }
  const h = new Float64Array(k * k);
  await products.addProduct(x, TOKENS, k, h);
  return h;
}

function weightsT(k: number, n: number): Float32Array {
  const next = mulberry32(k * 31 + n);
  return Float32Array.from({ length: k * n }, () => (next() - 0.5) / Math.sqrt(k));
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function timed<T>(run: () => Promise<T> | T): Promise<{ value: T; wall: number; cpu: number }> {
  const wall = performance.now();
  const cpu = cpuSeconds();
  const value = await run();
  return { value, wall: (performance.now() - wall) / 1000, cpu: cpuSeconds() - cpu };
}

async function runGptqLayers(log: (line: string) => void): Promise<BenchOutput> {
  const gram = await OrtGram.create(nodeOrt, { threads: THREADS });
  // As the GPTQ pass opens them: threads that spin between the many short products waste a shared machine.
  const products = await OrtMatrixProducts.create(nodeOrt, { threads: THREADS, spinning: false });
  const rows: Row[] = [];
  const record = (row: Row) => {
    rows.push(row);
    log(`${row.layer} ${row.path}: ${row.wallSeconds} s wall, ${row.cpuSeconds} s CPU${row.choleskySeconds === null ? '' : `, Cholesky ${row.choleskySeconds} s`}, loss ${row.loss.toPrecision(5)}, load ${row.load}`);
  };
  try {
    const shapes: [number, number, boolean][] = [[1024, 1024, true], [2048, 2048, process.env.GPTQ_LAYERS_JS !== '0'], [4096, 4096, false], [4096, 11008, false], [11008, 4096, false]];
    for (const [k, n, withJs] of shapes) {
      const layer = `K ${k} x N ${n}`;
      const h = await hessian(k, gram);
      const wt = weightsT(k, n);
      const blocked = async () => {
        const damped = dampedHessian(h, k, 0.01);
        const chol = await timed(() => choleskyBlocked(damped, k, products));
        const run = await timed(() => gptqBlocked(wt, n, k, h, OPTIONS, products));
        record({ layer, path: 'blocked', wallSeconds: round(run.wall), cpuSeconds: round(run.cpu), choleskySeconds: round(chol.wall), loss: run.value.loss, load: Number(os.loadavg()[0].toFixed(2)) });
      };
      await blocked();
      if (withJs) {
        const w = new Float64Array(n * k);
        for (let c = 0; c < k; c++) for (let r = 0; r < n; r++) w[r * k + c] = wt[c * n + r];
        const run = await timed(() => gptq(w, n, k, h, OPTIONS));
        record({ layer, path: 'js', wallSeconds: round(run.wall), cpuSeconds: round(run.cpu), choleskySeconds: null, loss: run.value.loss, load: Number(os.loadavg()[0].toFixed(2)) });
        await blocked();
      }
    }
  } finally {
    await gram.release();
    await products.release();
  }
  const machine = machineInfo();
  const lines = [
    '# GPTQ on single layers',
    '',
    `int4, groups of 128, asymmetric; H from ${TOKENS} activation rows; onnxruntime with ${THREADS} threads; ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, ${machine.date}.`,
    'Blocked rows where the JS path also ran were timed before and after it (interleaved). CPU s counts onnxruntime\'s threads. "Cholesky" is the blocked factor alone (inside the blocked wall time).',
    '',
    '| layer (K inputs x N outputs) | path | wall s | CPU s | Cholesky s | OBS loss | load |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.layer} | ${r.path === 'js' ? 'JS (gptq.ts)' : 'blocked (gptq-blocked.ts)'} | ${r.wallSeconds} | ${r.cpuSeconds} | ${r.choleskySeconds ?? ''} | ${r.loss.toPrecision(5)} | ${r.load} |`),
  ];
  return { json: { machine, tokens: TOKENS, threads: THREADS, options: OPTIONS, rows }, markdown: `${lines.join('\n')}\n` };
}

export const gptqLayersBench: Bench = { name: 'gptq-layers', run: runGptqLayers };
