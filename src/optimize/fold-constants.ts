// Constant folding: every node whose inputs are all constant is computed once, here, and replaced
// by its value. onnxruntime does the computing (util/evaluate-nodes.ts), so every op it has is
// covered; all foldable values of one nesting level of graphs go into one onnxruntime run. Shape
// and Size of values whose shape the model declares (value_info, written by shape inference) fold
// without running anything, and so does a Gather of static dims out of a partly symbolic Shape,
// which opens up the Shape -> Gather -> Unsqueeze -> Concat chains that exporters write for
// Reshape targets.
//
// A size cap keeps folding from blowing up the file. Values up to `maxBytes` (shapes, indices,
// small tables) always fold. A larger value folds only when it replaces the constants it is
// computed from, which must then be read by nothing else in the model, and is no larger than
// `maxGrowth` times them: a Transpose of a weight moves the weight; a Slice of an LSTM weight that
// other subgraphs also read would copy it; Expand, Tile or ConstantOfShape into megabytes, or a
// Cast of float16 weights to float32, would grow it. Values over the cap keep their nodes.
import { attr } from '../ir/attribute.js';
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import { nodeOrder } from '../ir/toposort.js';
import type { Pass } from '../pipeline/pass.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { type Evaluation, ancestorsOf, evaluateNodes, renamedTensor } from './util/evaluate-nodes.js';
import { allGraphs, isOp, isRead, subgraphReaders } from './util/graph-queries.js';
import { dropUnusedConstant } from './util/pattern.js';
import { PassResult } from './util/report.js';
import { constantInts, knownShape } from './util/static-info.js';

export interface FoldConstantsOptions {
  /** Folded values up to this many bytes are always written (default 16 KiB). */
  maxBytes?: number;
  /**
   * Larger ones only when the constants they come from become unused and the values written are
   * at most this many times their bytes (default 1: folding never grows the model).
   */
  maxGrowth?: number;
  /** Fold Shape/Size (and Gather of static dims) from declared shapes (default true). */
  foldShapes?: boolean;
}

/** Random ops differ per run; Dropout is random in training mode. */
const NONDETERMINISTIC = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli', 'Dropout']);
/** Domains whose ops onnxruntime implements; others (model functions, custom ops) are left alone. */
const EVALUATED_DOMAINS = new Set(['', 'ai.onnx', 'ai.onnx.ml', 'com.microsoft']);

/** What folding found in one graph. */
interface GraphPlan {
  graph: Graph;
  /** Foldable nodes in dependency order. */
  foldable: Node[];
  producer: Map<string, Node>;
  /** Values computed here from declared shapes (no onnxruntime run needed). */
  known: Map<string, Tensor>;
  /** Constants the foldable nodes read, named as read. */
  constants: Map<string, Tensor>;
  /** Foldable values that something outside the foldable part reads: the ones to write. */
  boundary: string[];
  /** The constants (by name) each foldable value is computed from, for the size cap. */
  sources: Map<string, Set<string>>;
}

export const foldConstants: Pass<FoldConstantsOptions> = {
  name: 'fold-constants',
  description: 'Evaluates nodes whose inputs are all constant (in onnxruntime) and replaces them by their values',
  async run(model, options, ctx) {
    const result = new PassResult(['valuesFolded', 'nodesRemoved', 'constantsRemoved', 'shapeValues', 'ortRuns', 'tooLarge', 'bytesWritten']);
    // Parents first: a subgraph's outer reads are constants only once its parent is folded.
    const byDepth = new Map<number, Graph[]>();
    for (const graph of allGraphs(model.graph)) {
      let depth = 0;
      for (let g = graph.parent; g !== undefined; g = g.parent) depth++;
      byDepth.set(depth, [...(byDepth.get(depth) ?? []), graph]);
    }
    let warnedNoRuntime = false;
    for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
      const plans = (byDepth.get(depth) ?? []).map((g) => planGraph(model, g, options, result)).filter((p): p is GraphPlan => p !== undefined);
      if (ctx.ort === undefined && !warnedNoRuntime && plans.some((p) => p.boundary.some((b) => !p.known.has(b)))) {
        warnedNoRuntime = true;
        result.warn('no-runtime', 'no onnxruntime module in the pass context: only Shape/Size values were folded');
      }
      const values = ctx.ort === undefined ? new Map<string, Tensor>() : await evaluateLevel(ctx.ort, model, plans, result);
      const outer = plans.map((plan) => applyPlan(model, plan, values, options, result));
      dropOuterConstants(plans, outer, result);
    }
    return result.done();
  },
};

