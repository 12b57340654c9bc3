// The Fashion-MNIST CNN row of bench quantize-static-cnn-rec on its own (a minute instead of the
// rec rows' many): the default static int8 against float32 at batch 64, 1 and 2 threads, each with
// onnxruntime's idle threads spinning (its default) and sleeping, interleaved; accuracy on the 10k
// test images. The speed-up that counts compares each side in its best setting per thread count.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fashionSets } from './lib/fashion-cnn.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import { cnnRow } from './quantize-static-cnn-rec.js';
import type { Bench, BenchOutput } from './run.js';

type Row = Awaited<ReturnType<typeof cnnRow>>['row'];

/** Per thread count: the fastest fp32 and the fastest int8 over the spinning settings. */
function bestPerThreads(row: Row): {
  threads: number;
  fp32Ms: number;
  fp32Setting: string;
  int8Ms: number;
  int8Setting: string;
  speedup: number;
}[] {
  const setting = (t: Row['timings'][number]) => (t.spinning === false ? 'threads sleep' : 'threads spin');
  const counts = [...new Set(row.timings.map((t) => t.threads))];
  return counts.map((threads) => {
    const runs = row.timings.filter((t) => t.threads === threads);
    const fp32 = runs.reduce((a, b) => (b.fp32Ms < a.fp32Ms ? b : a));
    const int8 = runs.reduce((a, b) => (b.int8Ms < a.int8Ms ? b : a));
    return {
      threads,
      fp32Ms: fp32.fp32Ms,
      fp32Setting: setting(fp32),
      int8Ms: int8.int8Ms,
      int8Setting: setting(int8),
      speedup: round(fp32.fp32Ms / int8.int8Ms),
    };
  });
}

/** When fp32 is faster on fewer threads, the table's 2-thread speed-up still compares 2-thread runs: said, with int8 against fp32's fastest too. */
function fp32FasterAlone(best: ReturnType<typeof bestPerThreads>): string[] {
  const fastest = best.reduce((a, b) => (b.fp32Ms < a.fp32Ms ? b : a));
  const most = best[best.length - 1];
  if (fastest.threads === most.threads) return [];
  return [
    `fp32 is faster at ${fastest.threads} thread(s) (${fastest.fp32Ms} ms) than at ${most.threads} (${most.fp32Ms} ms) in this run; the ${most.threads}-thread speed-up above compares ${most.threads}-thread runs of both. int8 at ${most.threads} threads against fp32's fastest run: ${(fastest.fp32Ms / most.int8Ms).toFixed(2)}x.`,
    '',
  ];
}

function markdown(row: Row, machine: Record<string, unknown>): string {
  const best = bestPerThreads(row);
  const lines = [
    '# Static int8 vs float32: Fashion-MNIST CNN at batch 64',
    '',
    `One run. Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime} (CPU, graph optimization 'all', inter-op 1), ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      "Latency: median of 21 interleaved rounds (fp32 then int8) after warm-up, each sample an average of back-to-back runs over at least 40 ms; each thread setting is a pair of fresh sessions. The same row as bench quantize-static-cnn-rec's, with onnxruntime's idle threads spinning (default) and sleeping (`allow_spinning` 0) for both models.",
    '',
    `int8: the default command, \`shrink quantize IN -o OUT --method static-int8 --calib D\`, calibrated on the ${row.calibration}; accuracy on the ${row.heldOut}: fp32 ${row.fidelity.fp32_accuracy}%, int8 ${row.fidelity.int8_accuracy}% (${Number(row.fidelity.drop_points) >= 0 ? '-' : '+'}${Math.abs(Number(row.fidelity.drop_points))} points).`,
    '',
    '| threads | idle threads | fp32 (ms) | int8 (ms) | speed-up | load before / after |',
    '|---:|---|---:|---:|---:|---|',
    ...row.timings.map((t) => `| ${t.threads} | ${t.spinning === false ? 'sleep' : 'spin'} | ${t.fp32Ms} | ${t.int8Ms} | ${t.speedup.toFixed(2)}x | ${t.load.join(' / ')} |`),
    '',
    'Each side in its best setting:',
    '',
    '| threads | fp32 (ms) | int8 (ms) | speed-up |',
    '|---:|---:|---:|---:|',
    ...best.map((b) => `| ${b.threads} | ${b.fp32Ms} (${b.fp32Setting}) | ${b.int8Ms} (${b.int8Setting}) | ${b.speedup.toFixed(2)}x |`),
    '',
    ...fp32FasterAlone(best),
    `What onnxruntime runs at \`all\`: fp32 ${Object.entries(row.fp32Ops)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ')}; int8 (${row.nodesQuantized} nodes quantized) ${Object.entries(row.int8Ops)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ')}.`,
  ];
  return `${lines.join('\n')}\n`;
}

export const quantizeStaticCnnBench: Bench = {
  name: 'quantize-static-cnn',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bench-static-cnn-'));
    try {
      const { row } = await cnnRow(fashionSets(), scratch, log);
      return {
        json: { machine, row, best: bestPerThreads(row) },
        markdown: markdown(row, machine),
      };
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  },
};
