// The block quantizers on one 4096 x 4096 Gaussian float32 matrix (mulberry32 seed 1, Box-Muller,
// in a SharedArrayBuffer as a loader would hand it to workers), side by side in one run:
//   bits per weight  as the ONNX form onnxruntime runs stores it: MatMulNBits codes, scales
//                    (float32 for a float32 model, or float16 + Cast, folded at load), packed
//                    integer or float zero points; the two-level (k-quant) layout its sub-block
//                    scale/min codes and float16 d/dmin per super-block
//   SQNR             10 log10(sum w^2 / sum (w - dequantized)^2) over the matrix (or the rows named)
//   MB/s             float32 input per second, best of REPEATS, one thread (the browser path) and
//                    every thread (src/node/quantize-workers.ts, calling thread included)
//   floor            a plain read of the same bytes (TypedArray copy, and a JS sum loop): the
//                    ratio is kernel time / copy time
// ggml rows are the figures (measured earlier on this machine, fp16 scales), quoted, not
// rerun here. The sweep table gives SQNR against bits per weight for every MatMulNBits layout
// (block 16-128, symmetric/asymmetric, round to nearest / scale search) on the first SWEEP_ROWS rows.
import { availableParallelism } from 'node:os';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { quantizeMatMuls } from '../src/methods/quantize/matmul-nbits.js';
import { blockStorage, quantFormat, type QuantBits, type ScaleType } from '../src/kernels/quant-formats.js';
import { dequantizeBlocks, type QuantizedBlocks, quantizeBlocks, rtnBlocks, setRtnBackend, sqnrDb } from '../src/kernels/quantize-blocks.js';
import { kquantBitsPerWeight, kquantBlocks, type KQuantOptions } from '../src/kernels/quantize-kquant.js';
import { searchBlocks } from '../src/kernels/quantize-search.js';
import { packRows } from '../src/kernels/pack.js';
import { mulberry32 } from '../src/kernels/random.js';
import { type ParallelOptions, QuantizeWorkers } from '../src/node/quantize-workers.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const N = 4096;
const REPEATS = 5;
/** Rows the slow kernels (HQQ, the two-level search) and the sweep run on. */
const SLOW_ROWS = 512;
/** HQQ's rows. */
const HQQ_ROWS = 512;
/** Runs of the slower kernels (the fastest counts; the first also warms the JIT up). */
const SLOW_REPEATS = 3;
const SWEEP_ROWS = 256;

/** The ggml figures: measured earlier on this machine (fp16 scales), not rerun here. */
const GGML = [
  { kernel: 'ggml Q4_0 (quoted)', bpw: 4.5, sqnr: 21.3, mbps1: 3300 },
  { kernel: 'ggml Q4_K (quoted)', bpw: 4.5, sqnr: 22.9, mbps1: 77 },
  { kernel: 'ggml Q2_K (quoted)', bpw: 2.625, sqnr: 10.6, mbps1: undefined },
];

interface Row {
  kernel: string;
  settings: string;
  rows: number;
  bpw: number;
  sqnrDb: number;
  mbps1: number | undefined;
  /** One thread, bytes per CPU-second of this process: what the wall figure would be on an idle core. */
  mbps1Cpu: number | undefined;
  mbpsAll: number | undefined;
  /** Every thread: bytes per CPU-second of all threads together (equal to one thread's when splitting costs nothing). */
  mbpsAllCpu: number | undefined;
  floorRatio1: number | undefined;
  floorRatioAll: number | undefined;
}

function gaussianShared(count: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(new SharedArrayBuffer(count * 4));
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

/** Fastest of `repeats` runs: wall milliseconds, and this process's CPU milliseconds in that run. */
function best(repeats: number, run: () => void): { ms: number; cpuMs: number } {
  let fastest = { ms: Number.POSITIVE_INFINITY, cpuMs: Number.POSITIVE_INFINITY };
  for (let i = 0; i < repeats; i++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    run();
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpu);
    if (ms < fastest.ms) fastest = { ms, cpuMs: (used.user + used.system) / 1000 };
  }
  return fastest;
}

