// Decoded ModelProto -> IR. Every tensor is checked (type, dims, byte count, external file) as it
// is wrapped, so a corrupt model fails here with the tensor's name rather than deep inside a pass.
import type { ExternalDataSource } from '../onnx/external-data.js';
import {
  type AttributeProto,
  AttributeProto_AttributeType as AT,
  type GraphProto,
  type ModelProto,
  type NodeProto,
} from '../onnx/onnx_pb.js';
import type { Attribute } from './attribute.js';
import { Graph } from './graph.js';
import { Model } from './model.js';
import { Node } from './node.js';
import { Tensor } from './tensor.js';

export interface FromProtoOptions {
  /** Reads tensors stored in external files; required when the model has any. */
  externalData?: ExternalDataSource;
  /** Prefix for error messages, usually the model's file name. */
  source?: string;
}

export function modelFromProto(proto: ModelProto, options: FromProtoOptions = {}): Model {
  const source = options.source ?? 'model';
  if (proto.graph === undefined) throw new Error(`${source}: model has no graph`);
  const ctx: Context = { externalData: options.externalData, source };
  const graph = graphFromProto(proto.graph, undefined, ctx);
  const model = new Model(graph, {
    irVersion: safeNumber(proto.irVersion, `${source}: ir_version`),
    opsetImports: proto.opsetImport.map((o) => ({ domain: o.domain, version: safeNumber(o.version, `${source}: opset version`) })),
  });
  model.producerName = proto.producerName;
  model.producerVersion = proto.producerVersion;
  model.domain = proto.domain;
  model.modelVersion = proto.modelVersion;
  model.docString = proto.docString;
  model.metadata = proto.metadataProps.map(({ key, value }) => ({ key, value }));
  model.functions = proto.functions;
  model.trainingInfo = proto.trainingInfo;
  model.proto = proto;
  return model;
}

interface Context {
  externalData: ExternalDataSource | undefined;
  source: string;
}

function graphFromProto(proto: GraphProto, parent: Graph | undefined, ctx: Context): Graph {
  const graph = new Graph(proto.name, parent);
  graph.proto = proto;
  graph.inputs = proto.input;
  graph.outputs = proto.output;
  graph.valueInfo = proto.valueInfo;
  graph.initializers = proto.initializer.map((t) =>
    Tensor.fromProto(t, `${ctx.source}: initializer '${t.name}'`, ctx.externalData),
  );
  graph.nodes = proto.node.map((n) => nodeFromProto(n, graph, ctx));
  return graph;
}

function nodeFromProto(proto: NodeProto, graph: Graph, ctx: Context): Node {
  const node = new Node({
    opType: proto.opType,
    name: proto.name,
    domain: proto.domain,
    inputs: proto.input,
    outputs: proto.output,
    proto,
  });
  node.attributes = proto.attribute.map((a) => attributeFromProto(a, node, graph, ctx));
  return node;
}

function attributeFromProto(a: AttributeProto, node: Node, graph: Graph, ctx: Context): Attribute {
  const where = `${ctx.source}: node '${node.label}' attribute '${a.name}'`;
  const base = { name: a.name, proto: a, refAttrName: a.refAttrName === '' ? undefined : a.refAttrName };
  const tensor = (t: AttributeProto['t'] & object, i?: number) =>
    Tensor.fromProto(t, i === undefined ? where : `${where}[${i}]`, ctx.externalData);
  switch (attributeType(a, where)) {
    case AT.FLOAT:
      return { ...base, kind: 'float', value: a.f };
    case AT.INT:
      return { ...base, kind: 'int', value: a.i };
    case AT.STRING:
      return { ...base, kind: 'string', value: a.s };
    case AT.TENSOR:
      if (a.t === undefined) throw new Error(`${where}: TENSOR attribute has no tensor`);
      return { ...base, kind: 'tensor', value: tensor(a.t) };
    case AT.GRAPH:
      if (a.g === undefined) throw new Error(`${where}: GRAPH attribute has no graph`);
      return { ...base, kind: 'graph', value: graphFromProto(a.g, graph, ctx) };
    case AT.SPARSE_TENSOR:
      if (a.sparseTensor === undefined) throw new Error(`${where}: SPARSE_TENSOR attribute has no tensor`);
      return { ...base, kind: 'sparse_tensor', value: a.sparseTensor };
    case AT.TYPE_PROTO:
      if (a.tp === undefined) throw new Error(`${where}: TYPE_PROTO attribute has no type`);
      return { ...base, kind: 'type_proto', value: a.tp };
    case AT.FLOATS:
      return { ...base, kind: 'floats', value: a.floats };
    case AT.INTS:
      return { ...base, kind: 'ints', value: a.ints };
    case AT.STRINGS:
      return { ...base, kind: 'strings', value: a.strings };
    case AT.TENSORS:
      return { ...base, kind: 'tensors', value: a.tensors.map(tensor) };
    case AT.GRAPHS:
      return { ...base, kind: 'graphs', value: a.graphs.map((g) => graphFromProto(g, graph, ctx)) };
    case AT.SPARSE_TENSORS:
      return { ...base, kind: 'sparse_tensors', value: a.sparseTensors };
    case AT.TYPE_PROTOS:
      return { ...base, kind: 'type_protos', value: a.typeProtos };
    default:
      throw new Error(`${where}: unknown attribute type ${a.type}`);
  }
}

/** The attribute's type; files from IR version 1 have no discriminator, so infer it from the value. */
function attributeType(a: AttributeProto, where: string): AT {
  if (a.type !== AT.UNDEFINED) return a.type;
  if (a.floats.length) return AT.FLOATS;
  if (a.ints.length) return AT.INTS;
  if (a.strings.length) return AT.STRINGS;
  if (a.tensors.length) return AT.TENSORS;
  if (a.graphs.length) return AT.GRAPHS;
  if (a.t !== undefined) return AT.TENSOR;
  if (a.g !== undefined) return AT.GRAPH;
  if (a.s.length) return AT.STRING;
  if (a.i !== 0n) return AT.INT;
  if (a.f !== 0) return AT.FLOAT;
  if (a.refAttrName !== '') return AT.UNDEFINED;
  throw new Error(`${where}: attribute has neither a type nor a value`);
}

function safeNumber(value: bigint, where: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${where} ${value} is out of range`);
  return Number(value);
}
