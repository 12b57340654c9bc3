// The pack decoder: `.shrink` bytes back to the exact ONNX bytes they were made from
// (docs/pack-format.md). It imports nothing from Node, so a page can fetch a pack and hand the
// result to onnxruntime-web. Two forms over one core:
//
//   unpack(bytes)          whole pack in memory -> whole ONNX file
//   unpackStream(source)   an async iterable or ReadableStream of chunks -> ONNX chunks in file
//                          order, each tensor emitted as soon as its streams have arrived; memory
//                          stays near the skeleton plus the largest tensor
//
// The core is a generator that asks its driver for bytes ("need n bytes of stream 2 of tensor
// 'x'") and hands back output; the driver turns a short read into the truncation error, so both
// forms fail with the same one-line messages. Every header carries a CRC-32, every record the
// CRC-32 of the bytes it decodes to.
import { crc32 } from '../kernels/crc32.js';
import { huffmanDecode } from '../kernels/huffman.js';
import { ransDecode } from '../kernels/rans.js';
import { inflateSync } from 'fflate';
import { ByteReader, Coding, CODING_NAMES, KEEP_FLAG, Layout, PACK_MAGIC, PACK_VERSION, RecordKind } from './pack-format.js';
import { type LayoutNode, readLayout, rebuildPayload, streamLengths } from './pack-layouts.js';

/** A pack that cannot be decoded; the message is one line that names what is wrong and where. */
export class PackError extends Error {}

type Step = { need: number; what: string } | { emit: Uint8Array } | { total: number };

interface StreamSpec {
  coding: number;
  length: number;
  codedLength: number;
}

function readStreams(reader: ByteReader): StreamSpec[] {
  const count = reader.byte();
  const streams: StreamSpec[] = [];
  for (let j = 0; j < count; j++) {
    const coding = reader.byte();
    if (coding > Coding.DEFLATE) throw new Error(`stream ${j} has unknown coding ${coding}`);
    streams.push({ coding, length: reader.varint(), codedLength: reader.varint() });
  }
  return streams;
}

/** Decodes one stream; `what` names it for errors. Raw streams are returned without a copy. */
export function decodeStream(spec: Pick<StreamSpec, 'coding' | 'length'>, coded: Uint8Array, what: string): Uint8Array {
  try {
    switch (spec.coding) {
      case Coding.RAW:
        if (coded.length !== spec.length) throw new Error(`${coded.length} bytes stored for ${spec.length}`);
        return coded;
      case Coding.HUFFMAN:
        return huffmanDecode(coded, spec.length);
      case Coding.RANS:
        return ransDecode(coded, spec.length);
      default: {
        const out = inflateSync(coded, { out: new Uint8Array(spec.length) });
        if (out.length !== spec.length) throw new Error(`inflates to ${out.length} bytes, not ${spec.length}`);
        return out;
      }
    }
  } catch (error) {
    throw new PackError(`corrupt pack: ${what} (${CODING_NAMES[spec.coding]}) does not decode: ${(error as Error).message}`);
  }
}

