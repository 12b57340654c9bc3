// One stream of the pack coded the way that makes it smallest: stored as it is, Huffman, rANS or
// DEFLATE. Ties go to the coding that decodes fastest: an entropy coding must save 1% over raw,
// Huffman 1% over rANS, and DEFLATE (tried on the streams with repeated strings in them: the
// skeleton, positions, codebooks) 2% over the best entropy coding.
import { deflateSync } from 'fflate';
import { huffmanEncode } from '../../kernels/huffman.js';
import { ransEncode } from '../../kernels/rans.js';
import { Coding, type CodingId } from '../../onnx/pack-format.js';

export interface CodedStream {
  coding: CodingId;
  /** Decoded length. */
  length: number;
  coded: Uint8Array;
}

/** Order-0 entropy in bits per byte. */
export function byteEntropy(bytes: Uint8Array): number {
  const counts = new Uint32Array(256);
  for (let i = 0; i < bytes.length; i++) counts[bytes[i]]++;
  let bits = 0;
  for (const c of counts) if (c > 0) bits -= c * Math.log2(c / bytes.length);
  return bytes.length === 0 ? 0 : bits / bytes.length;
}

export function codeStream(bytes: Uint8Array, options: { deflate?: boolean } = {}): CodedStream {
  let best: CodedStream = { coding: Coding.RAW, length: bytes.length, coded: bytes };
  if (bytes.length < 48) return best;
  const worthIt = (size: number, against: number, margin: number) => size < against * (1 - margin) && against - size >= 8;
  // Noise (mantissa bytes) cannot be entropy coded; skip the work.
  if (byteEntropy(bytes) < 7.9) {
    const huffman = huffmanEncode(bytes);
    const rans = ransEncode(bytes);
    // rANS decodes faster here (four interleaved states): Huffman must be 1% smaller to win.
    const entropy = huffman.length >= rans.length * 0.99 ? { coding: Coding.RANS, coded: rans } : { coding: Coding.HUFFMAN, coded: huffman };
    if (worthIt(entropy.coded.length, bytes.length, 0.01)) best = { ...entropy, length: bytes.length } as CodedStream;
  }
  if (options.deflate) {
    const deflated = deflateSync(bytes, { level: 9, mem: 8 });
    if (worthIt(deflated.length, best.coded.length, best.coding === Coding.RAW ? 0.01 : 0.02)) best = { coding: Coding.DEFLATE, length: bytes.length, coded: deflated };
  }
  return best;
}
