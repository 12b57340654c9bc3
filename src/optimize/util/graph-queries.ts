// Questions the clean-up and folding passes ask about values: who reads them (nodes of the graph,
// the graph's outputs, or subgraphs reading them as outer-scope values), and which graphs a model
// holds. A value is only safe to rewrite when every one of those readers has been accounted for.
import { isStandardDomain } from '../../ir/constants.js';
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';

/** Every graph of the model, parents before their subgraphs. */
export function allGraphs(root: Graph): Graph[] {
  const graphs: Graph[] = [];
  root.visit((g) => graphs.push(g));
  return graphs;
}

/** Nodes of all scopes together: the number reports compare before and after. */
export function totalNodes(root: Graph): number {
  let count = 0;
  for (const _ of root.allNodes()) count++;
  return count;
}

/** Nodes of `graph` whose subgraphs read `value` from this graph or an enclosing one. */
export function subgraphReaders(graph: Graph, value: string): Node[] {
  const readers: Node[] = [];
  for (const node of graph.nodes) {
    const subs = node.subgraphs();
    if (subs.length > 0 && subs.some((sub) => sub.outerReads().has(value))) readers.push(node);
  }
  return readers;
}

/** True if anything in `graph` reads `value`: a node, a graph output, or a subgraph. */
export function isRead(graph: Graph, value: string): boolean {
  return graph.consumers(value).length > 0 || graph.isGraphOutput(value) || subgraphReaders(graph, value).length > 0;
}

/** True if `node` is the only reader of `value` in `graph` (no output, no subgraph reads it). */
export function onlyReader(graph: Graph, value: string, node: Node): boolean {
  const consumers = graph.consumers(value);
  return consumers.length === 1 && consumers[0] === node && !graph.isGraphOutput(value) && subgraphReaders(graph, value).length === 0;
}

/** A standard-domain node of one of `opTypes`. */
export function isOp(node: Node | undefined, ...opTypes: string[]): node is Node {
  return node !== undefined && isStandardDomain(node.domain) && opTypes.includes(node.opType);
}

/** Drops value_info entries of values the graph no longer defines (they would mislead readers). */
export function pruneValueInfo(graph: Graph): number {
  const before = graph.valueInfo.length;
  graph.valueInfo = graph.valueInfo.filter((v) => graph.definesLocally(v.name));
  return before - graph.valueInfo.length;
}
