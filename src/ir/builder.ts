// Builds graphs in code, for tests and for passes that emit new nodes: declare inputs, add
// initializers and nodes, mark outputs. Every generated name comes from the root graph's
// `uniqueName`, so names stay unique across the whole model even while a subgraph is still being
// built and not yet attached to its If/Loop node.
import type { Attribute } from './attribute.js';
import { attr } from './attribute.js';
import type { DataType, TypedArray } from './dtype.js';
import { Graph } from './graph.js';
import { Model, type OpsetImport } from './model.js';
import { Node } from './node.js';
import { Tensor } from './tensor.js';
import { type Dim, makeValueInfo } from './value-info.js';

export interface NodeOptions {
  /** Output names, or how many outputs to name automatically (default: one). */
  outputs?: string[] | number;
  /** Node name (default: a unique name from `nameBase`, or from the op type). */
  name?: string;
  /** Base of the generated unique node name when `name` is not given. */
  nameBase?: string;
  /** '' for standard ops, 'com.microsoft' for ORT contrib ops, a function's domain, ... */
  domain?: string;
}

export class GraphBuilder {
  readonly graph: Graph;

  constructor(graph: Graph = new Graph('main')) {
    this.graph = graph;
  }

  /** Declares a graph input; the name must not name anything else in the model. */
  input(name: string, elemType: DataType, shape?: Dim[]): string {
    this.claim(name, 'input');
    this.graph.inputs.push(makeValueInfo(name, { elemType, shape }));
    return name;
  }

  /** Declares a graph input under a fresh name based on `base`; returns the name. */
  freshInput(base: string, elemType: DataType, shape?: Dim[]): string {
    const name = this.fresh(base);
    this.graph.inputs.push(makeValueInfo(name, { elemType, shape }));
    return name;
  }

  /** Declares an existing value as a graph output, typed when `elemType` is given. */
  output(name: string, elemType?: DataType, shape?: Dim[]): string {
    this.graph.addOutput(name, elemType === undefined ? undefined : { elemType, shape });
    return name;
  }

  /** Adds a type annotation (value_info) for an intermediate value. */
  valueInfo(name: string, elemType: DataType, shape?: Dim[]): void {
    this.graph.valueInfo.push(makeValueInfo(name, { elemType, shape }));
  }

  /** Adds an initializer over `data` (not copied); its type must match `dataType`'s storage. */
  initializer(name: string, dataType: DataType, dims: readonly number[], data: TypedArray): string {
    return this.tensor(Tensor.fromArray(name, dataType, dims, data));
  }

  /** Adds an existing tensor as an initializer, under its own name. */
  tensor(tensor: Tensor): string {
    this.claim(tensor.name, 'initializer');
    this.graph.addInitializer(tensor);
    return tensor.name;
  }

  /** Adds a node and returns its output name (one output) or names (`outputs` given). */
  node(opType: string, inputs: string[], attributes?: Attribute[], options?: NodeOptions & { outputs?: 1 }): string;
  node(opType: string, inputs: string[], attributes: Attribute[] | undefined, options: NodeOptions & { outputs: string[] | number }): string[];
  node(opType: string, inputs: string[], attributes: Attribute[] = [], options: NodeOptions = {}): string | string[] {
    const node = this.addNode(opType, inputs, attributes, options);
    return options.outputs === undefined || options.outputs === 1 ? node.outputs[0] : node.outputs;
  }

  /** Like `node`, but returns the Node itself (to set its proto, doc string, ...). */
  addNode(opType: string, inputs: string[], attributes: Attribute[] = [], options: NodeOptions = {}): Node {
    const name = options.name ?? this.fresh(options.nameBase ?? opType);
    if (options.name !== undefined) this.claim(options.name, 'node');
    const wanted = options.outputs ?? 1;
    const outputs =
      typeof wanted === 'number'
        ? Array.from({ length: wanted }, (_, i) => this.fresh(wanted === 1 ? `${name}_out` : `${name}_out${i}`))
        : wanted.map((o) => {
            if (o !== '') this.claim(o, 'output of node');
            return o;
          });
    return this.graph.addNode(new Node({ opType, inputs, outputs, name, domain: options.domain ?? '', attributes }));
  }

  /** A Constant node holding `tensor`; returns its output name (the tensor's name if free). */
  constant(tensor: Tensor): string {
    const output = this.fresh(tensor.name);
    this.graph.addNode(new Node({ opType: 'Constant', outputs: [output], name: this.fresh('Constant'), attributes: [attr.tensor('value', tensor)] }));
    return output;
  }

  /**
   * A subgraph (If branch, Loop body) whose enclosing graph is this one. `build` declares its
   * inputs, nodes and outputs; attach the result with `attr.graph(...)`.
   */
  subgraph(name: string, build: (sub: GraphBuilder) => void): Graph {
    const sub = new Graph(name, this.graph);
    build(new GraphBuilder(sub));
    return sub;
  }

  /** A name based on `base` not used anywhere in the model. */
  fresh(base: string): string {
    return this.graph.root().uniqueName(base);
  }

  /** Reserves an exact name; throws when the model already uses it. */
  private claim(name: string, what: string): void {
    const got = this.fresh(name);
    if (got !== name) throw new Error(`graph '${this.graph.name}': cannot add ${what} '${name}': the name is already used`);
  }
}

/** A Model around `graph` importing `opsets` (default: ai.onnx 17). */
export function buildModel(graph: Graph, opsets: OpsetImport[] = [{ domain: '', version: 17 }], irVersion = 8): Model {
  const model = new Model(graph, { irVersion, opsetImports: opsets });
  model.producerName = 'shrink';
  return model;
}
