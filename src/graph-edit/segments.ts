// A deep model cut into consecutive pieces that run on their own: after the nodes (in topological
// order) of a decoder layer, the only activation still needed later is the residual stream, so
// the model up to there and the model after it are two graphs joined by that one value. GPTQ on
// a model too large to load (a 28 GB decoder) calibrates one piece at a time, each fed with the
// outputs of the pieces before it (methods/prune/segmented-rounds.ts).
//
// Cuts go where the fewest activations are live (produced before, read after: graph inputs,
// initializers and Constant nodes do not count, every piece can have those), but only after a
// piece holds at least one of the nodes that matter (`isLayer`): a decoder's residual stream cuts
// it into attention and MLP halves; a model without such narrow points is one piece.
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { nodeOrder, nodeReads } from '../ir/toposort.js';
import { makeValueInfo } from '../ir/value-info.js';
import type { ValueInfoProto } from '../onnx/onnx_pb.js';

export interface Segment {
  /** The piece's nodes, in topological order. */
  nodes: Node[];
  /** Activations made by earlier pieces that this one reads (graph inputs not included). */
  inputs: string[];
  /** Activations this piece makes that later pieces or the graph outputs read. */
  outputs: string[];
  /** Graph inputs the piece reads. */
  graphInputs: string[];
}

/** The main graph of `model` in pieces (see the file comment). */
export function graphSegments(model: Model, isLayer: (node: Node) => boolean): Segment[] {
  const graph = model.graph;
  const order = nodeOrder(graph).order;
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const constant = (name: string) => graph.initializer(name) !== undefined || graphInputs.has(name) || graph.producer(name)?.opType === 'Constant';
  const position = new Map(order.map((n, i) => [n, i]));
  // Where each activation is read last (graph outputs: past the end).
  const lastUse = new Map<string, number>();
  for (const [i, node] of order.entries()) for (const name of nodeReads(node)) if (!constant(name)) lastUse.set(name, i);
  for (const output of graph.outputs) lastUse.set(output.name, order.length);
  // live[i]: activations alive across the cut after node i.
  const live: number[] = [];
  let count = 0;
  const ending = new Map<number, number>();
  for (const [name, last] of lastUse) if (graph.producer(name) !== undefined) ending.set(last, (ending.get(last) ?? 0) + 1);
  for (const [i, node] of order.entries()) {
    if (node.opType !== 'Constant') for (const out of node.outputs) if (out !== '' && (lastUse.get(out) ?? -1) > i) count++;
    count -= ending.get(i) ?? 0;
    live.push(count);
  }
  // The narrowest point after the first layer, the last node excluded.
  const firstLayer = order.findIndex(isLayer);
  let narrowest = Infinity;
  for (let i = Math.max(0, firstLayer); i < order.length - 1; i++) narrowest = Math.min(narrowest, live[i]);
  const pieces: Node[][] = [];
  let current: Node[] = [];
  let hasLayer = false;
  for (const [i, node] of order.entries()) {
    current.push(node);
    hasLayer ||= isLayer(node);
    if (hasLayer && live[i] <= narrowest && i < order.length - 1) {
      pieces.push(current);
      current = [];
      hasLayer = false;
    }
  }
  if (current.length > 0) pieces.push(current);
  // Constant nodes go to every piece that reads them.
  const constants = order.filter((n) => n.opType === 'Constant');
  return pieces.map((nodes) => {
    const own = new Set(nodes.filter((n) => n.opType !== 'Constant'));
    const made = new Set([...own].flatMap((n) => n.outputs));
    const reads = new Set([...own].flatMap((n) => [...nodeReads(n)]));
    const last = Math.max(...[...own].map((n) => position.get(n) ?? 0));
    const needed = constants.filter((c) => c.outputs.some((o) => reads.has(o)));
    return {
      nodes: [...needed, ...own],
      inputs: [...reads].filter((name) => !made.has(name) && !constant(name)),
      outputs: [...made].filter((name) => (lastUse.get(name) ?? -1) > last),
      graphInputs: [...reads].filter((name) => graphInputs.has(name)),
    };
  });
}

/**
 * The piece as a model of its own: its nodes (copies), the initializers they read (sharing their
 * bytes: external data stays where it is), the activations it reads as inputs of type `types`
 * (from the values that will feed it), the graph inputs it reads, and its outputs (plus `extra`).
 */
export function segmentModel(model: Model, segment: Segment, types: (name: string) => ValueInfoProto): Model {
  const source = model.graph;
  const sub = new Model(new Graph(`${source.name}-segment`), { irVersion: model.irVersion, opsetImports: model.opsetImports.map((o) => ({ ...o })) });
  const graph = sub.graph;
  graph.spill = source.spill;
  const reads = new Set(segment.nodes.flatMap((n) => [...nodeReads(n)]));
  graph.initializers = source.initializers.filter((t) => reads.has(t.name)).map((t) => t.clone());
  graph.nodes = segment.nodes.map((n) => n.clone(graph));
  graph.inputs = [...source.inputs.filter((i) => segment.graphInputs.includes(i.name)), ...segment.inputs.map(types)];
  graph.outputs = segment.outputs.map((name) => source.outputs.find((o) => o.name === name) ?? makeValueInfo(name));
  const ends = new Set([...graph.inputs, ...graph.outputs].map((v) => v.name));
  graph.valueInfo = source.valueInfo.filter((v) => reads.has(v.name) && !ends.has(v.name));
  graph.changed();
  return sub;
}
