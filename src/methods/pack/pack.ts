// `packOnnx`: ONNX bytes -> a .shrink pack (docs/pack-format.md). The file's tensor payloads are
// found by walking its protobuf wire format (src/onnx/tensor-payloads.ts), cut out and coded one
// by one in their best layout (layouts.ts); what remains, the skeleton, is coded as one stream.
// Every pack is decoded again before it is returned and must give the input's bytes exactly.
import { crc32 } from '../../kernels/crc32.js';
import { unpack } from '../../onnx/pack-decode.js';
import { ByteWriter, CODING_NAMES, KEEP_FLAG, Layout, PACK_MAGIC, PACK_VERSION, RecordKind } from '../../onnx/pack-format.js';
import { scanTensorPayloads, type TensorPayload } from '../../onnx/tensor-payloads.js';
import { bestLayout, type EncodedLayout, type StreamKind } from './layouts.js';
import { codeStream, type CodedStream } from './streams.js';

export interface PackOptions {
  /** Payloads smaller than this stay in the skeleton (default 128 bytes). */
  minTensorBytes?: number;
  /** File name for messages. */
  source?: string;
}

export interface PackKindSize {
  streams: number;
  /** Bytes before coding. */
  bytes: number;
  /** Bytes in the pack. */
  packed: number;
}

export interface PackReport {
  /** Tensors whose payloads were coded on their own. */
  tensors: number;
  /** Tensors per layout. */
  layouts: Record<EncodedLayout['name'], number>;
  /** Streams per coding. */
  codings: Record<(typeof CODING_NAMES)[number], number>;
  /** Sizes per stream kind, plus 'headers' (magic, record headers, checksums). */
  kinds: Partial<Record<StreamKind | 'headers', PackKindSize>>;
  /** Each coded tensor, in file order: its name, payload bytes, bytes in the pack, layout. */
  perTensor: { name: string; bytes: number; packed: number; layout: EncodedLayout['name'] }[];
  /** The pack was decoded again and gave the input's bytes. */
  verified: boolean;
}

export interface PackResult {
  pack: Uint8Array;
  report: PackReport;
}

/** Appends a record: kind, header length, header, the header's CRC-32, then the streams. */
function record(parts: Uint8Array[], kind: number, header: ByteWriter, streams: readonly CodedStream[]): number {
  const head = header.finish();
  const framing = new ByteWriter().byte(kind).varint(head.length).bytes(head).u32(crc32(head)).finish();
  parts.push(framing);
  for (const s of streams) parts.push(s.coded);
  return framing.length;
}

function writeStreams(header: ByteWriter, streams: readonly CodedStream[]): void {
  header.byte(streams.length);
  for (const s of streams) header.byte(s.coding).varint(s.length).varint(s.coded.length);
}

