// Shape and type inference over a whole model. Each graph is walked in dependency order, seeded
// from its inputs and initializers; every node's rule (rules.ts) gives its outputs' types and, for
// small integer tensors, their values, so Shape -> Gather -> Concat -> Reshape chains resolve.
// If/Loop/Scan bodies are inferred as graphs that see their enclosing scopes. Nodes a rule cannot
// handle are listed with a reason and their outputs stay unknown; nothing is guessed.
import { isStandardDomain } from '../../ir/constants.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { nodeOrder } from '../../ir/toposort.js';
import { type TensorType, makeValueInfo, tensorTypeOf } from '../../ir/value-info.js';
import type { Dim } from './dims.js';
import { InferenceGap, type InferredValue, RuleContext, type RuleOutput, type ScopeAccess, constantInferred } from './context.js';
import { CONTRIB_SHAPE_RULES } from './contrib.js';
import { SHAPE_RULES } from './rules.js';

export interface InferShapesOptions {
  /** Shapes to use for main-graph inputs instead of the declared ones (e.g. a concrete batch). */
  inputShapes?: Record<string, Dim[]>;
  /** Element values of small main-graph inputs known in advance (a sample rate, a flag). */
  inputValues?: Record<string, number[]>;
  /** Write the inferred types into each graph's value_info (and untyped graph outputs). */
  write?: boolean;
  /**
   * Give unknown (`?`) dims of main-graph inputs a symbol of their own (`input_d0`), so that
   * values derived from them stay related. On by default.
   */
  nameUnknownInputDims?: boolean;
}

/** A node whose outputs could not be inferred. */
export interface UninferredNode {
  node: string;
  op: string;
  /** Name of the graph holding the node (subgraphs included). */
  graph: string;
  reason: string;
}

export interface ShapeInferenceResult {
  /** Inferred types of every value, per graph (main graph and each If/Loop/Scan body). */
  types: Map<Graph, Map<string, TensorType>>;
  /** The main graph's entry of `types`. */
  main: Map<string, TensorType>;
  /** Known element values of small tensors in the main graph (shape vectors and the like). */
  values: Map<string, Dim[]>;
  unknown: UninferredNode[];
}

export function inferShapes(model: Model, options: InferShapesOptions = {}): ShapeInferenceResult {
  const run = new Inference(model.opset('') ?? 1, new Set(collectDimNames(model.graph)));
  const inputs = model.graph.inputs.map((input): RuleOutput => {
    const declared = tensorTypeOf(input);
    if (declared === undefined) return undefined;
    let shape = options.inputShapes?.[input.name] ?? declared.shape;
    if (shape !== undefined && options.nameUnknownInputDims !== false) {
      shape = shape.map((d, i) => (d === null ? run.freshNamed(`${input.name}_d${i}`) : d));
    }
    const value = options.inputValues?.[input.name];
    return { elemType: declared.elemType, shape: shape === undefined ? undefined : [...shape], ...(value === undefined ? {} : { value }) };
  });
  run.inferGraph(model.graph, inputs);

  const types = new Map<Graph, Map<string, TensorType>>();
  for (const [graph, inferred] of run.scopes) {
    const plain = new Map<string, TensorType>();
    for (const [name, value] of inferred) plain.set(name, { elemType: value.elemType, shape: value.shape });
    types.set(graph, plain);
    if (options.write === true) writeValueInfo(graph, plain);
  }
  const values = new Map<string, Dim[]>();
  for (const [name, value] of run.scopes.get(model.graph) ?? []) if (value.value !== undefined) values.set(name, value.value);
  return { types, main: types.get(model.graph) ?? new Map(), values, unknown: [...run.unknown.values()] };
}

class Inference {
  readonly scopes = new Map<Graph, Map<string, InferredValue>>();
  /** Keyed by graph, node and reason, so a Loop body inferred twice reports once. */
  readonly unknown = new Map<string, UninferredNode>();
  private counter = 0;

  constructor(
    private readonly opset: number,
    private readonly usedNames: Set<string>,
  ) {}

