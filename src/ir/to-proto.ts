// IR -> ModelProto. Fields the IR models are written from the IR; everything else comes from the
// proto the object was decoded from, so an untouched model encodes to an equal message.
import { create } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  AttributeProtoSchema,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
} from '../onnx/onnx_pb.js';
import { shallowCopy } from '../onnx/proto-copy.js';
import type { Attribute } from './attribute.js';
import type { Graph } from './graph.js';
import type { Model } from './model.js';
import type { Node } from './node.js';
import type { Tensor } from './tensor.js';

/** Decides how each initializer is stored; the default keeps it inside the protobuf. */
export type TensorWriter = (tensor: Tensor) => TensorProto;

const inline: TensorWriter = (tensor) => tensor.toProto();

export function modelToProto(model: Model, writeInitializer: TensorWriter = inline): ModelProto {
  const out = model.proto === undefined ? create(ModelProtoSchema) : shallowCopy(model.proto);
  setIfChanged(out, 'irVersion', BigInt(model.irVersion), 0n);
  out.opsetImport = sameOpsets(model) ? (model.proto?.opsetImport ?? []) : model.opsetImports.map((o) => create(OperatorSetIdProtoSchema, { domain: o.domain, version: BigInt(o.version) }));
  setIfChanged(out, 'producerName', model.producerName, '');
  setIfChanged(out, 'producerVersion', model.producerVersion, '');
  setIfChanged(out, 'domain', model.domain, '');
  setIfChanged(out, 'modelVersion', model.modelVersion, 0n);
  setIfChanged(out, 'docString', model.docString, '');
  const sameMetadata =
    model.proto !== undefined &&
    model.proto.metadataProps.length === model.metadata.length &&
    model.proto.metadataProps.every((e, i) => e.key === model.metadata[i].key && e.value === model.metadata[i].value);
  out.metadataProps = sameMetadata ? (model.proto?.metadataProps ?? []) : model.metadata.map((e) => create(StringStringEntryProtoSchema, e));
  out.functions = model.functions;
  out.trainingInfo = model.trainingInfo;
  out.graph = graphToProto(model.graph, writeInitializer);
  return out;
}

function sameOpsets(model: Model): boolean {
  const old = model.proto?.opsetImport;
  return (
    old !== undefined &&
    old.length === model.opsetImports.length &&
    old.every((o, i) => o.domain === model.opsetImports[i].domain && Number(o.version) === model.opsetImports[i].version)
  );
}

export function graphToProto(graph: Graph, writeInitializer: TensorWriter = inline): GraphProto {
  const out = graph.proto === undefined ? create(GraphProtoSchema) : shallowCopy(graph.proto);
  setIfChanged(out, 'name', graph.name, '');
  out.node = graph.nodes.map((n) => nodeToProto(n, writeInitializer));
  out.initializer = graph.initializers.map(writeInitializer);
  out.input = graph.inputs;
  out.output = graph.outputs;
  out.valueInfo = graph.valueInfo;
  return out;
}

function nodeToProto(node: Node, writeInitializer: TensorWriter): NodeProto {
  const out = node.proto === undefined ? create(NodeProtoSchema) : shallowCopy(node.proto);
  out.input = node.inputs;
  out.output = node.outputs;
  setIfChanged(out, 'name', node.name, '');
  setIfChanged(out, 'opType', node.opType, '');
  setIfChanged(out, 'domain', node.domain, '');
  out.attribute = node.attributes.map((a) => attributeToProto(a, writeInitializer));
  return out;
}

const KIND_TO_TYPE: Record<Attribute['kind'], AT> = {
  float: AT.FLOAT,
  int: AT.INT,
  string: AT.STRING,
  tensor: AT.TENSOR,
  graph: AT.GRAPH,
  sparse_tensor: AT.SPARSE_TENSOR,
  type_proto: AT.TYPE_PROTO,
  floats: AT.FLOATS,
  ints: AT.INTS,
  strings: AT.STRINGS,
  tensors: AT.TENSORS,
  graphs: AT.GRAPHS,
  sparse_tensors: AT.SPARSE_TENSORS,
  type_protos: AT.TYPE_PROTOS,
};

function attributeToProto(a: Attribute, writeInitializer: TensorWriter): AttributeProto {
  const old = a.proto;
  // Tensor values of attributes always stay inline: ORT reads external data for initializers only.
  const tensorProto = (t: Tensor) => t.toProto();
  if (old !== undefined && old.name === a.name) {
    const unchanged = scalarUnchanged(a, old);
    if (unchanged) {
      const out = shallowCopy(old);
      if (a.kind === 'tensor') out.t = tensorProto(a.value);
      else if (a.kind === 'tensors') out.tensors = a.value.map(tensorProto);
      else if (a.kind === 'graph') out.g = graphToProto(a.value, writeInitializer);
      else if (a.kind === 'graphs') out.graphs = a.value.map((g) => graphToProto(g, writeInitializer));
      return out;
    }
  }
  const out = create(AttributeProtoSchema, { name: a.name, type: KIND_TO_TYPE[a.kind] });
  if (a.refAttrName !== undefined) out.refAttrName = a.refAttrName;
  switch (a.kind) {
    case 'float':
      out.f = a.value;
      break;
    case 'int':
      out.i = a.value;
      break;
    case 'string':
      out.s = a.value;
      break;
    case 'tensor':
      out.t = tensorProto(a.value);
      break;
    case 'graph':
      out.g = graphToProto(a.value, writeInitializer);
      break;
    case 'sparse_tensor':
      out.sparseTensor = a.value;
      break;
    case 'type_proto':
      out.tp = a.value;
      break;
    case 'floats':
      out.floats = a.value;
      break;
    case 'ints':
      out.ints = a.value;
      break;
    case 'strings':
      out.strings = a.value;
      break;
    case 'tensors':
      out.tensors = a.value.map(tensorProto);
      break;
    case 'graphs':
      out.graphs = a.value.map((g) => graphToProto(g, writeInitializer));
      break;
    case 'sparse_tensors':
      out.sparseTensors = a.value;
      break;
    case 'type_protos':
      out.typeProtos = a.value;
      break;
  }
  return out;
}

/** True when the attribute still holds the decoded proto's own (non-tensor, non-graph) value. */
function scalarUnchanged(a: Attribute, old: AttributeProto): boolean {
  switch (a.kind) {
    case 'float':
      return Object.is(a.value, old.f);
    case 'int':
      return a.value === old.i;
    case 'string':
      return a.value === old.s;
    case 'floats':
      return a.value === old.floats;
    case 'ints':
      return a.value === old.ints;
    case 'strings':
      return a.value === old.strings;
    case 'sparse_tensor':
      return a.value === old.sparseTensor;
    case 'type_proto':
      return a.value === old.tp;
    case 'sparse_tensors':
      return a.value === old.sparseTensors;
    case 'type_protos':
      return a.value === old.typeProtos;
    default:
      return true;
  }
}

/** Writes a proto2 field only when it differs, so absent-but-default fields stay absent. */
function setIfChanged<T extends object, K extends keyof T>(target: T, key: K, value: T[K], zero: T[K]): void {
  if (target[key] !== value || (value !== zero && !Object.prototype.hasOwnProperty.call(target, key))) target[key] = value;
}
