// What the pack decoder page (pack-entry.ts) answers, and the input it feeds: shared with the
// Node side, which must not import the page module itself (it touches `window` on load).

export interface PackProbeResult {
  bytes: number;
  sha256: string;
  /** Output name -> dims and values of one run on the deterministic input. */
  outputs: Record<string, { dims: number[]; data: number[] }>;
}

export interface PackTiming {
  onnxBytes: number;
  /** unpack(bytes) of the whole pack in memory, each run in ms. */
  unpackMs: number[];
  /** unpackStream over a ReadableStream of the pack in 64 KiB chunks, each run in ms. */
  streamMs: number[];
}

export interface PackPageWindow {
  shrinkPackProbe(url: string, inputName: string, dims: number[]): Promise<string>;
  shrinkPackTiming(url: string, runs: number): Promise<string>;
}

/** The input both sides feed: x[i] = ((i * 7919) % 1000) / 1000 - 0.5. */
export function probeInput(count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
}
