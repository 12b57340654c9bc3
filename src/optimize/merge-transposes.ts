// Transpose(Transpose(x, p1), p2) is Transpose(x, q) with q[j] = p1[p2[j]]. The second node is
// rewritten to read x directly; the first goes away once nothing else reads it, and the second
// too when q is the identity. Exporters leave such pairs around reshapes and attention blocks.
import { attr } from '../ir/attribute.js';
import type { Pass } from '../pipeline/pass.js';
import { bypassNode } from './util/bypass.js';
import { allGraphs, isOp, isRead } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

export const mergeTransposesPass: Pass = {
  name: 'merge-transposes',
  description: 'composes consecutive Transposes into one, removing it when the result is the identity',
  run(model) {
    const result = new PassResult(['nodesRemoved', 'transposesMerged']);
    for (const graph of allGraphs(model.graph)) {
      for (const node of [...graph.nodes]) {
        if (!isOp(node, 'Transpose') || !graph.nodes.includes(node)) continue;
        const first = graph.producer(node.inputs[0]);
        if (!isOp(first, 'Transpose')) continue;
        const composed = compose(node.attrInts('perm'), first.attrInts('perm'));
        if (composed === undefined) {
          result.warn('transpose-kept', `Transpose '${node.label}' not merged with '${first.label}': their perms have different lengths`, { node: node.label });
          continue;
        }
        const intermediate = first.outputs[0];
        const source = first.inputs[0];
        const identity = composed.every((p, i) => p === i);
        // An identity pair goes entirely: readers of the second read the first's input.
        const bypassed = identity && bypassNode(graph, node, source, node.outputs[0]) === undefined;
        if (bypassed) {
          result.count('nodesRemoved');
        } else if (composed.length === 0) {
          result.warn('transpose-kept', `Transposes '${first.label}' and '${node.label}' cancel out but could not be removed`, { node: node.label });
          continue;
        } else {
          node.inputs = [source];
          node.setAttribute(attr.ints('perm', composed));
          graph.changed();
        }
        result.count('transposesMerged');
        if (!isRead(graph, intermediate)) {
          graph.removeNode(first);
          graph.valueInfo = graph.valueInfo.filter((v) => v.name !== intermediate);
          result.count('nodesRemoved');
        }
      }
    }
    return result.done();
  },
};

/**
 * The permutation of the pair; a missing perm reverses the axes, so its length comes from the
 * other one. Two missing perms reverse twice: the identity, whatever the rank (given as []).
 */
function compose(second: number[] | undefined, first: number[] | undefined): number[] | undefined {
  if (second === undefined && first === undefined) return [];
  const rank = (second ?? first)?.length as number;
  const reverse = Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const p1 = first ?? reverse;
  const p2 = second ?? reverse;
  if (p1.length !== p2.length) return undefined;
  return p2.map((axis) => p1[axis]);
}
