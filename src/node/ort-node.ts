// onnxruntime-node as the runtime for the Node CLI and tests.
import * as ort from 'onnxruntime-node';
import type { OrtModule } from '../runtime/ort-types.js';

export const nodeOrt: OrtModule = ort as unknown as OrtModule;
