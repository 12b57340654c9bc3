// onnxruntime-node as the runtime for the Node CLI and tests, with staging: models in memory that
// have external data or more weights than one protobuf holds are written to files that
// onnxruntime loads by path (model-stage.ts).
import * as ort from 'onnxruntime-node';
import type { OrtModule } from '../runtime/ort-types.js';
import { stageModel } from './model-stage.js';

export const nodeOrt: OrtModule = {
  InferenceSession: ort.InferenceSession as unknown as OrtModule['InferenceSession'],
  Tensor: ort.Tensor as unknown as OrtModule['Tensor'],
  stageModel,
};
