// Packing 2-, 4- and 8-bit codes into bytes, LSB-first (see quant-formats.ts), row by row: each
// row starts on a fresh byte, as MatMulNBits zero points ([N, ceil(n_blocks*bits/8)]) and
// GatherBlockQuantized data rows need. A tensor packed as a single row is the ONNX int4/uint4/
// int2/uint2 raw_data layout. packRowsRef/unpackRowsRef are the slow references the tests use.
import type { QuantBits } from './quant-formats.js';
import { wasmQuantizer } from './quantize-blocks-wasm.js';

/** Bytes one packed row of `cols` codes takes. */
export function packedRowBytes(cols: number, bits: QuantBits): number {
  return Math.ceil((cols * bits) / 8);
}

/**
 * Packs `rows` x `cols` codes (row-major, signed or unsigned; only the low `bits` bits of each are
 * kept, so signed codes land in two's complement) into [rows, packedRowBytes(cols)] bytes.
 */
export function packRows(codes: ArrayLike<number>, rows: number, cols: number, bits: QuantBits): Uint8Array {
  checkSize(codes.length, rows, cols);
  const rowBytes = packedRowBytes(cols, bits);
  const out = new Uint8Array(rows * rowBytes);
  if (bits === 8) {
    if (codes instanceof Uint8Array) out.set(codes);
    else for (let i = 0; i < codes.length; i++) out[i] = codes[i] & 0xff;
    return out;
  }
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  // Rows that fill whole bytes are one contiguous run: WebAssembly SIMD packs 16 codes at a time.
  const wasm = codes instanceof Uint8Array && cols % perByte === 0 ? wasmQuantizer() : undefined;
  if (wasm && codes instanceof Uint8Array) {
    const whole = codes.length - (codes.length % 16);
    wasm.pack(codes.subarray(0, whole), bits, out, 0);
    for (let i = whole; i < codes.length; i++) out[Math.floor(i / perByte)] |= (codes[i] & mask) << ((i % perByte) * bits);
    return out;
  }
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    const dst = r * rowBytes;
    // Whole bytes first, unrolled per width; the tail byte of the row (if any) after.
    const whole = Math.floor(cols / perByte);
    if (bits === 4) {
      for (let b = 0; b < whole; b++) {
        const i = src + 2 * b;
        out[dst + b] = (codes[i] & 0xf) | ((codes[i + 1] & 0xf) << 4);
      }
    } else {
      for (let b = 0; b < whole; b++) {
        const i = src + 4 * b;
        out[dst + b] = (codes[i] & 3) | ((codes[i + 1] & 3) << 2) | ((codes[i + 2] & 3) << 4) | ((codes[i + 3] & 3) << 6);
      }
    }
    for (let c = whole * perByte; c < cols; c++) {
      out[dst + whole] |= (codes[src + c] & mask) << ((c % perByte) * bits);
    }
  }
  return out;
}

/** Unpacks [rows, packedRowBytes(cols)] bytes into rows x cols codes, sign-extended when `signed`. */
export function unpackRows(packed: Uint8Array, rows: number, cols: number, bits: QuantBits, signed: boolean): Int16Array {
  const rowBytes = packedRowBytes(cols, bits);
  if (packed.length !== rows * rowBytes) {
    throw new Error(`unpack: ${packed.length} bytes, ${rows} rows of ${cols} ${bits}-bit codes need ${rows * rowBytes}`);
  }
  const out = new Int16Array(rows * cols);
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const signBit = 1 << (bits - 1);
  for (let r = 0; r < rows; r++) {
    const src = r * rowBytes;
    const dst = r * cols;
    for (let c = 0; c < cols; c++) {
      const byte = packed[src + Math.floor(c / perByte)];
      const code = (byte >> ((c % perByte) * bits)) & mask;
      out[dst + c] = signed && code & signBit ? code - (1 << bits) : code;
    }
  }
  return out;
}

/** The obvious packing: one element at a time, bit position computed from the element index. */
export function packRowsRef(codes: ArrayLike<number>, rows: number, cols: number, bits: QuantBits): Uint8Array {
  checkSize(codes.length, rows, cols);
  const rowBytes = Math.ceil((cols * bits) / 8);
  const out = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const bit = c * bits;
      const unsigned = ((codes[r * cols + c] % 2 ** bits) + 2 ** bits) % 2 ** bits;
      out[r * rowBytes + Math.floor(bit / 8)] += unsigned * 2 ** (bit % 8);
    }
  }
  return out;
}

/** The obvious unpacking, by division and remainder. */
export function unpackRowsRef(packed: Uint8Array, rows: number, cols: number, bits: QuantBits, signed: boolean): number[] {
  const rowBytes = Math.ceil((cols * bits) / 8);
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const bit = c * bits;
      const byte = packed[r * rowBytes + Math.floor(bit / 8)];
      const code = Math.floor(byte / 2 ** (bit % 8)) % 2 ** bits;
      out.push(signed && code >= 2 ** (bits - 1) ? code - 2 ** bits : code);
    }
  }
  return out;
}

function checkSize(length: number, rows: number, cols: number): void {
  if (length !== rows * cols) throw new Error(`pack: ${length} codes given for ${rows} rows of ${cols}`);
}
