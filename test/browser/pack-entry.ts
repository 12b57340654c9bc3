// The page side of test/pack-browser.test.ts and of bench/pack.ts, bundled by esbuild (platform
// browser): fetch a .shrink pack, decode it as it streams in (src/onnx/pack-decode.ts, nothing
// else of shrink), hash the result, open an onnxruntime-web session on it and run it; and time
// the decoder on a pack already in memory.
import * as ort from 'onnxruntime-web/wasm';
import { unpack, unpackStreamToBytes } from '../../src/onnx/pack-decode.js';
import { type PackPageWindow, type PackProbeResult, type PackTiming, probeInput } from './pack-probe.js';

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;

async function shrinkPackProbe(url: string, inputName: string, dims: number[]): Promise<string> {
  const response = await fetch(url);
  if (!response.ok || response.body === null) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  const onnx = await unpackStreamToBytes(response.body);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', onnx as Uint8Array<ArrayBuffer>));
  const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  const session = await ort.InferenceSession.create(onnx, { executionProviders: ['wasm'] });
  const count = dims.reduce((a, b) => a * b, 1);
  const results = await session.run({ [inputName]: new ort.Tensor('float32', probeInput(count), dims) });
  const outputs: PackProbeResult['outputs'] = {};
  for (const [name, tensor] of Object.entries(results)) outputs[name] = { dims: [...tensor.dims], data: Array.from(tensor.data as Float32Array) };
  await session.release();
  return JSON.stringify({ bytes: onnx.length, sha256, outputs } satisfies PackProbeResult);
}

async function shrinkPackTiming(url: string, runs: number): Promise<string> {
  const pack = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const timing: PackTiming = { onnxBytes: unpack(pack).length, unpackMs: [], streamMs: [] };
  // Warm up until the JIT has compiled the decoder's loops (small packs decode in a few ms).
  for (const started = performance.now(); performance.now() - started < 300; ) unpack(pack);
  for (let r = 0; r < runs; r++) {
    let started = performance.now();
    unpack(pack);
    timing.unpackMs.push(performance.now() - started);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let p = 0; p < pack.length; p += 65536) controller.enqueue(pack.subarray(p, p + 65536));
        controller.close();
      },
    });
    started = performance.now();
    await unpackStreamToBytes(stream);
    timing.streamMs.push(performance.now() - started);
  }
  return JSON.stringify(timing);
}

const page = window as unknown as PackPageWindow;
page.shrinkPackProbe = shrinkPackProbe;
page.shrinkPackTiming = shrinkPackTiming;
document.body.dataset.ready = 'true';