/** Why a node with constant inputs is still not folded, or undefined if it can be. */
function cannotFold(node: Node): string | undefined {
  if (!EVALUATED_DOMAINS.has(node.domain)) return `its domain '${node.domain}' is not one onnxruntime implements`;
  if (node.subgraphs().length > 0) return 'it holds subgraphs';
  if (isStandardDomain(node.domain) && NONDETERMINISTIC.has(node.opType)) return 'it is nondeterministic';
  if (/^(Sequence|SplitToSequence|Optional)/.test(node.opType)) return 'its output is not a tensor';
  return undefined;
}

function planGraph(model: Model, graph: Graph, options: FoldConstantsOptions, result: PassResult): GraphPlan | undefined {
  const { order, cycle } = nodeOrder(graph);
  if (cycle.length > 0) {
    result.warn('cycle', `graph '${graph.name}' has a cycle; not folded`, { node: cycle[0].label });
    return undefined;
  }
  const plan: GraphPlan = { graph, foldable: [], producer: new Map(), known: new Map(), constants: new Map(), boundary: [], sources: new Map() };
  const constantOf = (value: string): Tensor | undefined => {
    const cached = plan.constants.get(value);
    if (cached !== undefined) return cached;
    const tensor = constantValue(graph, value);
    if (tensor !== undefined) plan.constants.set(value, renamedTensor(tensor, value));
    return tensor;
  };
  const available = (value: string) => value === '' || plan.producer.has(value) || plan.known.has(value) || constantOf(value) !== undefined;
  const opset = model.opset('') ?? 1;

  for (const node of order) {
    if (node.opType === 'Constant' && isStandardDomain(node.domain)) continue;
    const fromShape = options.foldShapes === false ? undefined : shapeDerivedValue(graph, node, opset);
    if (fromShape !== undefined) {
      plan.known.set(node.outputs[0], fromShape);
      plan.producer.set(node.outputs[0], node);
      plan.sources.set(node.outputs[0], new Set());
      plan.foldable.push(node);
      result.count('shapeValues');
      continue;
    }
    if (!node.inputs.some((v) => v !== '') || !node.inputs.every(available)) continue;
    const why = cannotFold(node);
    if (why !== undefined) {
      result.warn('not-foldable', `node '${node.label}' reads only constants but ${why}`, { node: node.label });
      continue;
    }
    const sources = new Set<string>();
    for (const input of node.inputs) {
      if (input === '') continue;
      const upstream = plan.sources.get(input);
      if (upstream !== undefined) for (const c of upstream) sources.add(c);
      else if (!plan.known.has(input)) sources.add(input);
    }
    for (const out of node.outputs) {
      if (out === '') continue;
      plan.producer.set(out, node);
      plan.sources.set(out, sources);
    }
    plan.foldable.push(node);
  }
  const foldable = new Set(plan.foldable);
  for (const node of plan.foldable) {
    for (const out of node.outputs) {
      if (out === '') continue;
      const readOutside = graph.isGraphOutput(out) || graph.consumers(out).some((c) => !foldable.has(c)) || subgraphReaders(graph, out).length > 0;
      if (readOutside) plan.boundary.push(out);
    }
  }
  return plan.boundary.length > 0 || plan.foldable.length > 0 ? plan : undefined;
}

/**
 * Shape or Size of a value with a declared static shape (or the static part a Shape's start/end
 * selects), or a Gather of static dims out of such a Shape: the value, computed here.
 */
