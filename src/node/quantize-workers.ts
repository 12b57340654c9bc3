// Block quantization on every core (Node worker threads): the rows of a weight are split into
// one slice per thread, the calling thread quantizes a slice itself, and the others go to
// workers that read the weights from and write their results to SharedArrayBuffers. Each slice
// runs the same single-threaded kernels as the browser path (rtnBlocks: WebAssembly SIMD or JS;
// the scale search; HQQ), so the result is identical whatever the thread count. A weight not
// already in shared memory is copied there once.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { QuantBits } from '../kernels/quant-formats.js';
import { type BlockQuantOptions, type QuantizedBlocks, type ZeroPointType, checkBlockShape, quantizeBlocks, rtnBlocks } from '../kernels/quantize-blocks.js';
import { type KQuantBlocks, type KQuantOptions, kquantBlocks } from '../kernels/quantize-kquant.js';
import { type SearchOptions, searchBlocks } from '../kernels/quantize-search.js';

export type ParallelOptions = (BlockQuantOptions & { rounding?: 'rtn' | 'hqq' }) | (SearchOptions & { rounding: 'search' }) | (KQuantOptions & { rounding: 'kquant'; symmetric?: false });

/** One slice of rows, as posted to a worker. */
export interface WorkerJob {
  id: number;
  data: Float32Array;
  cols: number;
  firstRow: number;
  rowCount: number;
  options: ParallelOptions;
  codes: Uint8Array;
  /** Round to nearest only: codes packed LSB-first as MatMulNBits stores them. */
  packed?: boolean;
  scales: Float32Array;
  zeroPoints: Float32Array;
  /** Two-level scales only: [rows, groups * superBlock] codes and [rows, groups] super scales. */
  kquant?: { scaleCodes: Uint8Array; minCodes: Uint8Array; superScales: Float32Array; superMins: Float32Array };
}

/** Round to nearest straight into MatMulNBits' packed codes, with the blocks' parameters. */
export interface PackedBlocks {
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints: Float32Array;
}

/** Quantizes rows [firstRow, firstRow + rowCount) of the job into its shared outputs. */
export function runJob(job: WorkerJob): void {
  const { data, cols, firstRow, rowCount, options } = job;
  const perRow = cols / options.blockSize;
  const firstBlock = firstRow * perRow;
  if ((options.rounding ?? 'rtn') === 'rtn') {
    const o = options as BlockQuantOptions;
    const zeroPointType: ZeroPointType = o.symmetric ? 'integer' : (o.zeroPointType ?? 'integer');
    const mode = o.symmetric ? 'symmetric' : zeroPointType === 'float' ? 'float-zero' : 'integer-zero';
    const codesAt = job.packed ? (firstRow * cols * o.bits) / 8 : firstRow * cols;
    rtnBlocks(data, firstBlock, rowCount * perRow, o.blockSize, o.bits, mode, o.scaleType === 'float16', job.codes, codesAt, job.packed === true, job.scales, job.zeroPoints);
    return;
  }
  const rows = data.subarray(firstRow * cols, (firstRow + rowCount) * cols);
  if (options.rounding === 'kquant') {
    const q = kquantBlocks(rows, rowCount, cols, options);
    const k = job.kquant;
    if (k === undefined) throw new Error('quantize workers: a kquant job without its outputs');
    k.scaleCodes.set(q.scaleCodes, firstRow * q.groupsPerRow * q.superBlock);
    k.minCodes.set(q.minCodes, firstRow * q.groupsPerRow * q.superBlock);
    k.superScales.set(q.superScales, firstRow * q.groupsPerRow);
    k.superMins.set(q.superMins, firstRow * q.groupsPerRow);
    job.codes.set(q.codes, firstRow * cols);
    job.scales.set(q.scales, firstBlock);
    job.zeroPoints.set(q.zeroPoints, firstBlock);
    return;
  }
  const q = options.rounding === 'search' ? searchBlocks(rows, rowCount, cols, options) : quantizeBlocks(rows, rowCount, cols, options);
  job.codes.set(q.codes, firstRow * cols);
  job.scales.set(q.scales, firstBlock);
  job.zeroPoints.set(q.zeroPoints, firstBlock);
}

function shared<T extends Float32Array | Uint8Array>(make: (buffer: SharedArrayBuffer) => T, bytes: number): T {
  return make(new SharedArrayBuffer(bytes));
}

/**
 * A worker running quantize-worker: the compiled .js, or from the sources the .ts through tsx's
 * register API (workers do not take tsx from `--import` in execArgv under Node 20).
 */
