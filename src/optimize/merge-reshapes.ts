// Reshape(Reshape(x, s1), s2) is Reshape(x, s2) when s2 is a constant whose meaning does not
// depend on the intermediate shape: no 0 (which copies a dim of the intermediate, unless allowzero
// is set). A -1 is fine: it is solved from the element count, which x and the intermediate share.
import type { Pass } from '../pipeline/pass.js';
import { allGraphs, isOp, isRead } from './util/graph-queries.js';
import { PassResult } from './util/report.js';
import { constantInts } from './util/static-info.js';

export const mergeReshapesPass: Pass = {
  name: 'merge-reshapes',
  description: 'replaces a Reshape of a Reshape by one Reshape when the second target shape is constant',
  run(model) {
    const result = new PassResult(['nodesRemoved', 'reshapesMerged']);
    const opset = model.opset('') ?? 0;
    for (const graph of allGraphs(model.graph)) {
      for (const node of [...graph.nodes]) {
        if (!isOp(node, 'Reshape') || !graph.nodes.includes(node)) continue;
        const first = graph.producer(node.inputs[0]);
        if (!isOp(first, 'Reshape')) continue;
        // Before opset 5 the target shape is an attribute and always constant.
        const target = opset >= 5 ? constantInts(graph, node.inputs[1] ?? '') : node.attrInts('shape');
        if (target === undefined) {
          result.warn('reshape-kept', `Reshape '${node.label}' not merged: its target shape is computed at run time`, { node: node.label });
          continue;
        }
        if (target.includes(0) && node.attrInt('allowzero', 0) === 0) {
          result.warn('reshape-kept', `Reshape '${node.label}' not merged: a 0 in its target copies a dim of '${first.label}''s output`, { node: node.label });
          continue;
        }
        const intermediate = first.outputs[0];
        node.inputs[0] = first.inputs[0];
        graph.changed();
        result.count('reshapesMerged');
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
