// shrink's library surface, usable in Node and in a browser worker. Node-only helpers (model
// files on disk, onnxruntime-node) are exported from src/node/index.ts ("shrink/node").

export { DataType, dataTypeInfo, dataTypeName, byteLengthOf, type DataTypeInfo } from './ir/dtype.js';
export { Tensor } from './ir/tensor.js';
export { Node } from './ir/node.js';
export { Graph } from './ir/graph.js';
export { Model, type OpsetImport, type MetadataEntry } from './ir/model.js';
export { attr, type Attribute, type AttributeKind } from './ir/attribute.js';
export { constantValue, constantNodeValue, allConstants, type ConstantSource } from './ir/constants.js';
export { tensorTypeOf, makeValueInfo, formatType, type TensorType, type Dim } from './ir/value-info.js';

export { readModel, writeModel, type ReadModelOptions, type WriteModelOptions, type ExternalDataOptions, type ExternalDataSink } from './onnx/model-io.js';
export { decodeModelProto, encodeModelProto, PROTOBUF_LIMIT } from './onnx/codec.js';
export { memoryExternalData, type ExternalDataSource } from './onnx/external-data.js';

export { ModelSession, toOrtTensor, fromOrtTensor, withExtraOutputs, type SessionOptions, type GraphOptimization, type Feeds } from './runtime/session.js';
export type { OrtModule, OrtTensor } from './runtime/ort-types.js';
