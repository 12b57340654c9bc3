// The part of the onnxruntime API shrink uses, shared by onnxruntime-node and onnxruntime-web
// (both re-export onnxruntime-common). The core takes the module as a parameter instead of
// importing one, so the same code runs in Node and in a browser worker.
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-common';
import { DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';

export interface OrtModule {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof OrtTensor;
  /**
   * Writes a model where onnxruntime can load it from a path, its weights in files beside it
   * (onnxruntime-node). Models with external data, or too large for one protobuf, go this way;
   * without it (browsers) a model is handed over as bytes.
   */
  stageModel?: (model: Model) => Promise<StagedModel>;
}

/** A model written out for onnxruntime to load; `release` removes what staging wrote. */
export interface StagedModel {
  path: string;
  release(): void;
}

export type { OrtTensor };

/** ONNX element type -> the type name onnxruntime's Tensor uses. */
const ORT_TYPE_NAMES: ReadonlyMap<number, OrtTensor.Type> = new Map<number, OrtTensor.Type>([
  [DataType.FLOAT, 'float32'],
  [DataType.UINT8, 'uint8'],
  [DataType.INT8, 'int8'],
  [DataType.UINT16, 'uint16'],
  [DataType.INT16, 'int16'],
  [DataType.INT32, 'int32'],
  [DataType.INT64, 'int64'],
  [DataType.STRING, 'string'],
  [DataType.BOOL, 'bool'],
  [DataType.FLOAT16, 'float16'],
  [DataType.DOUBLE, 'float64'],
  [DataType.UINT32, 'uint32'],
  [DataType.UINT64, 'uint64'],
  [DataType.UINT4, 'uint4'],
  [DataType.INT4, 'int4'],
]);

export function ortTypeName(type: number): OrtTensor.Type | undefined {
  return ORT_TYPE_NAMES.get(type);
}

export function dataTypeFromOrt(name: OrtTensor.Type): DataType | undefined {
  for (const [type, ortName] of ORT_TYPE_NAMES) if (ortName === name) return type as DataType;
  return undefined;
}
