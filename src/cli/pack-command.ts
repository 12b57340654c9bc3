// `shrink pack IN.onnx -o OUT.shrink` and `shrink unpack IN.shrink -o OUT.onnx`: the transport
// pack of docs/pack-format.md. pack codes the model's tensors by what makes each small and checks
// that the pack decodes to the input's exact bytes before writing it; unpack streams the pack
// through the decoder (every record's CRC-32 checked) into the ONNX file. Both write through a
// temporary name, so a failure leaves nothing behind. pack prints the sizes per stream kind beside gzip -9 and brotli
// of the same ONNX file; --json prints the report in the common envelope.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import type { Command } from 'commander';
import { gzipSync } from 'fflate';
import { formatBytes, groupDigits, renderTable } from '../inspect/table.js';
import { packOnnx, type PackReport } from '../methods/pack/pack.js';
import { writeFileAtomic } from '../node/atomic-file.js';
import { removeStaleTemps, removeTemp, tempPathFor, trackTemp, untrackTemp } from '../node/temp-files.js';
import { nodeEnvironment } from '../node/environment.js';
import { decodeModelProto } from '../onnx/codec.js';
import { unpackStream } from '../onnx/pack-decode.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { formatSizeChange, sizeChange } from '../pipeline/size-change.js';
import { inFile } from './errors.js';
import { readInputFile } from './input-files.js';
import type { CliContext } from './main.js';
import { checkOutput } from './output-checks.js';

/** Brotli quality for the side-by-side figure: 9 takes seconds on 10 MB, 11 (the bench's) a minute. */
export const CLI_BROTLI_QUALITY = 9;

interface PackFlags {
  output: string;
  json?: boolean;
  compare: boolean;
}

export interface ComparedSize {
  bytes: number;
  /** original / compressed. */
  ratio: number;
}

/** What `shrink pack --json` prints. */
export type PackSummary = ReportEnvelope &
  Omit<PackReport, 'kinds' | 'perTensor'> & {
    per_tensor: PackReport['perTensor'];
    kinds: Record<string, { streams: number; bytes: number; packed: number }>;
    /** original / pack. */
    pack_ratio: number;
    /** The same ONNX file through general-purpose compressors; null with --no-compare. */
    compared: { gzip_9: ComparedSize; [brotli: `brotli_${number}`]: ComparedSize } | null;
    ms: number;
  };

/** What `shrink unpack --json` prints (one cold run: small files are timed before the JIT warms up). */
export type UnpackSummary = ReportEnvelope & { ms: number; mb_per_s: number };

