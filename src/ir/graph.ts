// A computation graph: nodes, its declared inputs and outputs, initializers, and (for subgraphs)
// a link to the enclosing graph whose values it may read. Producer and consumer maps are built on
// demand and dropped whenever the graph is changed through its methods; code that edits the
// arrays directly calls `changed()`.
import { clone as cloneMessage } from '@bufbuild/protobuf';
import { type GraphProto, type ValueInfoProto, ValueInfoProtoSchema } from '../onnx/onnx_pb.js';
import { Node } from './node.js';
import type { Tensor } from './tensor.js';

/** Takes a new tensor and returns the one to keep in the graph: itself, or one backed by a file. */
export interface TensorSpill {
  keep(tensor: Tensor): Tensor;
}
import { makeValueInfo, type TensorType } from './value-info.js';

interface Index {
  producer: Map<string, Node>;
  consumers: Map<string, Node[]>;
  initializer: Map<string, Tensor>;
}

export class Graph {
  name: string;
  nodes: Node[] = [];
  inputs: ValueInfoProto[] = [];
  outputs: ValueInfoProto[] = [];
  /** Type and shape annotations of intermediate values. */
  valueInfo: ValueInfoProto[] = [];
  initializers: Tensor[] = [];
  /** The enclosing graph when this is an If/Loop/Scan body; its values are visible here. */
  parent: Graph | undefined;
  /** The decoded proto, kept for fields shrink does not model (sparse initializers, annotations). */
  proto: GraphProto | undefined;
  /**
   * Where new large initializers go as they are added, instead of staying in memory (set on the
   * root graph; subgraphs use their root's). The Node CLI spills to a scratch file so that a
   * pass over a 20 GB model never holds all of its output at once.
   */
  spill: TensorSpill | undefined;
  private index: Index | undefined;
  private nameCounter = 0;
  private usedNames: Set<string> | undefined;

  constructor(name = '', parent?: Graph) {
    this.name = name;
    this.parent = parent;
  }

  /**
   * A graph of its own with the same content: new node, value and initializer lists (value infos
   * copied, since passes annotate them), tensors sharing their bytes. `parent` is the enclosing
   * graph of the copy (for subgraphs).
   */
  clone(parent?: Graph): Graph {
    const copy = new Graph(this.name, parent);
    copy.proto = this.proto;
    copy.inputs = this.inputs.map(copyValueInfo);
    copy.outputs = this.outputs.map(copyValueInfo);
    copy.valueInfo = this.valueInfo.map(copyValueInfo);
    copy.initializers = this.initializers.map((t) => t.clone());
    copy.nodes = this.nodes.map((n) => n.clone(copy));
    copy.nameCounter = this.nameCounter;
    copy.spill = this.spill;
    return copy;
  }

  /** Call after editing `nodes`, `initializers`, values or a node's inputs/outputs directly. */
  changed(): void {
    this.index = undefined;
    // Direct edits may have added names that the unique-name cache has not seen.
    this.root().usedNames = undefined;
  }

  /** For edits made through this class's methods, which note their names as they go. */
  private dropIndex(): void {
    this.index = undefined;
  }

  private built(): Index {
    if (this.index !== undefined) return this.index;
    const producer = new Map<string, Node>();
    const consumers = new Map<string, Node[]>();
    for (const node of this.nodes) {
      for (const out of node.outputs) if (out !== '') producer.set(out, node);
      for (const name of node.inputs) {
        if (name === '') continue;
        const list = consumers.get(name);
        if (list === undefined) consumers.set(name, [node]);
        else if (list[list.length - 1] !== node) list.push(node);
      }
    }
    const initializer = new Map(this.initializers.map((t) => [t.name, t]));
    this.index = { producer, consumers, initializer };
    return this.index;
  }

  /** The node in this graph that computes `value`, if any. */
  producer(value: string): Node | undefined {
    return this.built().producer.get(value);
  }

  /** Nodes of this graph that read `value` directly (not counting reads from inside subgraphs). */
  consumers(value: string): readonly Node[] {
    return this.built().consumers.get(value) ?? [];
  }

  initializer(name: string): Tensor | undefined {
    return this.built().initializer.get(name);
  }

  isGraphInput(name: string): boolean {
    return this.inputs.some((v) => v.name === name);
  }

  isGraphOutput(name: string): boolean {
    return this.outputs.some((v) => v.name === name);
  }

  /** True if `name` is defined in this graph: an input, initializer or node output. */
  definesLocally(name: string): boolean {
    return this.isGraphInput(name) || this.initializer(name) !== undefined || this.producer(name) !== undefined;
  }

  /** The graph (this one or an enclosing one) where `name` is defined, if any. */
  scopeOf(name: string): Graph | undefined {
    for (let g: Graph | undefined = this; g !== undefined; g = g.parent) if (g.definesLocally(name)) return g;
    return undefined;
  }

