// Removes nodes whose outputs nothing reads, in every scope. Liveness starts at each graph's
// outputs and walks back through producers; a live node that holds subgraphs also keeps alive
// whatever its subgraphs read from enclosing scopes. Subgraph outputs are all live: an If or
// Loop maps them to its own outputs by position.
import type { Graph } from '../ir/graph.js';
import type { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { PassResult } from './util/report.js';

export const eliminateDeadNodesPass: Pass = {
  name: 'eliminate-dead-nodes',
  description: 'removes nodes whose outputs are never read, in the main graph and every subgraph',
  run(model) {
    const result = new PassResult(['nodesRemoved']);
    removeDead(model.graph, result);
    return result.done();
  },
};

/** Prunes `graph` and the subgraphs of its live nodes; returns nothing, counts into `result`. */
function removeDead(graph: Graph, result: PassResult): void {
  const live = new Set<Node>();
  const pending = graph.outputs.map((o) => o.name);
  const seen = new Set<string>(pending);
  const need = (name: string) => {
    if (name === '' || seen.has(name)) return;
    seen.add(name);
    pending.push(name);
  };
  while (pending.length > 0) {
    const producer = graph.producer(pending.pop() as string);
    if (producer === undefined || live.has(producer)) continue;
    live.add(producer);
    for (const input of producer.inputs) need(input);
    for (const sub of producer.subgraphs()) {
      // Prune the body first, so that what it no longer reads no longer keeps outer nodes alive.
      removeDead(sub, result);
      for (const name of sub.outerReads()) need(name);
    }
  }
  const dead = graph.nodes.filter((n) => !live.has(n));
  if (dead.length === 0) return;
  for (const node of dead) result.count('nodesRemoved', 1 + countNested(node));
  graph.nodes = graph.nodes.filter((n) => live.has(n));
  graph.changed();
}

function countNested(node: Node): number {
  let count = 0;
  for (const sub of node.subgraphs()) for (const _ of sub.allNodes()) count++;
  return count;
}
