// onnxruntime-web (its wasm backend) loaded in Node, for `--backend wasm`: measures what a browser
// user would get, on the same machine as the native runtime. Loaded on demand because its module
// is large and most runs never need it; it is a peer dependency of shrink, so a missing one is
// named in the error.
import type { OrtModule } from '../runtime/ort-types.js';
import { isMissingPackage, MissingPeerDependencyError } from './peer-dependencies.js';

/** The wasm execution provider, the one onnxruntime-web backend that runs in Node. */
export const WASM_EXECUTION_PROVIDERS = ['wasm'];

/**
 * onnxruntime-web with one wasm thread: its threaded build needs worker and shared-memory support
 * that Node provides differently from browsers, and one thread is also what a page without
 * cross-origin isolation gets.
 */
export async function loadWebOrt(): Promise<OrtModule> {
  let ort: typeof import('onnxruntime-web');
  try {
    ort = await import('onnxruntime-web');
  } catch (error) {
    if (isMissingPackage(error, 'onnxruntime-web')) throw new MissingPeerDependencyError('onnxruntime-web', 'the wasm backend');
    throw error;
  }
  ort.env.wasm.numThreads = 1;
  return ort as unknown as OrtModule;
}