/** The decoder's core; see the file comment. */
function* packSteps(): Generator<Step, void, Uint8Array | undefined> {
  const magic = (yield { need: PACK_MAGIC.length, what: 'the magic number' })!;
  if (!PACK_MAGIC.every((b, i) => magic[i] === b)) {
    const onnx = magic[0] === 0x08;
    throw new PackError(`not a shrink pack (bad magic${onnx ? '; this looks like an ONNX file: use it as it is, or shrink pack it' : ''})`);
  }
  const version = (yield { need: 1, what: 'the version' })![0];
  if (version !== PACK_VERSION) throw new PackError(`pack version ${version} is not supported (this decoder reads version ${PACK_VERSION})`);

  let skeleton: Uint8Array | undefined;
  let skeletonUsed = 0;
  let total = 0;
  let tensors = 0;
  let emitted = 0;
  let lastName = '';
  // Payloads that later records copy (flagged KEEP by the encoder), by tensor number.
  const kept = new Map<number, Uint8Array>();
  for (let index = 0; ; index++) {
    const where = index === 0 ? 'the skeleton record' : `record ${index} (after ${lastName === '' ? 'the skeleton' : `tensor '${lastName}'`})`;
    const kind = (yield { need: 1, what: where })![0];
    if (index === 0 && kind !== RecordKind.SKELETON) throw new PackError(`corrupt pack: the first record is of kind ${kind}, not the skeleton`);
    if (index > 0 && kind !== RecordKind.TENSOR && kind !== RecordKind.END) throw new PackError(`corrupt pack: ${where} is of unknown kind ${kind}`);
    const header = yield* readHeader(`the header of ${where}`);
    const reader = new ByteReader(header, `corrupt pack: the header of ${where}`);

    if (kind === RecordKind.SKELETON) {
      total = reader.varint();
      tensors = reader.varint();
      const [spec] = readStreams(reader);
      const checksum = reader.u32();
      if (spec === undefined || !reader.done) throw new PackError(`corrupt pack: the skeleton header is malformed`);
      yield { total };
      const coded = (yield { need: spec.codedLength, what: 'the skeleton stream' })!;
      skeleton = decodeStream(spec, coded, 'the skeleton stream');
      if (crc32(skeleton) !== checksum) throw new PackError('checksum mismatch in the skeleton (corrupt pack)');
      continue;
    }
    if (kind === RecordKind.END) {
      const endTotal = reader.varint();
      const endTensors = reader.varint();
      if (endTotal !== total || endTensors !== tensors || index - 1 !== tensors) {
        throw new PackError(`corrupt pack: the end record says ${endTensors} tensors and ${endTotal} bytes, the pack held ${index - 1} tensors for ${total} bytes`);
      }
      const rest = skeleton!.subarray(skeletonUsed);
      if (emitted + rest.length !== total) throw new PackError(`corrupt pack: the output would be ${emitted + rest.length} bytes, the pack says ${total}`);
      if (rest.length > 0) yield { emit: rest };
      return;
    }

    // A tensor record.
    const name = reader.string();
    const label = `tensor '${name}'`;
    lastName = name;
    const gap = reader.varint();
    const length = reader.varint();
    const elementBytes = reader.byte();
    const flags = reader.byte();
    if (![1, 2, 4, 8].includes(elementBytes) || length % elementBytes !== 0) throw new PackError(`corrupt pack: ${label} has ${length} bytes of ${elementBytes}-byte elements`);
    const count = length / elementBytes;
    let layout: LayoutNode;
    try {
      layout = readLayout(reader, count, elementBytes);
    } catch (error) {
      throw new PackError(`corrupt pack: ${label}: ${(error as Error).message}`);
    }
    const specs = readStreams(reader);
    const checksum = reader.u32();
    const expected = streamLengths(layout, count, elementBytes);
    if (specs.length !== expected.length || specs.some((s, j) => expected[j] >= 0 && s.length !== expected[j]) || !reader.done) {
      throw new PackError(`corrupt pack: the streams of ${label} do not fit its layout`);
    }
    if (skeletonUsed + gap > skeleton!.length) throw new PackError(`corrupt pack: ${label} needs ${gap} skeleton bytes before it, ${skeleton!.length - skeletonUsed} are left`);
    const streams: Uint8Array[] = [];
    for (let j = 0; j < specs.length; j++) {
      const what = `stream ${j + 1} of ${specs.length} of ${label}`;
      streams.push(decodeStream(specs[j], (yield { need: specs[j].codedLength, what })!, what));
    }
    let payload: Uint8Array;
    if (layout.kind === Layout.COPY) {
      const source = kept.get(layout.source);
      if (source === undefined || source.length !== length) throw new PackError(`corrupt pack: ${label} copies tensor record ${layout.source + 1}, which was not kept or has another length`);
      payload = source;
    } else {
      try {
        payload = rebuildPayload(layout, streams, count, elementBytes);
      } catch (error) {
        throw new PackError(`corrupt pack: ${label}: ${(error as Error).message}`);
      }
    }
    if (crc32(payload) !== checksum) throw new PackError(`checksum mismatch in ${label} (corrupt pack)`);
    if ((flags & KEEP_FLAG) !== 0) kept.set(index - 1, payload);
    if (gap > 0) yield { emit: skeleton!.subarray(skeletonUsed, skeletonUsed + gap) };
    skeletonUsed += gap;
    yield { emit: payload };
    emitted += gap + length;
  }
}