function shapeDerivedValue(graph: Graph, node: Node, opset: number): Tensor | undefined {
  if (!isOp(node, 'Shape', 'Size', 'Gather')) return undefined;
  const name = node.outputs[0];
  if (node.opType === 'Gather') {
    const shapeNode = graph.producer(node.inputs[0]);
    if (!isOp(shapeNode, 'Shape') || node.attrInt('axis', 0) !== 0) return undefined;
    const dims = selectedDims(graph, shapeNode, opset);
    const indices = constantInts(graph, node.inputs[1] ?? '');
    const indexDims = constantValue(graph, node.inputs[1] ?? '')?.dims;
    if (dims === undefined || indices === undefined || indexDims === undefined) return undefined;
    const picked = indices.map((i) => dims[i < 0 ? i + dims.length : i]);
    if (!picked.every((d): d is number => typeof d === 'number')) return undefined;
    return Tensor.fromArray(name, DataType.INT64, [...indexDims], BigInt64Array.from(picked, BigInt));
  }
  const shape = node.opType === 'Size' ? knownShape(graph, node.inputs[0]) : selectedDims(graph, node, opset);
  if (shape === undefined || !shape.every((d): d is number => typeof d === 'number')) return undefined;
  if (node.opType === 'Size') return Tensor.fromArray(name, DataType.INT64, [], new BigInt64Array([BigInt(shape.reduce((a, b) => a * b, 1))]));
  return Tensor.fromArray(name, DataType.INT64, [shape.length], BigInt64Array.from(shape, BigInt));
}

/** The dims a Shape node returns (start/end from opset 15), static or not; undefined if rank unknown. */
function selectedDims(graph: Graph, shapeNode: Node, opset: number): (number | string | null)[] | undefined {
  const shape = knownShape(graph, shapeNode.inputs[0]);
  if (shape === undefined) return undefined;
  if (opset < 15) return shape;
  const rank = shape.length;
  const clamp = (i: number) => Math.min(rank, Math.max(0, i < 0 ? i + rank : i));
  return shape.slice(clamp(shapeNode.attrInt('start', 0)), clamp(shapeNode.attrInt('end', rank)));
}

/** What one graph asks onnxruntime for: its boundary values not already known. */
function evaluationOf(plan: GraphPlan): Evaluation | undefined {
  const outputs = plan.boundary.filter((b) => !plan.known.has(b));
  if (outputs.length === 0) return undefined;
  const producer = new Map([...plan.producer].filter(([value]) => !plan.known.has(value)));
  const nodes = ancestorsOf(plan.foldable, producer, outputs);
  const computed = new Set(nodes.flatMap((n) => n.outputs));
  const inputs = new Map<string, Tensor>();
  for (const node of nodes) {
    for (const input of node.inputs) {
      if (input === '' || computed.has(input) || inputs.has(input)) continue;
      const tensor = plan.known.get(input) ?? plan.constants.get(input);
      if (tensor === undefined) throw new Error(`graph '${plan.graph.name}': folding node '${node.label}' reads '${input}', which is not constant`);
      inputs.set(input, tensor);
    }
  }
  return { nodes, inputs, outputs };
}

/** Adds `next` to `into` (not changing `next`) unless the two use one name for different values. */
function merge(into: Evaluation, next: Evaluation): boolean {
  const defined = new Set(into.nodes.flatMap((n) => n.outputs));
  if (next.nodes.some((n) => n.outputs.some((o) => o !== '' && (defined.has(o) || into.inputs.has(o))))) return false;
  for (const [name, tensor] of next.inputs) {
    const present = into.inputs.get(name);
    if ((present !== undefined && present !== tensor) || defined.has(name)) return false;
  }
  into.nodes.push(...next.nodes);
  for (const [name, tensor] of next.inputs) into.inputs.set(name, tensor);
  into.outputs.push(...next.outputs);
  return true;
}

/** One onnxruntime run for all graphs of a level (split where names clash, retried apart on failure). */
async function evaluateLevel(ort: OrtModule, model: Model, plans: GraphPlan[], result: PassResult): Promise<Map<string, Tensor>> {
  const batches: { evaluation: Evaluation; parts: Evaluation[] }[] = [];
  for (const plan of plans) {
    const evaluation = evaluationOf(plan);
    if (evaluation === undefined) continue;
    const batch = batches.find((b) => merge(b.evaluation, evaluation));
    if (batch !== undefined) batch.parts.push(evaluation);
    else batches.push({ evaluation: { nodes: [...evaluation.nodes], inputs: new Map(evaluation.inputs), outputs: [...evaluation.outputs] }, parts: [evaluation] });
  }
  const values = new Map<string, Tensor>();
  for (const batch of batches) {
    for (const [name, tensor] of await evaluateWithFallback(ort, model, batch.evaluation, batch.parts, result)) values.set(name, tensor);
  }
  return values;
}

