// onnxruntime-node as the runtime for the Node CLI and tests, with staging: models in memory that
// have external data or more weights than one protobuf holds are written to files that
// onnxruntime loads by path (model-stage.ts).
//
// onnxruntime-node is an optional peer dependency, loaded on first use (not when shrink/node is
// imported): commands that never run a model (inspect, --version) start faster and work without
// it, and a run that needs it and lacks it gets one line naming the package to install.
import { createRequire } from 'node:module';
import type { OrtModule } from '../runtime/ort-types.js';
import { stageModel } from './model-stage.js';
import { isMissingPackage, MissingPeerDependencyError } from './peer-dependencies.js';

type OnnxruntimeNode = typeof import('onnxruntime-node');
/** onnxruntime's log levels (written out, so that shrink's types do not need onnxruntime-node installed). */
export type OrtLogLevel = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';

const require = createRequire(import.meta.url);
let loaded: OnnxruntimeNode | undefined;
let pendingLogLevel: OrtLogLevel | undefined;

/** onnxruntime-node's module (CommonJS, so it loads synchronously), or the missing-package error. */
function onnxruntimeNode(): OnnxruntimeNode {
  if (loaded === undefined) {
    try {
      loaded = require('onnxruntime-node') as OnnxruntimeNode;
    } catch (error) {
      if (isMissingPackage(error, 'onnxruntime-node')) throw new MissingPeerDependencyError('onnxruntime-node', 'running a model in Node');
      throw error;
    }
    if (pendingLogLevel !== undefined) loaded.env.logLevel = pendingLogLevel;
  }
  return loaded;
}

/** Sets onnxruntime's log level now, or when onnxruntime-node loads if it has not yet. */
export function setNodeOrtLogLevel(level: OrtLogLevel): void {
  pendingLogLevel = level;
  if (loaded !== undefined) loaded.env.logLevel = level;
}

export const nodeOrt: OrtModule = {
  get InferenceSession() {
    return onnxruntimeNode().InferenceSession as unknown as OrtModule['InferenceSession'];
  },
  get Tensor() {
    return onnxruntimeNode().Tensor as unknown as OrtModule['Tensor'];
  },
  stageModel,
};
