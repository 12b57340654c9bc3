// One operator application. Inputs and outputs are value names, as in ONNX; an empty string marks
// an omitted optional input or output.
import type { NodeProto } from '../onnx/onnx_pb.js';
import { type Attribute, type AttributeKind, type AttributeValue, decodeUtf8, int64ToNumber } from './attribute.js';
import type { Graph } from './graph.js';
import type { Tensor } from './tensor.js';

export class Node {
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') for standard ops; 'com.microsoft' for ORT contrib ops, ... */
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Attribute[];
  /** The decoded proto, kept so fields shrink does not model (doc string, metadata) survive. */
  proto: NodeProto | undefined;

  constructor(init: {
    opType: string;
    inputs?: string[];
    outputs?: string[];
    name?: string;
    domain?: string;
    attributes?: Attribute[];
    proto?: NodeProto;
  }) {
    this.opType = init.opType;
    this.inputs = init.inputs ?? [];
    this.outputs = init.outputs ?? [];
    this.name = init.name ?? '';
    this.domain = init.domain ?? '';
    this.attributes = init.attributes ?? [];
    this.proto = init.proto;
  }

  /**
   * A copy for another graph (`graph`, the clone of this node's graph): own input, output and
   * attribute lists, subgraphs cloned below `graph`, tensors sharing their bytes.
   */
  clone(graph: Graph): Node {
    return new Node({
      opType: this.opType,
      name: this.name,
      domain: this.domain,
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      attributes: this.attributes.map((a) => cloneAttribute(a, graph)),
      proto: this.proto,
    });
  }

  /** A readable label for messages: the name, or op type and first output when unnamed. */
  get label(): string {
    return this.name !== '' ? this.name : `${this.opType}(${this.outputs[0] ?? ''})`;
  }

  attribute(name: string): Attribute | undefined {
    return this.attributes.find((a) => a.name === name);
  }

  setAttribute(attribute: Attribute): void {
    const at = this.attributes.findIndex((a) => a.name === attribute.name);
    if (at >= 0) this.attributes[at] = attribute;
    else this.attributes.push(attribute);
  }

  removeAttribute(name: string): void {
    this.attributes = this.attributes.filter((a) => a.name !== name);
  }

  private typed<K extends AttributeKind>(name: string, kind: K): AttributeValue<K> | undefined {
    const found = this.attribute(name);
    if (found === undefined) return undefined;
    if (found.kind !== kind) throw new Error(`node '${this.label}': attribute '${name}' is ${found.kind}, expected ${kind}`);
    return found.value as AttributeValue<K>;
  }

  attrInt(name: string, fallback: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, fallback?: number): number | undefined {
    const value = this.typed(name, 'int');
    return value === undefined ? fallback : int64ToNumber(value);
  }

  attrFloat(name: string, fallback: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, fallback?: number): number | undefined {
    return this.typed(name, 'float') ?? fallback;
  }

  attrString(name: string, fallback: string): string;
  attrString(name: string): string | undefined;
  attrString(name: string, fallback?: string): string | undefined {
    const value = this.typed(name, 'string');
    return value === undefined ? fallback : decodeUtf8(value);
  }

  attrInts(name: string): number[] | undefined {
    return this.typed(name, 'ints')?.map(int64ToNumber);
  }

  attrFloats(name: string): number[] | undefined {
    return this.typed(name, 'floats');
  }

  attrTensor(name: string): Tensor | undefined {
    return this.typed(name, 'tensor');
  }

  /** Every subgraph held in this node's attributes (If branches, Loop/Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes) {
      if (a.kind === 'graph') out.push(a.value);
      else if (a.kind === 'graphs') out.push(...a.value);
    }
    return out;
  }
}

function cloneAttribute(a: Attribute, graph: Graph): Attribute {
  switch (a.kind) {
    case 'tensor':
      return { ...a, value: a.value.clone() };
    case 'tensors':
      return { ...a, value: a.value.map((t) => t.clone()) };
    case 'graph':
      return { ...a, value: a.value.clone(graph) };
    case 'graphs':
      return { ...a, value: a.value.map((g) => g.clone(graph)) };
    case 'floats':
    case 'ints':
    case 'strings':
    case 'sparse_tensors':
    case 'type_protos':
      return { ...a, value: [...a.value] } as Attribute;
    default:
      return { ...a };
  }
}
