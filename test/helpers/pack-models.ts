// ONNX files built as protobuf messages for the pack tests: every place a tensor's bytes can sit
// (raw_data of each element width, packed float_data and double_data, a nameless tensor in a
// Constant node inside an If branch, a sparse initializer, external data) and every layout the
// pack chooses (planes, codebook, sparse with planes or codebook values). They need not run:
// the pack works on bytes.
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProto_DataLocation,
  TensorProtoSchema,
} from '../../src/onnx/onnx_pb.js';
import { mulberry32 } from '../../src/kernels/random.js';

const bytesOf = (array: ArrayBufferView) => new Uint8Array(array.buffer.slice(array.byteOffset, array.byteOffset + array.byteLength));

function raw(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorProto {
  return create(TensorProtoSchema, { name, dataType, dims: dims.map(BigInt), rawData: bytesOf(data) });
}

/** Float weights in N(0, 0.05)-ish, seeded. */
function weights(count: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  return Float32Array.from({ length: count }, () => (next() + next() + next() - 1.5) * 0.1);
}

/** The tensors of the zoo, by the layout the pack should pick for each. */
export const ZOO_EXPECTED: Record<string, 'planes' | 'codebook' | 'sparse'> = {
  dense: 'planes',
  clustered: 'codebook',
  pruned: 'sparse',
  // Zero is one more codebook entry, and its codes cost little once entropy coded.
  pruned_clustered: 'codebook',
  float_data: 'planes',
  double_data: 'planes',
  int8: 'planes',
  int64: 'planes',
  half: 'planes',
  bf16: 'planes',
  odd_float_bytes: 'planes',
  sparse_init: 'planes',
  'sparse_init.indices': 'planes',
  branch_constant: 'planes',
};

export function zooModel(): Uint8Array {
  const next = mulberry32(7);
  const centroids = Float32Array.from({ length: 16 }, (_, k) => (k - 7.5) * 0.013);
  const clustered = Float32Array.from({ length: 8192 }, () => centroids[Math.floor(next() * next() * 16)]);
  const pruned = weights(8192, 2).map((v) => (next() < 0.9 ? 0 : v));
  const prunedClustered = clustered.map((v) => (next() < 0.8 ? 0 : v));
  const initializers = [
    raw('dense', 1, [64, 64], weights(4096, 1)),
    raw('clustered', 1, [8192], clustered),
    raw('pruned', 1, [8192], pruned),
    raw('pruned_clustered', 1, [8192], prunedClustered),
    create(TensorProtoSchema, { name: 'float_data', dataType: 1, dims: [1000n], floatData: Array.from(weights(1000, 3)) }),
    create(TensorProtoSchema, { name: 'double_data', dataType: 11, dims: [500n], doubleData: Array.from(weights(500, 4)) }),
    raw('int8', 3, [3000], Int8Array.from({ length: 3000 }, () => Math.round((next() - 0.5) * 40))),
    raw('int64', 7, [1000], BigInt64Array.from({ length: 1000 }, (_, i) => BigInt(i * 3 - 1500))),
    raw('half', 10, [2000], Uint16Array.from({ length: 2000 }, () => 0x3000 + Math.floor(next() * 0x1000))),
    raw('bf16', 16, [2000], Uint16Array.from({ length: 2000 }, () => 0x3c00 + Math.floor(next() * 0x300))),
    // 1001 bytes of float32 cannot be whole elements: coded as bytes.
    create(TensorProtoSchema, { name: 'odd_float_bytes', dataType: 1, dims: [250n], rawData: bytesOf(weights(251, 5)).subarray(0, 1001) }),
    // Too small to be cut out: stays in the skeleton.
    raw('tiny', 1, [4], Float32Array.of(1, 2, 3, 4)),
  ];
  const sparse = create(SparseTensorProtoSchema, {
    values: raw('sparse_init', 1, [300], weights(300, 6)),
    indices: raw('', 7, [300], BigInt64Array.from({ length: 300 }, (_, i) => BigInt(i * 7))),
    dims: [3000n],
  });
  const constant = create(NodeProtoSchema, {
    opType: 'Constant',
    output: ['branch_constant'],
    attribute: [create(AttributeProtoSchema, { name: 'value', type: AttributeProto_AttributeType.TENSOR, t: raw('', 1, [512], weights(512, 8)) })],
  });
  const branch = create(GraphProtoSchema, { name: 'then', node: [constant] });
  const ifNode = create(NodeProtoSchema, {
    opType: 'If',
    input: ['cond'],
    output: ['out'],
    attribute: [
      create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: branch }),
      create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: branch }),
    ],
  });
  const graph = create(GraphProtoSchema, { name: 'zoo', node: [ifNode], initializer: initializers, sparseInitializer: [sparse] });
  return toBinary(ModelProtoSchema, create(ModelProtoSchema, { irVersion: 8n, producerName: 'pack-test', graph, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })] }));
}

/** A model whose one weight lives in an external file. */
export function externalDataModel(): Uint8Array {
  const tensor = create(TensorProtoSchema, {
    name: 'w',
    dataType: 1,
    dims: [1024n],
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [create(StringStringEntryProtoSchema, { key: 'location', value: 'model.onnx.data' }), create(StringStringEntryProtoSchema, { key: 'length', value: '4096' })],
  });
  const graph = create(GraphProtoSchema, { name: 'external', initializer: [tensor] });
  return toBinary(ModelProtoSchema, create(ModelProtoSchema, { irVersion: 8n, graph, opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n })] }));
}