export function packOnnx(bytes: Uint8Array, options: PackOptions = {}): PackResult {
  const source = options.source ?? 'model';
  let scan: ReturnType<typeof scanTensorPayloads>;
  try {
    scan = scanTensorPayloads(bytes, options.minTensorBytes ?? 128);
  } catch (error) {
    throw new Error(`${source}: not a valid ONNX model (${(error as Error).message})`);
  }
  if (scan.external.length > 0) {
    throw new Error(
      `${source}: ${scan.external.length} tensor(s) keep their data in external files (first: '${scan.external[0]}'); ` +
        'a pack holds self-contained models only: save the model with its weights inside (possible under 2 GiB) and pack that',
    );
  }
  const report: PackReport = {
    tensors: scan.payloads.length,
    layouts: { planes: 0, codebook: 0, sparse: 0, copy: 0 },
    codings: { raw: 0, huffman: 0, rans: 0, deflate: 0 },
    kinds: {},
    perTensor: [],
    verified: false,
  };
  const count = (kind: StreamKind | 'headers', raw: number, packed: number, streams = 1) => {
    const k = (report.kinds[kind] ??= { streams: 0, bytes: 0, packed: 0 });
    k.streams += streams;
    k.bytes += raw;
    k.packed += packed;
  };

  // The skeleton: the file with every payload range removed.
  const removed = scan.payloads.reduce((a, p) => a + (p.end - p.start), 0);
  const skeleton = new Uint8Array(bytes.length - removed);
  let from = 0;
  let to = 0;
  for (const p of scan.payloads) {
    skeleton.set(bytes.subarray(from, p.start), to);
    to += p.start - from;
    from = p.end;
  }
  skeleton.set(bytes.subarray(from), to);

  const parts: Uint8Array[] = [PACK_MAGIC, Uint8Array.of(PACK_VERSION)];
  let headers = PACK_MAGIC.length + 1;
  const skeletonStream = codeStream(skeleton, { deflate: true });
  report.codings[CODING_NAMES[skeletonStream.coding]]++;
  count('skeleton', skeleton.length, skeletonStream.coded.length);
  const skeletonHeader = new ByteWriter().varint(bytes.length).varint(scan.payloads.length);
  writeStreams(skeletonHeader, [skeletonStream]);
  skeletonHeader.u32(crc32(skeleton));
  headers += record(parts, RecordKind.SKELETON, skeletonHeader, [skeletonStream]);

  // Payloads equal to an earlier one (the same weights in two If branches) become copies of it.
  const copyOf = findCopies(bytes, scan.payloads);
  const keep = new Set(copyOf.values());
  let previousEnd = 0;
  for (const [index, p] of scan.payloads.entries()) {
    const payload = bytes.subarray(p.start, p.end);
    const source = copyOf.get(index);
    const layout: EncodedLayout = source === undefined ? bestLayout(payload, p.elementBytes, p.float) : copyLayout(source);
    report.layouts[layout.name]++;
    const header = new ByteWriter()
      .string(p.name)
      .varint(p.start - previousEnd)
      .varint(payload.length)
      .byte(p.elementBytes)
      .byte(keep.has(index) ? KEEP_FLAG : 0);
    for (const b of layout.descriptor) header.byte(b);
    writeStreams(header, layout.streams);
    header.u32(crc32(payload));
    const framing = record(parts, RecordKind.TENSOR, header, layout.streams);
    headers += framing;
    report.perTensor.push({ name: p.name, bytes: payload.length, packed: framing + layout.streams.reduce((a, s) => a + s.coded.length, 0), layout: layout.name });
    for (const s of layout.streams) {
      report.codings[CODING_NAMES[s.coding]]++;
      count(s.kind, s.length, s.coded.length);
    }
    previousEnd = p.end;
  }
  headers += record(parts, RecordKind.END, new ByteWriter().varint(bytes.length).varint(scan.payloads.length), []);
  count('headers', 0, headers, 0);

  const pack = concat(parts);
  const back = unpack(pack);
  if (!sameBytes(back, bytes)) {
    throw new Error(`${source}: internal error: the pack does not decode to the model's bytes (please report this)`);
  }
  report.verified = true;
  return { pack, report };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Tensor index -> the index of the first earlier payload with the same bytes. */
function findCopies(bytes: Uint8Array, payloads: readonly TensorPayload[]): Map<number, number> {
  const first = new Map<string, number[]>();
  const copies = new Map<number, number>();
  payloads.forEach((p, index) => {
    const payload = bytes.subarray(p.start, p.end);
    const key = `${payload.length}:${p.elementBytes}:${crc32(payload)}`;
    const candidates = first.get(key) ?? [];
    const same = candidates.find((c) => sameBytes(bytes.subarray(payloads[c].start, payloads[c].end), payload));
    if (same !== undefined) copies.set(index, same);
    else first.set(key, [...candidates, index]);
  });
  return copies;
}

function copyLayout(source: number): EncodedLayout {
  const descriptor: number[] = [Layout.COPY];
  for (let v = source; ; v >>>= 7) {
    if (v < 0x80) {
      descriptor.push(v);
      break;
    }
    descriptor.push((v & 0x7f) | 0x80);
  }
  return { name: 'copy', descriptor, streams: [], size: descriptor.length };
}