export function registerPack(program: Command, { io }: CliContext): void {
  program
    .command('pack')
    .description('entropy-code a model into a .shrink pack (unpack gives back the exact ONNX bytes); sizes beside gzip and brotli')
    .argument('<input>', 'the ONNX model (self-contained: external data is refused)')
    .requiredOption('-o, --output <file>', 'where to write the pack (.shrink)')
    .option('--json', 'print one JSON object instead of tables')
    .option('--no-compare', `skip gzip -9 and brotli -${CLI_BROTLI_QUALITY} of the input (brotli takes seconds on large models)`)
    .action((input: string, flags: PackFlags) => {
      checkOutput({ output: flags.output, flag: '-o', inputs: [input], models: [input] });
      const bytes = readInputFile(input);
      const started = performance.now();
      let result: ReturnType<typeof packOnnx>;
      try {
        // Refuses what is not ONNX with the codec's own messages before the wire walk.
        decodeModelProto(bytes, input);
        result = packOnnx(bytes, { source: input });
      } catch (error) {
        throw inFile(input, error);
      }
      const ms = performance.now() - started;
      writeFileAtomic(flags.output, result.pack);
      const ratio = (n: number): ComparedSize => ({ bytes: n, ratio: round(bytes.length / n) });
      const compared = flags.compare
        ? {
            gzip_9: ratio(gzipSync(bytes, { level: 9 }).length),
            [`brotli_${CLI_BROTLI_QUALITY}`]: ratio(
              brotliCompressSync(bytes, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: CLI_BROTLI_QUALITY, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length,
            ),
          }
        : null;
      const { kinds, perTensor, ...rest } = result.report;
      const summary: PackSummary = envelope(
        { command: 'pack', input, output: flags.output, size: sizeChange(bytes.length, result.pack.length), warnings: [] },
        { ...rest, kinds: kinds as PackSummary['kinds'], per_tensor: perTensor, pack_ratio: round(bytes.length / result.pack.length), compared: compared as PackSummary['compared'], ms: round(ms) },
        nodeEnvironment(),
      );
      io.stdout(flags.json ? `${JSON.stringify(summary, null, 2)}\n` : formatPack(summary));
    });
}

export function registerUnpack(program: Command, { io }: CliContext): void {
  program
    .command('unpack')
    .description('decode a .shrink pack back to its ONNX file, byte for byte (every record checksummed)')
    .argument('<input>', 'the pack (.shrink)')
    .requiredOption('-o, --output <file>', 'where to write the ONNX model')
    .option('--json', 'print one JSON object instead of text')
    .action(async (input: string, flags: { output: string; json?: boolean }) => {
      checkOutput({ output: flags.output, flag: '-o', inputs: [input], models: [] });
      const packBytes = fileSize(input);
      const started = performance.now();
      const onnxBytes = await unpackFile(input, flags.output);
      const ms = performance.now() - started;
      const summary: UnpackSummary = envelope(
        { command: 'unpack', input, output: flags.output, size: sizeChange(packBytes, onnxBytes), warnings: [] },
        { ms: round(ms), mb_per_s: Number((onnxBytes / 1e6 / (ms / 1000)).toFixed(1)) },
        nodeEnvironment(),
      );
      io.stdout(
        flags.json
          ? `${JSON.stringify(summary, null, 2)}\n`
          : `${input} -> ${flags.output}: ${formatSizeChange(summary.size!)}, every checksum matched (decoded in ${ms.toFixed(0)} ms)\n`,
      );
    });
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch (error) {
    throw inFile(file, error);
  }
}

/**
 * Streams the pack through the decoder into a temporary file beside `output`, renamed into place
 * after the last record checks out: memory stays near the skeleton plus the largest tensor, and
 * a bad pack leaves nothing behind.
 */
async function unpackFile(input: string, output: string): Promise<number> {
  removeStaleTemps(path.dirname(path.resolve(output)));
  const temporary = tempPathFor(output);
  trackTemp(temporary);
  let fd: number | undefined;
  let written = 0;
  try {
    fd = fs.openSync(temporary, 'w');
    for await (const chunk of unpackStream(fs.createReadStream(input, { highWaterMark: 1 << 20 }))) {
      fs.writeSync(fd, chunk);
      written += chunk.length;
    }
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temporary, output);
    untrackTemp(temporary);
    return written;
  } catch (error) {
    if (fd !== undefined) fs.closeSync(fd);
    removeTemp(temporary);
    throw inFile(input, error);
  }
}

function round(x: number): number {
  return Number(x.toFixed(3));
}

/** The summary as terminal text: bytes per stream kind, the ratio, and gzip/brotli beside it. */
export function formatPack(summary: PackSummary): string {
  const lines = [`${summary.input} -> ${summary.output} (unpacks to the same ${groupDigits(summary.size!.before)} bytes: checked)`, ''];
  const rows = Object.entries(summary.kinds).map(([kind, k]) => [
    kind.replace(/_/g, ' '),
    k.streams === 0 ? '-' : groupDigits(k.streams),
    k.bytes === 0 ? '-' : formatBytes(k.bytes),
    formatBytes(k.packed),
    k.bytes === 0 ? '' : `${(k.bytes / Math.max(1, k.packed)).toFixed(2)}x`,
  ]);
  lines.push(...renderTable([{ header: 'stream kind' }, { header: 'streams', align: 'right' }, { header: 'bytes', align: 'right' }, { header: 'packed', align: 'right' }, { header: 'smaller', align: 'right' }], rows, ''));
  const counts = (record: Record<string, number>) =>
    Object.entries(record)
      .filter(([, n]) => n > 0)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ');
  lines.push('', `tensors ${summary.tensors} (${counts(summary.layouts) || 'none'}); streams ${counts(summary.codings)}`, '');
  const table: string[][] = [['pack', formatBytes(summary.size!.after), `${summary.pack_ratio.toFixed(3)}x`]];
  if (summary.compared !== null) {
    for (const [name, c] of Object.entries(summary.compared)) table.push([name.replace('_', ' -'), formatBytes(c.bytes), `${c.ratio.toFixed(3)}x`]);
  }
  lines.push(`${path.basename(summary.input as string)}: ${formatBytes(summary.size!.before)}, packed in ${summary.ms.toFixed(0)} ms`);
  lines.push(...renderTable([{ header: '' }, { header: 'size', align: 'right' }, { header: 'smaller', align: 'right' }], table, ''));
  return `${lines.join('\n')}\n`;
}