/** Runs `evaluation`; if onnxruntime rejects it, runs its parts, then each value alone, and warns. */
async function evaluateWithFallback(ort: OrtModule, model: Model, evaluation: Evaluation, parts: Evaluation[], result: PassResult): Promise<Map<string, Tensor>> {
  try {
    result.count('ortRuns');
    return await evaluateNodes(ort, model, evaluation);
  } catch (error) {
    const values = new Map<string, Tensor>();
    if (parts.length > 1) {
      for (const part of parts) for (const [k, v] of await evaluateWithFallback(ort, model, part, [part], result)) values.set(k, v);
      return values;
    }
    if (evaluation.outputs.length === 1) {
      const first = String(error instanceof Error ? error.message : error).split('\n')[0];
      result.warn('evaluation-failed', `onnxruntime could not compute '${evaluation.outputs[0]}': ${first}`, { tensor: evaluation.outputs[0] });
      return values;
    }
    const producer = new Map(evaluation.nodes.flatMap((n) => n.outputs.map((o): [string, Node] => [o, n])));
    for (const output of evaluation.outputs) {
      const nodes = ancestorsOf(evaluation.nodes, producer, [output]);
      const computed = new Set(nodes.flatMap((n) => n.outputs));
      const inputs = new Map([...evaluation.inputs].filter(([name]) => nodes.some((n) => n.inputs.includes(name)) && !computed.has(name)));
      const single: Evaluation = { nodes, inputs, outputs: [output] };
      for (const [k, v] of await evaluateWithFallback(ort, model, single, [single], result)) values.set(k, v);
    }
    return values;
  }
}

/** The values of `plan` that pass the size cap; warns about the others. */
function acceptedValues(plan: GraphPlan, values: Map<string, Tensor>, options: FoldConstantsOptions, result: PassResult): Map<string, Tensor> {
  const { graph } = plan;
  const maxBytes = options.maxBytes ?? 16 << 10;
  const maxGrowth = options.maxGrowth ?? 1;
  const foldable = new Set(plan.foldable);
  const bytesOf = (names: Iterable<string>) => [...names].reduce((sum, c) => sum + (plan.constants.get(c)?.byteLength ?? 0), 0);
  // A constant of this graph that only foldable nodes read disappears once they are folded.
  const freeable = (c: string, kept: ReadonlySet<Node>) => {
    const local = graph.initializer(c) !== undefined ? !graph.isGraphInput(c) : isOp(graph.producer(c), 'Constant');
    if (!local || graph.isGraphOutput(c) || subgraphReaders(graph, c).length > 0) return false;
    return graph.consumers(c).every((n) => foldable.has(n) && !kept.has(n));
  };

  const rejected = new Map<string, string>();
  for (const value of plan.boundary) if (plan.known.get(value) === undefined && values.get(value) === undefined) rejected.set(value, '');
  const accepted = new Map<string, Tensor>();
  for (let changed = true; changed; ) {
    changed = false;
    accepted.clear();
    const kept = new Set(ancestorsOf(plan.foldable, plan.producer, [...rejected.keys()]));
    const large: string[] = [];
    for (const value of plan.boundary) {
      if (rejected.has(value)) continue;
      const tensor = (plan.known.get(value) ?? values.get(value)) as Tensor;
      if (kept.has(plan.producer.get(value) as Node)) continue;
      if (tensor.byteLength <= maxBytes) {
        accepted.set(value, tensor);
        continue;
      }
      const sources = plan.sources.get(value) ?? new Set<string>();
      const shared = [...sources].filter((c) => !freeable(c, kept));
      let why: string | undefined;
      if (sources.size === 0) why = 'it comes from no constant it could replace';
      else if (shared.length > 0) why = `it would copy '${shared[0]}', which stays in the model`;
      else if (tensor.byteLength > maxGrowth * bytesOf(sources)) why = `it is over ${maxGrowth}x the ${bytesOf(sources)} bytes of constants it comes from`;
      if (why !== undefined) {
        rejected.set(value, `'${value}' (${tensor.byteLength} bytes, over ${maxBytes}) not folded: ${why}`);
        changed = true;
        continue;
      }
      accepted.set(value, tensor);
      large.push(value);
    }
    // Several large values from the same constants (a weight transposed twice) must fit together.
    const written = large.reduce((sum, v) => sum + (accepted.get(v) as Tensor).byteLength, 0);
    const replaced = bytesOf(new Set(large.flatMap((v) => [...(plan.sources.get(v) ?? [])])));
    if (!changed && large.length > 1 && written > maxGrowth * replaced) {
      for (const v of large) rejected.set(v, `'${v}' not folded: the ${large.length} large values of graph '${graph.name}' would take ${written} bytes, over ${maxGrowth}x the ${replaced} bytes they replace`);
      changed = true;
    }
  }
  for (const [value, message] of rejected) {
    if (message === '') continue;
    result.count('tooLarge');
    result.warn('too-large', message, { tensor: value });
  }
  return accepted;
}

