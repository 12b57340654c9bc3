// A model file on disk as the benchmark takes it: encoded bytes for onnxruntime (external data
// read in, so the session loads from memory the same way for every model and backend) and the
// size a user downloads, the .onnx file plus its external data files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allConstants } from '../ir/constants.js';
import type { Model } from '../ir/model.js';
import { writeModel } from '../onnx/model-io.js';
import type { BenchModel } from '../eval/benchmark.js';
import { loadModel } from './model-files.js';

export interface BenchModelFile extends BenchModel {
  size: number;
  /** The decoded model (its signature picks the generated inputs; its layers feed reports). */
  model: Model;
}

/** Reads `file` for benchmarking; errors name the file. */
export function readBenchModel(file: string): BenchModelFile {
  const model = loadModel(file);
  const externalFiles = new Set<string>();
  for (const { tensor } of allConstants(model.graph)) {
    if (tensor.external !== undefined) externalFiles.add(tensor.external.location);
  }
  const folder = path.dirname(file);
  let size = fs.statSync(file).size;
  for (const location of externalFiles) size += fs.statSync(path.join(folder, location)).size;
  // Without external data the file bytes go to onnxruntime untouched; with it, the model is
  // re-encoded with every tensor inline (fine below protobuf's 2 GiB limit, which writeModel checks).
  const bytes = externalFiles.size === 0 ? new Uint8Array(fs.readFileSync(file)) : writeModel(model);
  return { name: file, bytes, size, model };
}