function startWorker(): Worker {
  const script = new URL(import.meta.url.endsWith('.ts') ? './quantize-worker.ts' : './quantize-worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return new Worker(script);
  const api = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`, { eval: true });
}

/** A pool of worker threads for block quantization; close() it when done. */
export class QuantizeWorkers {
  private readonly workers: Worker[] = [];
  private nextId = 0;

  /** `threads` counts the calling thread: 2 threads start one worker. Default: every core. */
  constructor(readonly threads = availableParallelism()) {
    for (let i = 1; i < threads; i++) this.workers.push(startWorker());
  }

  /** quantizeBlocks / searchBlocks of `data` ([rows, cols]) over every thread. */
  async quantize(data: Float32Array, rows: number, cols: number, options: Exclude<ParallelOptions, { rounding: 'kquant' }>): Promise<QuantizedBlocks> {
    const { codes, scales, zeroPoints } = await this.split(data, rows, cols, options, false);
    const symmetric = options.symmetric;
    const zeroPointType: ZeroPointType = symmetric ? 'integer' : (options.zeroPointType ?? 'integer');
    return { rows, cols, bits: options.bits as QuantBits, blockSize: options.blockSize, blocksPerRow: cols / options.blockSize, symmetric, scaleType: options.scaleType ?? 'float32', zeroPointType, codes, scales, zeroPoints };
  }

  /** Round to nearest over every thread, codes packed as MatMulNBits stores them ([rows, cols * bits / 8]). */
  async rtnPacked(data: Float32Array, rows: number, cols: number, options: BlockQuantOptions): Promise<PackedBlocks> {
    if ((options.blockSize * options.bits) % 8 !== 0) throw new Error(`quantize: blocks of ${options.blockSize} ${options.bits}-bit codes do not fill whole bytes`);
    const { codes, scales, zeroPoints } = await this.split(data, rows, cols, { ...options, rounding: 'rtn' }, true);
    return { packed: codes, scales, zeroPoints };
  }

  /** kquantBlocks of `data` ([rows, cols]) over every thread. */
  async kquant(data: Float32Array, rows: number, cols: number, options: KQuantOptions): Promise<KQuantBlocks> {
    const blocksPerRow = cols / options.blockSize;
    const groupsPerRow = Math.ceil(blocksPerRow / options.superBlock);
    const padded = groupsPerRow * options.superBlock;
    const kquant = {
      scaleCodes: shared((b) => new Uint8Array(b), rows * padded),
      minCodes: shared((b) => new Uint8Array(b), rows * padded),
      superScales: shared((b) => new Float32Array(b), rows * groupsPerRow * 4),
      superMins: shared((b) => new Float32Array(b), rows * groupsPerRow * 4),
    };
    const { codes, scales, zeroPoints } = await this.split(data, rows, cols, { ...options, rounding: 'kquant' }, false, kquant);
    return { rows, cols, bits: options.bits, blockSize: options.blockSize, blocksPerRow, symmetric: false, scaleType: 'float32', zeroPointType: 'float', codes, scales, zeroPoints, superBlock: options.superBlock, groupsPerRow, ...kquant };
  }

  private async split(data: Float32Array, rows: number, cols: number, options: ParallelOptions, packed: boolean, kquant?: WorkerJob['kquant']): Promise<{ codes: Uint8Array; scales: Float32Array; zeroPoints: Float32Array }> {
    checkBlockShape(data.length, rows, cols, options.blockSize);
    const input = data.buffer instanceof SharedArrayBuffer ? data : shared((b) => new Float32Array(b), data.byteLength);
    if (input !== data) input.set(data);
    const blocks = (rows * cols) / options.blockSize;
    const codes = shared((b) => new Uint8Array(b), packed ? (rows * cols * options.bits) / 8 : rows * cols);
    const scales = shared((b) => new Float32Array(b), blocks * 4);
    const zeroPoints = shared((b) => new Float32Array(b), blocks * 4);
    const slice = Math.ceil(rows / this.threads);
    const pending: Promise<void>[] = [];
    let mine: WorkerJob | undefined;
    for (let t = 0, firstRow = 0; t < this.threads && firstRow < rows; t++, firstRow += slice) {
      const job: WorkerJob = { id: this.nextId++, data: input, cols, firstRow, rowCount: Math.min(slice, rows - firstRow), options, codes, packed, scales, zeroPoints, kquant };
      if (t === this.threads - 1 || this.workers.length === 0) mine = job;
      else pending.push(this.post(this.workers[t], job));
    }
    if (mine) runJob(mine);
    await Promise.all(pending);
    return { codes, scales, zeroPoints };
  }

  private post(worker: Worker, job: WorkerJob): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMessage = (id: number) => {
        if (id !== job.id) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve();
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.postMessage(job);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
