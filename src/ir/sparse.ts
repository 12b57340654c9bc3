// SparseTensorProto -> dense tensor. Indices are either [NNZ] linear positions or [NNZ, rank]
// coordinates (onnx.proto, SparseTensorProto).
import type { SparseTensorProto } from '../onnx/onnx_pb.js';
import { byteLengthOf, DataType, dataTypeInfo } from './dtype.js';
import { dimsFromProto, elementCount } from './shape.js';
import { Tensor } from './tensor.js';

export function densifySparse(sparse: SparseTensorProto, where: string, name: string): Tensor {
  if (sparse.values === undefined || sparse.indices === undefined) throw new Error(`${where}: sparse tensor lacks values or indices`);
  const dims = dimsFromProto(sparse.dims, where);
  const values = Tensor.fromProto(sparse.values, `${where} (sparse values)`);
  const indices = Tensor.fromProto(sparse.indices, `${where} (sparse indices)`);
  const type = values.dataType;
  const info = dataTypeInfo(type, where);
  if (info.bits < 8 || type === DataType.STRING) throw new Error(`${where}: sparse ${info.name} tensors are not supported`);
  const width = info.bits / 8;
  const count = elementCount(dims, where);
  const out = new Uint8Array(byteLengthOf(type, count));
  const src = values.bytes();
  const nnz = values.elementCount;
  const raw = indices.data();
  const index = (i: number) => Number(raw[i]);
  const strides = dims.map((_, axis) => dims.slice(axis + 1).reduce((a, b) => a * b, 1));
  const coordinate = indices.dims.length === 2;
  for (let k = 0; k < nnz; k++) {
    let pos = 0;
    if (coordinate) for (let axis = 0; axis < dims.length; axis++) pos += index(k * dims.length + axis) * strides[axis];
    else pos = index(k);
    if (pos < 0 || pos >= count) throw new Error(`${where}: sparse index ${pos} is outside dims [${dims.join(',')}]`);
    out.set(src.subarray(k * width, (k + 1) * width), pos * width);
  }
  return Tensor.fromBytes(name, type, dims, out);
}
