// The browser side of test/browser.test.ts, bundled by esbuild (platform browser). onnxruntime-web
// stays external: index.html maps 'onnxruntime-web/wasm' to the package's own prebuilt module, so
// the bundle holds only shrink's code and the test can check it for Node-only imports.
import * as ort from 'onnxruntime-web/wasm';
import type { OrtModule } from '../../src/runtime/ort-types.js';
import { probeModel } from './probe.js';

// Without COOP/COEP headers the page has no SharedArrayBuffer, so onnxruntime-web must not start
// worker threads; the .wasm file is served next to its module.
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;

export interface ShrinkProbeWindow {
  /** Fetches the model at `url`, probes it, and answers the ProbeResult as JSON. */
  shrinkProbe(url: string, source: string): Promise<string>;
}

async function shrinkProbe(url: string, source: string): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const result = await probeModel(ort as unknown as OrtModule, bytes, { source, executionProviders: ['wasm'] });
  return JSON.stringify(result);
}

(window as unknown as ShrinkProbeWindow).shrinkProbe = shrinkProbe;
document.body.dataset.ready = 'true';