  addNode(init: ConstructorParameters<typeof Node>[0] | Node, at?: number): Node {
    const node = init instanceof Node ? init : new Node(init);
    if (node.name === '') node.name = this.uniqueName(node.opType);
    if (at === undefined) this.nodes.push(node);
    else this.nodes.splice(at, 0, node);
    this.noteNames(node.name, ...node.outputs);
    this.dropIndex();
    return node;
  }

  removeNode(node: Node): void {
    const at = this.nodes.indexOf(node);
    if (at < 0) throw new Error(`node '${node.label}' is not in graph '${this.name}'`);
    this.nodes.splice(at, 1);
    this.dropIndex();
  }

  addInitializer(tensor: Tensor): Tensor {
    if (this.initializer(tensor.name) !== undefined) throw new Error(`graph '${this.name}' already has an initializer '${tensor.name}'`);
    const kept = this.spilled(tensor);
    this.initializers.push(kept);
    this.noteNames(kept.name);
    this.dropIndex();
    return kept;
  }

  /** Puts `tensor` in the place of initializer `at` (same name or not), spilled like addInitializer's. */
  replaceInitializer(at: number, tensor: Tensor): Tensor {
    if (at < 0 || at >= this.initializers.length) throw new Error(`graph '${this.name}': no initializer at ${at}`);
    const kept = this.spilled(tensor);
    this.initializers[at] = kept;
    this.changed();
    return kept;
  }

  private spilled(tensor: Tensor): Tensor {
    const spill = this.root().spill;
    return spill === undefined || tensor.isExternal ? tensor : spill.keep(tensor);
  }

  removeInitializer(name: string): void {
    this.initializers = this.initializers.filter((t) => t.name !== name);
    this.dropIndex();
  }

  /** Points every reader of `from` (in this graph, its subgraphs and the outputs) at `to`. */
  replaceAllUses(from: string, to: string): void {
    for (const node of this.nodes) {
      node.inputs = node.inputs.map((n) => (n === from ? to : n));
      for (const sub of node.subgraphs()) if (!sub.definesLocally(from)) sub.replaceAllUses(from, to);
    }
    for (const out of this.outputs) if (out.name === from) out.name = to;
    this.dropIndex();
  }

  /** Adds a graph output for an existing value (used to read intermediate values at run time). */
  addOutput(name: string, type?: TensorType): void {
    if (this.isGraphOutput(name)) return;
    this.outputs.push(makeValueInfo(name, type));
  }

  /**
   * A name not used anywhere in this graph, its subgraphs or enclosing graphs: `base`, or `base_N`.
   */
  uniqueName(base: string): string {
    const used = this.allNames();
    let name = base;
    while (used.has(name) || name === '') name = `${base}_${++this.nameCounter}`;
    used.add(name);
    return name;
  }

  private allNames(): Set<string> {
    const root = this.root();
    if (root.usedNames !== undefined) return root.usedNames;
    const used = new Set<string>();
    root.visit((g) => {
      for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) used.add(v.name);
      for (const t of g.initializers) used.add(t.name);
      for (const n of g.nodes) {
        used.add(n.name);
        for (const v of [...n.inputs, ...n.outputs]) used.add(v);
      }
    });
    // Kept on the root and shared by every scope, so names stay unique across subgraphs.
    root.usedNames = used;
    return used;
  }

  private noteNames(...names: string[]): void {
    for (const n of names) this.root().usedNames?.add(n);
  }

  root(): Graph {
    let g: Graph = this;
    while (g.parent !== undefined) g = g.parent;
    return g;
  }

  /** Calls `fn` on this graph and every subgraph below it, parents first. */
  visit(fn: (graph: Graph) => void): void {
    fn(this);
    for (const node of this.nodes) for (const sub of node.subgraphs()) sub.visit(fn);
  }

  /** Every node of this graph and its subgraphs, with the graph that holds it. */
  *allNodes(): Generator<{ node: Node; graph: Graph }> {
    for (const node of this.nodes) {
      yield { node, graph: this };
      for (const sub of node.subgraphs()) yield* sub.allNodes();
    }
  }

  /** Values a subgraph reads from enclosing scopes (the implicit inputs of its owning node). */
  outerReads(): Set<string> {
    const reads = new Set<string>();
    for (const node of this.nodes) {
      for (const name of node.inputs) if (name !== '' && !this.definesLocally(name)) reads.add(name);
      for (const sub of node.subgraphs()) for (const name of sub.outerReads()) if (!this.definesLocally(name)) reads.add(name);
    }
    return reads;
  }
}

function copyValueInfo(info: ValueInfoProto): ValueInfoProto {
  return cloneMessage(ValueInfoProtoSchema, info);
}