/** A record header: its length (a varint), the bytes, and their CRC-32. */
function* readHeader(what: string): Generator<Step, Uint8Array, Uint8Array | undefined> {
  let length = 0;
  let scale = 1;
  for (let i = 0; ; i++) {
    const b = (yield { need: 1, what })![0];
    length += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 128;
    if (i >= 4) throw new PackError(`corrupt pack: ${what} has a malformed length`);
  }
  const bytes = (yield { need: length + 4, what })!;
  const header = bytes.subarray(0, length);
  const stored = (bytes[length] | (bytes[length + 1] << 8) | (bytes[length + 2] << 16) | (bytes[length + 3] << 24)) >>> 0;
  if (crc32(header) !== stored) throw new PackError(`corrupt pack: ${what} fails its checksum`);
  return header;
}

/** One step of the core; errors that are not PackErrors yet (a header that passed its checksum but reads wrong) become one. */
function advance(steps: Generator<Step, void, Uint8Array | undefined>, answer: Uint8Array | undefined): IteratorResult<Step, void> {
  try {
    return steps.next(answer);
  } catch (error) {
    if (error instanceof PackError) throw error;
    const message = (error as Error).message ?? String(error);
    throw new PackError(message.startsWith('corrupt pack') ? message : `corrupt pack: ${message}`);
  }
}

function truncated(what: string, need: number, have: number): PackError {
  return new PackError(`truncated pack: the file ends inside ${what} (${need} bytes needed, ${have} left)`);
}

/** Decodes a whole pack in memory; throws a PackError with a one-line message when it cannot. */
export function unpack(pack: Uint8Array): Uint8Array {
  const steps = packSteps();
  let position = 0;
  let out = new Uint8Array(0);
  let written = 0;
  let answer: Uint8Array | undefined;
  for (;;) {
    const next = advance(steps, answer);
    answer = undefined;
    if (next.done) break;
    const step = next.value;
    if ('need' in step) {
      if (position + step.need > pack.length) throw truncated(step.what, step.need, pack.length - position);
      answer = pack.subarray(position, position + step.need);
      position += step.need;
    } else if ('total' in step) {
      // Allocated once from the skeleton header; the end record checks the sum.
      out = new Uint8Array(step.total);
    } else {
      if (written + step.emit.length > out.length) throw new PackError(`corrupt pack: the output runs past the ${out.length} bytes the pack says`);
      out.set(step.emit, written);
      written += step.emit.length;
    }
  }
  if (position !== pack.length) throw new PackError(`corrupt pack: ${pack.length - position} bytes after the end record`);
  return out;
}

/** Chunks from an async iterable or a ReadableStream (whose async iteration some browsers lack). */
async function* chunksOf(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  if ('getReader' in source) {
    const reader = source.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  } else {
    yield* source;
  }
}

/**
 * Decodes a pack as it arrives: yields the ONNX file's bytes in order, a tensor at a time.
 * Throws a PackError (one line) on a corrupt or truncated pack; the bytes yielded before the
 * error are then not a whole model, so write them to a temporary file, or keep them in memory.
 */
export async function* unpackStream(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const input = chunksOf(source);
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  const pull = async (): Promise<boolean> => {
    const next = await input.next();
    if (next.done) {
      ended = true;
      return false;
    }
    if (next.value.length > 0) {
      queue.push(next.value);
      queued += next.value.length;
    }
    return true;
  };
  const take = (n: number): Uint8Array => {
    const first = queue[0];
    if (first !== undefined && first.length >= n) {
      queue[0] = first.subarray(n);
      if (queue[0].length === 0) queue.shift();
      queued -= n;
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = queue[0];
      const k = Math.min(n - filled, chunk.length);
      out.set(chunk.subarray(0, k), filled);
      filled += k;
      if (k === chunk.length) queue.shift();
      else queue[0] = chunk.subarray(k);
    }
    queued -= n;
    return out;
  };
  const steps = packSteps();
  let answer: Uint8Array | undefined;
  for (;;) {
    const next = advance(steps, answer);
    answer = undefined;
    if (next.done) break;
    const step = next.value;
    if ('need' in step) {
      while (queued < step.need && !ended) await pull();
      if (queued < step.need) throw truncated(step.what, step.need, queued);
      answer = take(step.need);
    } else if ('emit' in step) {
      yield step.emit;
    }
  }
  while (!ended) await pull();
  if (queued > 0) throw new PackError(`corrupt pack: ${queued} bytes after the end record`);
}

/** Collects unpackStream's chunks into one array. */
export async function unpackStreamToBytes(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of unpackStream(source)) {
    chunks.push(chunk);
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let p = 0;
  for (const chunk of chunks) {
    out.set(chunk, p);
    p += chunk.length;
  }
  return out;
}