/** As best(), for the thread pool: CPU milliseconds are this process's, every thread together. */
async function bestAsync(repeats: number, run: () => Promise<unknown>): Promise<{ ms: number; cpuMs: number }> {
  let fastest = { ms: Number.POSITIVE_INFINITY, cpuMs: Number.POSITIVE_INFINITY };
  for (let i = 0; i < repeats; i++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await run();
    const ms = performance.now() - start;
    const used = process.cpuUsage(cpu);
    if (ms < fastest.ms) fastest = { ms, cpuMs: (used.user + used.system) / 1000 };
  }
  return fastest;
}

/** Bits per weight of a MatMulNBits layout as stored (zero points packed per row: K/block per row here). */
function nbitsBpw(bits: QuantBits, blockSize: number, symmetric: boolean, scaleType: ScaleType, zeroPointType: 'integer' | 'float'): number {
  if (symmetric || zeroPointType === 'integer') return blockStorage(quantFormat(bits, false), blockSize, scaleType, !symmetric).bitsPerWeight;
  const scaleBits = scaleType === 'float32' ? 32 : 16;
  return bits + (2 * scaleBits) / blockSize;
}

const mbps = (bytes: number, ms: number) => round(bytes / 1e6 / (ms / 1000));

/** A MatMul whose weight holds the given values as [N, rows] (the same Gaussian values, reshaped). */
function smallMatMul(values: Float32Array): Model {
  const rows = values.length / N;
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, N]);
  b.node('MatMul', [x, b.tensor(Tensor.fromArray('W', DataType.FLOAT, [N, rows], new Float32Array(values)))], [], { outputs: ['y'] });
  b.output('y', DataType.FLOAT, [1, rows]);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

