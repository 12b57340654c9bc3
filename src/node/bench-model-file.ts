// A model file on disk as the benchmark takes it, for the runtime that will time it. onnxruntime-node
// loads the file from its path, external data beside it, as an application would: nothing is
// copied into one buffer, so models over protobuf's 2 GiB limit time like any other.
// onnxruntime-web takes one buffer: the file's bytes, or with external data the model re-encoded
// with every tensor inline (possible only below 2 GiB). The size is what a user downloads: the
// .onnx file plus its external data files.
import * as fs from 'node:fs';
import type { Model } from '../ir/model.js';
import { initializerBytes, writeModel } from '../onnx/model-io.js';
import { PROTOBUF_LIMIT } from '../onnx/codec.js';
import type { BenchModel } from '../eval/benchmark.js';
import { externalLocations, loadModel, modelFileBytes } from './model-files.js';

export interface BenchModelFile extends BenchModel {
  size: number;
  /** The decoded model (its signature picks the generated inputs; its layers feed reports). */
  model: Model;
}

/** Reads `file` for benchmarking on `backend`; errors name the file. */
export function readBenchModel(file: string, backend: 'node' | 'wasm' = 'node'): BenchModelFile {
  const model = loadModel(file);
  const size = modelFileBytes(file, model);
  if (backend === 'node') return { name: file, source: file, size, model };
  if (externalLocations(model).length === 0) return { name: file, source: new Uint8Array(fs.readFileSync(file)), size, model };
  const weights = initializerBytes(model);
  if (weights >= PROTOBUF_LIMIT) {
    throw new Error(
      `${file}: ${(weights / 2 ** 30).toFixed(2)} GiB of weights: onnxruntime-web takes a model as one buffer, which protobuf limits to 2 GiB; time it with --backend node`,
    );
  }
  return { name: file, source: writeModel(model), size, model };
}
