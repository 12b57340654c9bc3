// Deriving a smaller student by removing whole layers (DistilBERT's every-other-layer init, a
// ResNet with blocks taken out). A named node is removed in one of two ways:
//   - an Add that closes a residual block (one input is on the path of the other: y = x + f(x)):
//     readers of y read x instead, and the branch f, read by nothing else, goes;
//   - any other node whose (first non-constant) input and output have the same type and shape:
//     readers of its output read its input.
// Either way the graph stays valid: what replaces a value has its shape. Nodes and constants
// left unread are removed after. Names that match nothing, Adds of two parallel branches and
// layers that change shapes are refused with a one-line error naming the node.
import { constantValue } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import type { Dim, TensorType } from '../ir/value-info.js';
import { eliminateDeadNodesPass } from '../optimize/eliminate-dead-nodes.js';
import { eliminateUnusedInitializersPass } from '../optimize/eliminate-unused-initializers.js';
import { inferShapes } from '../optimize/shape-inference/index.js';

export interface DroppedLayer {
  node: string;
  op: string;
  /** 'residual': a residual block's branch went with its Add; 'layer': the node alone. */
  kind: 'residual' | 'layer';
  /** The value its readers read now. */
  kept: string;
}

export interface DropLayersResult {
  dropped: DroppedLayer[];
  /** Nodes removed in all, the named ones and what only they read. */
  nodesRemoved: number;
}

/** True when `ancestor` is `value` or is on the path that computes `value` in `graph`. */
function feeds(graph: Graph, ancestor: string, value: string): boolean {
  const seen = new Set<string>();
  const pending = [value];
  while (pending.length > 0) {
    const name = pending.pop() as string;
    if (name === ancestor) return true;
    if (seen.has(name)) continue;
    seen.add(name);
    const producer = graph.producer(name);
    if (producer !== undefined) pending.push(...producer.inputs.filter((n) => n !== ''));
  }
  return false;
}

const formatShape = (type: TensorType | undefined) => (type?.shape === undefined ? '[unknown]' : `[${type.shape.map((d: Dim) => d ?? '?').join(',')}]`);

function sameType(a: TensorType | undefined, b: TensorType | undefined): boolean {
  if (a?.shape === undefined || b?.shape === undefined || a.elemType !== b.elemType || a.shape.length !== b.shape.length) return false;
  return a.shape.every((d, i) => d !== null && d === b.shape?.[i]);
}

/**
 * Removes the main-graph nodes named in `names` from `model` (changed in place), as described
 * above. `inputShapes` fixes symbolic input dims for the shape check. Throws before changing
 * anything when a name cannot be dropped.
 */
export function dropLayers(model: Model, names: readonly string[], options: { inputShapes?: Record<string, Dim[]> } = {}): DropLayersResult {
  const graph = model.graph;
  const types = inferShapes(model, { inputShapes: options.inputShapes }).main;
  const plan: { node: Node; kind: DroppedLayer['kind']; kept: string }[] = [];
  for (const name of names) {
    const node = graph.nodes.find((n) => n.name === name);
    if (node === undefined) {
      const sample = graph.nodes.filter((n) => n.name !== '').slice(0, 3).map((n) => `'${n.name}'`).join(', ');
      throw new Error(`prune: --drop-layers '${name}': the main graph has no node of that name (names look like ${sample || 'nothing: its nodes are unnamed'})`);
    }
    if (plan.some((p) => p.node === node)) throw new Error(`prune: --drop-layers names '${name}' twice`);
    const output = node.outputs[0];
    const data = node.inputs.filter((n) => n !== '' && constantValue(graph, n) === undefined);
    if (node.opType === 'Add' && data.length === 2) {
      const [a, b] = data;
      const skip = feeds(graph, a, b) ? a : feeds(graph, b, a) ? b : undefined;
      if (skip === undefined) throw new Error(`prune: --drop-layers '${name}' (Add): not a residual block: neither input '${a}' nor '${b}' is on the other's path`);
      if (!sameType(types.get(skip), types.get(output))) throw new Error(`prune: --drop-layers '${name}' (Add): its skip input '${skip}' is ${formatShape(types.get(skip))} and its output ${formatShape(types.get(output))}: dropping the block would change shapes`);
      plan.push({ node, kind: 'residual', kept: skip });
      continue;
    }
    if (data.length === 0) throw new Error(`prune: --drop-layers '${name}' (${node.opType}): it reads no value to pass on`);
    if (node.outputs.filter((o) => o !== '').length !== 1) throw new Error(`prune: --drop-layers '${name}' (${node.opType}): it has ${node.outputs.length} outputs; only single-output layers can be dropped`);
    const input = data[0];
    if (!sameType(types.get(input), types.get(output))) {
      throw new Error(`prune: --drop-layers '${name}' (${node.opType}): its input '${input}' is ${formatShape(types.get(input))} and its output '${output}' ${formatShape(types.get(output))}: dropping it would change shapes (name layers whose input and output shapes agree, or the Add closing a residual block)`);
    }
    plan.push({ node, kind: 'layer', kept: input });
  }
  const before = graph.nodes.length;
  const dropped: DroppedLayer[] = [];
  for (const { node, kind, kept } of plan) {
    const output = node.outputs[0];
    // A graph output keeps its name: an Identity passes the kept value on.
    if (graph.isGraphOutput(output)) {
      graph.removeNode(node);
      graph.addNode(new Node({ opType: 'Identity', inputs: [kept], outputs: [output], name: graph.uniqueName(`${node.name}_dropped`), attributes: [] }));
    } else {
      graph.replaceAllUses(output, kept);
    }
    // Later plans may keep this node's output: they read what it passed on.
    for (const p of plan) if (p.kept === output) p.kept = kept;
    dropped.push({ node: node.name, op: node.opType, kind, kept });
  }
  graph.changed();
  eliminateDeadNodesPass.run(model, {}, {});
  eliminateUnusedInitializersPass.run(model, {}, {});
  return { dropped, nodesRemoved: before - graph.nodes.length + plan.filter((p) => graph.isGraphOutput(p.node.outputs[0])).length };
}