export const quantizeKernelsBench: Bench = {
  name: 'quantize-kernels',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const threads = availableParallelism();
    const data = gaussianShared(N * N, 1);
    const bytes = data.byteLength;
    log(`matrix ${N}x${N} (${bytes / 1e6} MB), ${threads} threads, load ${machine.loadAverage}`);
    // The floor: reading the bytes once (a copy), and a JS loop that reads every float.
    const copy = new Float32Array(data.length);
    const copyMs = best(REPEATS, () => copy.set(data)).ms;
    let sink = 0;
    const sumMs = best(REPEATS, () => {
      let s = 0;
      for (let i = 0; i < data.length; i++) s += data[i];
      sink += s;
    }).ms;
    log(`floor: copy ${mbps(bytes, copyMs)} MB/s, sum loop ${mbps(bytes, sumMs)} MB/s (${sink > 0 ? '+' : '-'})`);
    const pool = new QuantizeWorkers(threads);
    const rows: Row[] = [];
    const passRows: { rounding: string; rows: number; mbps1: number; mbps1Cpu: number; sqnrDb: number }[] = [];
    const add = (kernel: string, settings: string, rowCount: number, bpw: number, q: QuantizedBlocks, one: { ms: number; cpuMs: number } | undefined, all: { ms: number; cpuMs: number } | undefined) => {
      const ms1 = one?.ms;
      const msAll = all?.ms;
      const sub = data.subarray(0, rowCount * N);
      const row: Row = {
        kernel,
        settings,
        rows: rowCount,
        bpw: round(bpw),
        sqnrDb: round(sqnrDb(sub, dequantizeBlocks(q))),
        mbps1: ms1 === undefined ? undefined : mbps(rowCount * N * 4, ms1),
        mbps1Cpu: one === undefined ? undefined : mbps(rowCount * N * 4, one.cpuMs),
        mbpsAll: msAll === undefined ? undefined : mbps(rowCount * N * 4, msAll),
        mbpsAllCpu: all === undefined ? undefined : mbps(rowCount * N * 4, all.cpuMs),
        floorRatio1: ms1 === undefined ? undefined : round(ms1 / (copyMs * (rowCount / N))),
        floorRatioAll: msAll === undefined ? undefined : round(msAll / (copyMs * (rowCount / N))),
      };
      rows.push(row);
      log(`${kernel} ${settings}: ${row.bpw} bpw, ${row.sqnrDb} dB, ${row.mbps1} MB/s one thread (${row.mbps1Cpu} per CPU-second), ${row.mbpsAll} MB/s ${threads} threads (${row.mbpsAllCpu} per CPU-second of all threads)`);
    };

    // Round to nearest: codes + parameters, then packed as MatMulNBits stores them.
    const rtn: { label: string; o: { bits: QuantBits; blockSize: number; symmetric: boolean; scaleType: ScaleType } }[] = [
      { label: 'int4 block 32 symmetric, fp16 scales', o: { bits: 4, blockSize: 32, symmetric: true, scaleType: 'float16' } },
      { label: 'int4 block 32 symmetric, fp32 scales', o: { bits: 4, blockSize: 32, symmetric: true, scaleType: 'float32' } },
      { label: 'int4 block 32 asymmetric, fp32 scales', o: { bits: 4, blockSize: 32, symmetric: false, scaleType: 'float32' } },
      { label: 'int8 block 32 symmetric, fp32 scales', o: { bits: 8, blockSize: 32, symmetric: true, scaleType: 'float32' } },
      { label: 'int8 block 128 symmetric, fp32 scales', o: { bits: 8, blockSize: 128, symmetric: true, scaleType: 'float32' } },
      { label: 'int2 block 16 asymmetric, fp32 scales', o: { bits: 2, blockSize: 16, symmetric: false, scaleType: 'float32' } },
    ];
    for (const backend of ['js', 'auto'] as const) {
      setRtnBackend(backend);
      for (const { label, o } of rtn) {
        if (backend === 'js' && label !== rtn[0].label && label !== rtn[3].label) continue;
        // Straight into MatMulNBits' packed codes (output buffers allocated once, outside the timing).
        const blocks = (N * N) / o.blockSize;
        const packed = new Uint8Array((N * N * o.bits) / 8);
        const scales = new Float32Array(blocks);
        const zeros = new Float32Array(blocks);
        const mode = o.symmetric ? 'symmetric' : 'integer-zero';
        const one = best(REPEATS, () => rtnBlocks(data, 0, blocks, o.blockSize, o.bits, mode, o.scaleType === 'float16', packed, 0, true, scales, zeros));
        const msAll = backend === 'js' ? undefined : await bestAsync(REPEATS, () => pool.rtnPacked(data, N, N, o));
        const kernel = backend === 'js' ? 'shrink RTN (JS loops)' : 'shrink RTN (WebAssembly SIMD)';
        add(kernel, label, N, nbitsBpw(o.bits, o.blockSize, o.symmetric, o.scaleType, 'integer'), quantizeBlocks(data, N, N, o), one, msAll);
      }
    }
    // What the passes call: quantizeBlocks (one code a byte, fresh arrays), then packRows.
    {
      const o = rtn[0].o;
      let q = quantizeBlocks(data, N, N, o);
      const one = best(REPEATS, () => {
        q = quantizeBlocks(data, N, N, o);
        packRows(q.codes, N, N, o.bits);
      });
      add('shrink quantizeBlocks + packRows', rtn[0].label, N, nbitsBpw(o.bits, o.blockSize, o.symmetric, o.scaleType, 'integer'), q, one, undefined);
    }
    setRtnBackend('auto');

    // The whole pass `shrink quantize --method int4` runs per MatMul (transpose, quantizeBlocks,
    // packing, SQNR, tensors), on the matrix as a MatMul weight.
    for (const rounding of ['rtn', 'search'] as const) {
      const b = new GraphBuilder();
      const x = b.input('x', DataType.FLOAT, [1, N]);
      b.node('MatMul', [x, b.tensor(Tensor.fromArray('W', DataType.FLOAT, [N, N], new Float32Array(data)))], [], { outputs: ['y'] });
      b.output('y', DataType.FLOAT, [1, N]);
      const model = buildModel(b.graph, [{ domain: '', version: 17 }]);
      const rowsUsed = rounding === 'rtn' ? N : SLOW_ROWS;
      const work = rounding === 'rtn' ? model : undefined;
      let report: ReturnType<typeof quantizeMatMuls> | undefined;
      const one = best(1, () => {
        report = quantizeMatMuls(work ?? smallMatMul(data.subarray(0, SLOW_ROWS * N)), { bits: 4, blockSize: 32, symmetric: true, scaleType: 'float16', rounding });
      });
      const t = report?.tensors[0];
      if (t !== undefined) passRows.push({ rounding, rows: rowsUsed, mbps1: mbps(rowsUsed * N * 4, one.ms), mbps1Cpu: mbps(rowsUsed * N * 4, one.cpuMs), sqnrDb: round(t.sqnrDb) });
      log(`pass quantizeMatMuls ${rounding}: ${mbps(rowsUsed * N * 4, one.ms)} MB/s`);
    }

    // HQQ and the scale search are slower: measured on SLOW_ROWS rows.
    const slow = data.subarray(0, SLOW_ROWS * N);
    const slowRuns: { kernel: string; label: string; o: Exclude<ParallelOptions, { rounding: 'kquant' }>; bpw: number }[] = [
      { kernel: 'shrink HQQ', label: 'int4 block 32 asymmetric, fp16 scales', o: { bits: 4, blockSize: 32, symmetric: false, scaleType: 'float16', rounding: 'hqq' }, bpw: nbitsBpw(4, 32, false, 'float16', 'integer') },
      { kernel: 'shrink HQQ', label: 'int2 block 16 asymmetric, fp16 scales', o: { bits: 2, blockSize: 16, symmetric: false, scaleType: 'float16', rounding: 'hqq' }, bpw: nbitsBpw(2, 16, false, 'float16', 'integer') },
      { kernel: 'shrink search', label: 'int4 block 32 symmetric, fp16 scales', o: { bits: 4, blockSize: 32, symmetric: true, scaleType: 'float16', rounding: 'search' }, bpw: nbitsBpw(4, 32, true, 'float16', 'integer') },
      { kernel: 'shrink search', label: 'int4 block 64 asymmetric, fp16 scales + zero points', o: { bits: 4, blockSize: 64, symmetric: false, scaleType: 'float16', zeroPointType: 'float', rounding: 'search' }, bpw: nbitsBpw(4, 64, false, 'float16', 'float') },
    ];
    for (const { kernel, label, o, bpw } of slowRuns) {
      const count = o.rounding === 'hqq' ? HQQ_ROWS : SLOW_ROWS;
      const part = data.subarray(0, count * N);
      // The thread pool gives the one-thread result bit for bit (test/quant-fast.test.ts).
      let q = quantizeBlocks(part.subarray(0, N), 1, N, o);
      const one = best(SLOW_REPEATS, () => {
        q = o.rounding === 'search' ? searchBlocks(part, count, N, o) : quantizeBlocks(part, count, N, o);
      });
      const msAll = await bestAsync(SLOW_REPEATS, () => pool.quantize(part, count, N, o));
      add(kernel, label, count, bpw, q, one, msAll);
    }
    // Two-level scales (the layout matmul-nbits-kquant.ts writes): Q4_K's and Q2_K's budgets.
    const kquants: { label: string; o: KQuantOptions }[] = [
      { label: 'int4 block 32, 6-bit scales and mins, fp16 d/dmin per 256', o: { bits: 4, blockSize: 32, superBlock: 8, scaleBits: 6, minBits: 6, superScaleType: 'float16' } },
      { label: 'int2 block 16, 4-bit scales and mins, fp16 d/dmin per 512', o: { bits: 2, blockSize: 16, superBlock: 32, scaleBits: 4, minBits: 4, superScaleType: 'float16' } },
    ];
    for (const { label, o } of kquants) {
      let q = kquantBlocks(slow.subarray(0, N), 1, N, o);
      const one = best(SLOW_REPEATS, () => {
        q = kquantBlocks(slow, SLOW_ROWS, N, o);
      });
      const msAll = await bestAsync(SLOW_REPEATS, () => pool.kquant(slow, SLOW_ROWS, N, o));
      add('shrink k-quant search (two-level)', label, SLOW_ROWS, kquantBitsPerWeight(o), q, one, msAll);
    }
    await pool.close();

    // Sweep: every MatMulNBits layout, round to nearest and search.
    const sweepData = data.subarray(0, SWEEP_ROWS * N);
    const sweep: { bits: number; blockSize: number; form: string; bpw: number; rtnDb: number; searchDb: number }[] = [];
    for (const bits of [4, 2] as const) {
      for (const blockSize of [16, 32, 64, 128]) {
        for (const scaleType of ['float32', 'float16'] as const) {
          for (const [symmetric, zeroPointType] of [[true, 'integer'], [false, 'integer'], [false, 'float']] as const) {
            const o = { bits, blockSize, symmetric, scaleType, zeroPointType };
            const rtnDb = sqnrDb(sweepData, dequantizeBlocks(quantizeBlocks(sweepData, SWEEP_ROWS, N, o)));
            const searchDb = sqnrDb(sweepData, dequantizeBlocks(searchBlocks(sweepData, SWEEP_ROWS, N, o)));
            const form = `${symmetric ? 'symmetric' : zeroPointType === 'integer' ? 'asymmetric, integer zero points' : 'asymmetric, float zero points'}, ${scaleType === 'float32' ? 'fp32' : 'fp16'} scales`;
            sweep.push({ bits, blockSize, form, bpw: round(nbitsBpw(bits, blockSize, symmetric, scaleType, zeroPointType)), rtnDb: round(rtnDb), searchDb: round(searchDb) });
          }
        }
      }
    }

    const cell = (x: number | undefined) => (x === undefined ? '' : String(x));
    const md = [
      '# Block quantization kernels',
      '',
      `A ${N}x${N} Gaussian float32 matrix (seed 1); ${machine.cpu}, ${threads} threads, Node ${machine.node}, load average ${machine.loadAverage} at the start (other work shared the CPU when it is above ${threads}).`,
      `Floor (a plain read of the ${bytes / 1e6} MB): copy ${mbps(bytes, copyMs)} MB/s, JS sum loop ${mbps(bytes, sumMs)} MB/s. "x floor" is kernel time / copy time.`,
      'Bits per weight as the ONNX form onnxruntime runs stores them (MatMulNBits codes, scales, zero points; two-level: sub-block codes and fp16 d/dmin). Round-to-nearest rows quantize straight into MatMulNBits packed codes (rtnBlocks, output buffers allocated once; the thread pool allocates shared ones per call); the quantizeBlocks row is what the passes call (fresh arrays, one code a byte, then packRows).',
      `Search and two-level rows ran on the first ${SLOW_ROWS} rows, HQQ on the first ${HQQ_ROWS}. ggml rows are the issue's figures (fp16 scales, measured earlier on this machine), quoted, not rerun.`,
      `MB/s per CPU-second: a run's bytes over the CPU time this process used in it (every thread together). For one thread it is what the wall figure would be on an otherwise idle core; for ${threads} threads, equal to the one-thread figure means splitting the rows cost nothing, so on ${threads} idle cores the wall figure would be about ${threads}x the one-thread one. With a load average of ${machine.loadAverage} on ${threads} cores other work held the cores, and the ${threads}-thread wall figures are no faster than one thread's.`,
      '',
      `| kernel | settings | bits per weight | SQNR (dB) | MB/s, 1 thread | MB/s per CPU-second, 1 thread | MB/s, ${threads} threads | MB/s per CPU-second, ${threads} threads | x floor (1 / ${threads}) |`,
      '|---|---|---|---|---|---|---|---|---|',
      ...GGML.map((g) => `| ${g.kernel} | | ${g.bpw} | ${g.sqnr} | ${cell(g.mbps1)} | | | | |`),
      ...rows.map((r) => `| ${r.kernel} | ${r.settings} | ${r.bpw} | ${r.sqnrDb} | ${cell(r.mbps1)} | ${cell(r.mbps1Cpu)} | ${cell(r.mbpsAll)} | ${cell(r.mbpsAllCpu)} | ${cell(r.floorRatio1)} / ${cell(r.floorRatioAll)} |`),
      '',
      '## The pass: `quantizeMatMuls` (int4 block 32 symmetric, fp16 scales) on the matrix as one MatMul weight',
      '',
      'What `shrink quantize --method int4` (float16 scales, as q4f16) spends per MatMul: transposing the weight, quantizeBlocks, packing, the SQNR, building the tensors (the issue measured 21-28 MB/s for this before).',
      '',
      '| rounding | rows | SQNR (dB) | MB/s, 1 thread | MB/s per CPU-second |',
      '|---|---|---|---|---|',
      ...passRows.map((p) => `| ${p.rounding} | ${p.rows} | ${p.sqnrDb} | ${p.mbps1} | ${p.mbps1Cpu} |`),
      '',
      `## MatMulNBits layouts: SQNR against bits per weight (first ${SWEEP_ROWS} rows)`,
      '',
      '| bits | block | form | bits per weight | round to nearest (dB) | search (dB) |',
      '|---|---|---|---|---|---|',
      ...sweep.map((s) => `| ${s.bits} | ${s.blockSize} | ${s.form} | ${s.bpw} | ${s.rtnDb} | ${s.searchDb} |`),
      '',
    ].join('\n');
    return { json: { machine, threads, floor: { copyMBps: mbps(bytes, copyMs), sumMBps: mbps(bytes, sumMs) }, ggmlQuoted: GGML, rows, pass: passRows, sweep }, markdown: md };
  },
};
