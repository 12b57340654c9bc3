// Removes initializers that nothing reads, in every scope. An initializer that is also a graph
// input is a default the caller may override: part of the model's interface, so it stays.
// Unread Constant nodes are dead nodes and go with eliminate-dead-nodes.
import type { Pass } from '../pipeline/pass.js';
import { allGraphs, isRead } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

export const eliminateUnusedInitializersPass: Pass = {
  name: 'eliminate-unused-initializers',
  description: 'removes initializers that no node, graph output or subgraph reads',
  run(model) {
    const result = new PassResult(['initializersRemoved', 'bytesSaved']);
    for (const graph of allGraphs(model.graph)) {
      const unused = graph.initializers.filter((t) => !graph.isGraphInput(t.name) && !isRead(graph, t.name));
      if (unused.length === 0) continue;
      const drop = new Set(unused);
      graph.initializers = graph.initializers.filter((t) => !drop.has(t));
      const names = new Set(unused.map((t) => t.name));
      graph.valueInfo = graph.valueInfo.filter((v) => !names.has(v.name));
      graph.changed();
      for (const tensor of unused) {
        result.count('initializersRemoved');
        result.count('bytesSaved', tensor.byteLength);
      }
    }
    return result.done();
  },
};