/**
 * Writes the values that pass the size cap and removes the nodes no longer needed. Returns the
 * constants of enclosing graphs the removed nodes read, to drop once the whole level is folded.
 */
function applyPlan(model: Model, plan: GraphPlan, values: Map<string, Tensor>, options: FoldConstantsOptions, result: PassResult): string[] {
  const { graph } = plan;
  const folded = acceptedValues(plan, values, options, result);
  const rejected = plan.boundary.filter((v) => !folded.has(v));
  // Nodes computing a value left unfolded stay, with everything they read.
  const kept = new Set(ancestorsOf(plan.foldable, plan.producer, rejected));
  const removed = plan.foldable.filter((n) => !kept.has(n));
  if (removed.length === 0) return [];

  const removedSet = new Set(removed);
  graph.nodes = graph.nodes.filter((n) => !removedSet.has(n));
  graph.changed();
  const constantNodes: Node[] = [];
  for (const [value, tensor] of folded) {
    const named = renamedTensor(tensor, value);
    // Initializers in the main graph (IR 4+: without a graph input); Constant nodes in subgraphs
    // and for graph outputs, which some tools expect a node to produce.
    if (graph.parent === undefined && model.irVersion >= 4 && !graph.isGraphOutput(value)) graph.addInitializer(named);
    else constantNodes.push(new Node({ opType: 'Constant', outputs: [value], name: graph.uniqueName(`${value}_folded`), attributes: [attr.tensor('value', named)] }));
    result.count('valuesFolded');
    result.count('bytesWritten', named.byteLength);
  }
  graph.nodes.unshift(...constantNodes);
  graph.changed();
  result.count('nodesRemoved', removed.length);

  const gone = new Set(removed.flatMap((n) => n.outputs).filter((o) => !folded.has(o)));
  graph.valueInfo = graph.valueInfo.filter((v) => !gone.has(v.name));
  const outer: string[] = [];
  for (const input of new Set(removed.flatMap((n) => n.inputs))) {
    if (input === '') continue;
    if (!graph.definesLocally(input)) outer.push(input);
    if (dropUnusedConstant(graph, input)) result.count('constantsRemoved');
    // A Shape whose static dims were all taken by folded Gathers computes nothing anyone reads.
    const producer = graph.producer(input);
    if (isOp(producer, 'Shape') && !isRead(graph, input)) {
      graph.removeNode(producer);
      result.count('nodesRemoved');
    }
  }
  return outer;
}

/** Drops constants of enclosing graphs that folding left unread (checked in their own scope). */
function dropOuterConstants(plans: GraphPlan[], outer: string[][], result: PassResult): void {
  plans.forEach((plan, i) => {
    for (const name of outer[i] ?? []) {
      const scope = plan.graph.parent?.scopeOf(name);
      if (scope !== undefined && dropUnusedConstant(scope, name)) result.count('constantsRemoved');
    }
  });
}
