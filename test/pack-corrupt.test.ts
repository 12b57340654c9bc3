// A damaged pack never decodes to a wrong model: every single-bit flip in the first 600 bytes
// (magic, headers, the skeleton stream) and a spread of flips in the streams give a PackError (a
// one-line message), never an exception of another kind, a hang, or different bytes. A few flips
// land in bits no decoder reads (padding after a stream's last code, an unused DEFLATE code
// length) and give the original model back, which is fine. Every cut gives the truncation
// message, from the whole-file decoder and the streaming one alike.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '../src/kernels/random.js';
import { packOnnx } from '../src/methods/pack/pack.js';
import { PackError, unpack, unpackStreamToBytes } from '../src/onnx/pack-decode.js';
import { zooModel } from './helpers/pack-models.js';

const onnx = zooModel();
const { pack } = packOnnx(onnx);

/** The error, or undefined when the bytes decode to the original model exactly. */
function decodeError(bytes: Uint8Array): Error | undefined {
  let out: Uint8Array;
  try {
    out = unpack(bytes);
  } catch (error) {
    return error as Error;
  }
  assert.ok(Buffer.compare(out, onnx) === 0, 'a damaged pack decoded to different bytes');
  return undefined;
}

test('bit flips: each gives a one-line PackError', () => {
  const next = mulberry32(3);
  const positions = [...Array(Math.min(600, pack.length)).keys(), ...Array.from({ length: 600 }, () => Math.floor(next() * pack.length))];
  const messages = new Map<string, number>();
  let harmless = 0;
  for (const position of positions) {
    const damaged = pack.slice();
    damaged[position] ^= 1 << Math.floor(next() * 8);
    const error = decodeError(damaged);
    if (error === undefined) {
      harmless++;
      continue;
    }
    assert.ok(error instanceof PackError, `byte ${position}: ${error.constructor.name}: ${error.message}`);
    assert.ok(!error.message.includes('\n'), error.message);
    const kind = error.message.replace(/'[^']*'/g, "'…'").replace(/\d+/g, 'N');
    messages.set(kind, (messages.get(kind) ?? 0) + 1);
  }
  assert.ok(harmless < positions.length / 50, `${harmless} of ${positions.length} flips changed nothing`);
  // The checks that catch them are of several kinds, each naming where.
  assert.ok([...messages.keys()].some((m) => m.startsWith('checksum mismatch in tensor')), [...messages.keys()].join('\n'));
  assert.ok([...messages.keys()].some((m) => m.includes('fails its checksum')));
});

test('cuts: every length short of the whole pack gives the truncation message, whole-file and streaming', async () => {
  const next = mulberry32(4);
  const cuts = [0, 1, 7, 8, 9, 10, pack.length - 1, ...Array.from({ length: 60 }, () => Math.floor(next() * pack.length))];
  for (const cut of cuts) {
    const error = decodeError(pack.subarray(0, cut));
    assert.ok(error instanceof PackError, `cut at ${cut}: ${error}`);
    assert.match(error.message, /^truncated pack: the file ends inside .+ \(\d+ bytes needed, \d+ left\)$/);
    async function* once(): AsyncGenerator<Uint8Array> {
      yield pack.subarray(0, cut);
    }
    await assert.rejects(unpackStreamToBytes(once()), { message: error.message }, `streaming, cut at ${cut}`);
  }
  const longer = new Uint8Array(pack.length + 3);
  longer.set(pack);
  assert.throws(() => unpack(longer), /^PackError: corrupt pack: 3 bytes after the end record$|corrupt pack: 3 bytes after the end record/);
});