  fresh(hint: string): string {
    let name: string;
    do name = `_${hint}${++this.counter}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  /** `name` itself unless the model already uses it as a dim name. */
  freshNamed(name: string): string {
    if (!this.usedNames.has(name) && /^[A-Za-z_][\w.]*$/.test(name)) {
      this.usedNames.add(name);
      return name;
    }
    return this.fresh(name.replace(/\W/g, '_'));
  }

  lookup(graph: Graph, name: string): InferredValue | undefined {
    for (let g: Graph | undefined = graph; g !== undefined; g = g.parent) {
      const found = this.scopes.get(g)?.get(name);
      if (found !== undefined) return found;
      if (g.definesLocally(name)) return undefined;
    }
    return undefined;
  }

  /** Infers `graph` with its formal inputs typed as given (declared types fill the gaps). */
  inferGraph(graph: Graph, inputs: RuleOutput[]): RuleOutput[] {
    const types = new Map<string, InferredValue>();
    this.scopes.set(graph, types);
    for (const tensor of graph.initializers) {
      if (!graph.isGraphInput(tensor.name)) types.set(tensor.name, constantInferred(tensor));
    }
    graph.inputs.forEach((input, i) => {
      const given = inputs[i] ?? declaredType(input);
      if (given !== undefined) types.set(input.name, given);
      else types.delete(input.name);
    });

    const scope: ScopeAccess = {
      lookup: (name) => this.lookup(graph, name),
      fresh: (hint) => this.fresh(hint),
      inferSubgraph: (sub, subInputs) => this.inferGraph(sub, subInputs),
    };
    const { order, blocked } = nodeOrder(graph);
    for (const node of blocked) this.report(graph, node.label, node.opType, 'on a dependency cycle');
    for (const node of order) {
      const rule = isStandardDomain(node.domain) ? SHAPE_RULES[node.opType] : node.domain === 'com.microsoft' ? CONTRIB_SHAPE_RULES[node.opType] : undefined;
      if (rule === undefined) {
        const op = isStandardDomain(node.domain) ? node.opType : `${node.domain}.${node.opType}`;
        this.report(graph, node.label, op, `no shape rule for ${op}`);
        continue;
      }
      let outputs: RuleOutput[];
      try {
        outputs = rule(new RuleContext(node, graph, this.opset, scope));
      } catch (error) {
        const reason = error instanceof InferenceGap ? error.message : `rule failed: ${error instanceof Error ? error.message : String(error)}`;
        this.report(graph, node.label, node.opType, reason);
        continue;
      }
      node.outputs.forEach((name, k) => {
        const out = outputs[k];
        if (name === '' || out === undefined) return;
        const bad = out.shape?.find((d) => typeof d === 'number' && !(Number.isInteger(d) && d >= 0));
        if (bad !== undefined) {
          this.report(graph, node.label, node.opType, `computed dim ${bad} for '${name}'`);
          return;
        }
        types.set(name, out);
      });
    }
    return graph.outputs.map((output) => types.get(output.name) ?? this.lookup(graph, output.name));
  }

  private report(graph: Graph, node: string, op: string, reason: string): void {
    const key = `${graph.name}\u0000${node}\u0000${reason}`;
    if (!this.unknown.has(key)) this.unknown.set(key, { node, op, graph: graph.name, reason });
  }
}

function declaredType(input: Graph['inputs'][number]): InferredValue | undefined {
  const type = tensorTypeOf(input);
  return type === undefined ? undefined : { elemType: type.elemType, shape: type.shape };
}

/** Every dim_param the model declares, so fresh symbols never collide with one. */
function collectDimNames(root: Graph): string[] {
  const names: string[] = [];
  root.visit((g) => {
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) {
      for (const d of tensorTypeOf(v)?.shape ?? []) if (typeof d === 'string') names.push(d);
    }
  });
  return names;
}

/** Records inferred types: value_info for intermediate values, types for untyped outputs. */
function writeValueInfo(graph: Graph, types: Map<string, TensorType>): void {
  const produced = new Set(graph.nodes.flatMap((n) => n.outputs));
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const existing = new Map(graph.valueInfo.map((v, i) => [v.name, i]));
  for (const [name, type] of types) {
    if (!produced.has(name) || outputs.has(name)) continue;
    const info = makeValueInfo(name, type);
    const at = existing.get(name);
    if (at === undefined) graph.valueInfo.push(info);
    else graph.valueInfo[at] = info;
  }
  graph.outputs.forEach((output, i) => {
    const type = types.get(output.name);
    if (type !== undefined && tensorTypeOf(output)?.shape === undefined) graph.outputs[i] = makeValueInfo(output.name, type);
  });
}
