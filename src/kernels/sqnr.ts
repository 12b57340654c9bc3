// Signal-to-quantization-noise ratio of a weight against its stored form, in dB: over finite
// elements, Infinity when they agree. The chunked forms decode the stored form a million
// elements at a time, so measuring a 500 MB weight never makes a second full float32 copy of it.
import type { QuantizedBlocks } from "./quantize-blocks.js";

/** SQNR in dB of `approx` against `exact` over finite elements; Infinity when they agree. */
export function sqnrDb(
	exact: ArrayLike<number>,
	approx: ArrayLike<number>,
): number {
	const sums = { signal: 0, noise: 0 };
	addSqnrTerms(sums, exact, approx);
	return sqnrFromSums(sums);
}

/** Adds the signal and noise energy of one stretch of a tensor (for SQNR computed in chunks). */
export function addSqnrTerms(
	sums: { signal: number; noise: number },
	exact: ArrayLike<number>,
	approx: ArrayLike<number>,
): void {
	for (let i = 0; i < exact.length; i++) {
		const x = exact[i];
		if (!Number.isFinite(x)) continue;
		const d = x - approx[i];
		sums.signal += x * x;
		sums.noise += d * d;
	}
}

export function sqnrFromSums(sums: { signal: number; noise: number }): number {
	if (sums.noise === 0) return Number.POSITIVE_INFINITY;
	if (!Number.isFinite(sums.noise)) return Number.NEGATIVE_INFINITY;
	return 10 * Math.log10(sums.signal / sums.noise);
}

/** Elements decoded at a time when SQNR is computed in chunks: a full copy of a 500 MB weight would double a pass's peak memory. */
const SQNR_CHUNK = 1 << 20;

/** sqnrDb of `exact` against its block quantization `q`, dequantized a chunk at a time. */
export function blocksSqnrDb(exact: Float32Array, q: QuantizedBlocks): number {
  const sums = { signal: 0, noise: 0 };
  addBlocksSqnrTerms(sums, exact, q);
  return sqnrFromSums(sums);
}

/** Adds the energy of `exact` and of its error in `q` (a slab of a larger weight) to `sums`. */
export function addBlocksSqnrTerms(sums: { signal: number; noise: number }, exact: Float32Array, q: QuantizedBlocks): void {
	// Block by block, in element order, each dequantized value rounded to float32 as a stored
	// float32 tensor would hold it (the chunked form this replaced gave the same sums).
	const fr = Math.fround;
	const size = q.blockSize;
	let signal = sums.signal;
	let noise = sums.noise;
	for (let b = 0, start = 0; start < exact.length; b++, start += size) {
		const scale = q.scales[b];
		const zero = q.zeroPoints[b];
		const end = Math.min(exact.length, start + size);
		for (let i = start; i < end; i++) {
			const x = exact[i];
			if (!Number.isFinite(x)) continue;
			const d = x - fr((q.codes[i] - zero) * scale);
			signal += x * x;
			noise += d * d;
		}
	}
	sums.signal = signal;
	sums.noise = noise;
}

/** sqnrDb of `exact` against itself stored as float16 or bfloat16 bits, decoded a chunk at a time. */
export function narrowSqnrDb(
	exact: Float32Array,
	bits: Uint16Array,
	decode: (bits: Uint16Array, out: Float32Array<ArrayBuffer>) => Float32Array,
): number {
	const sums = { signal: 0, noise: 0 };
	const chunk = new Float32Array(Math.min(exact.length, SQNR_CHUNK));
	for (let start = 0; start < exact.length; start += chunk.length) {
		const n = Math.min(chunk.length, exact.length - start);
		const back = decode(bits.subarray(start, start + n), chunk.subarray(0, n));
		addSqnrTerms(sums, exact.subarray(start, start + n), back);
	}
	return sqnrFromSums(sums);
}
