// Orders every graph's nodes so producers come before readers, as ONNX requires. Exported models
// ship unsorted, and folding passes leave renamed producers where they were; this pass runs last.
import { topologicalSort } from '../ir/toposort.js';
import type { Pass } from '../pipeline/pass.js';
import { allGraphs } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

export const topologicalSortPass: Pass = {
  name: 'topological-sort',
  description: 'orders the nodes of every graph so that each comes after the nodes it reads from',
  run(model) {
    const result = new PassResult(['graphsReordered']);
    for (const graph of allGraphs(model.graph)) {
      const before = [...graph.nodes];
      // Subgraphs are visited on their own; sorting one graph at a time counts each exactly once.
      topologicalSort(graph);
      if (graph.nodes.some((node, i) => node !== before[i])) result.count('graphsReordered');
    }
    return result.done();
  },
};
