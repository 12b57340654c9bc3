// Removes Identity nodes and Dropout nodes that are identities at inference time. Readers of the
// output read the input instead. Identities that must stay: those passing a graph input or an
// enclosing scope's value straight to a graph output (onnxruntime rejects a subgraph output that
// names an outer value, and the main graph's output names are the model's interface).
import { constantValue, isStandardDomain } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { bypassNode } from './util/bypass.js';
import { allGraphs, isRead } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

export const eliminateIdentityPass: Pass = {
  name: 'eliminate-identity',
  description: 'removes Identity and inference-mode Dropout nodes',
  run(model) {
    const result = new PassResult(['nodesRemoved', 'identitiesRemoved', 'dropoutsRemoved']);
    for (const graph of allGraphs(model.graph)) {
      for (const node of [...graph.nodes]) {
        if (!isStandardDomain(node.domain)) continue;
        if (node.opType !== 'Identity' && node.opType !== 'Dropout') continue;
        if (node.opType === 'Dropout') {
          const why = dropoutIsTraining(model, graph, node);
          if (why !== undefined) {
            result.warn('dropout-kept', `Dropout '${node.label}' kept: ${why}`, { node: node.label });
            continue;
          }
        }
        const kept = bypassNode(graph, node, node.inputs[0] ?? '', node.outputs[0]);
        if (kept !== undefined) {
          result.warn(`${node.opType.toLowerCase()}-kept`, `${node.opType} '${node.label}' kept: ${kept}`, { node: node.label });
          continue;
        }
        result.count('nodesRemoved');
        result.count(node.opType === 'Identity' ? 'identitiesRemoved' : 'dropoutsRemoved');
      }
    }
    return result.done();
  },
};

/**
 * Why a Dropout may change its input, or undefined when it is an identity: its mask is unread and
 * it is not in training mode (is_test=1 before opset 7; training_mode absent or constant false
 * from opset 12; always an identity at inference in between).
 */
function dropoutIsTraining(model: Model, graph: Graph, node: Node): string | undefined {
  const mask = node.outputs[1] ?? '';
  if (mask !== '' && isRead(graph, mask)) return `its mask output '${mask}' is read`;
  const opset = model.opset('') ?? 0;
  if (opset < 7 && node.attrInt('is_test', 0) === 0) return 'is_test is 0 (training mode)';
  const trainingMode = node.inputs[2] ?? '';
  if (trainingMode === '') return undefined;
  const value = constantValue(graph, trainingMode);
  if (value === undefined) return `training_mode '${trainingMode}' is computed at run time`;
  if ((value.data() as Uint8Array).some((b) => b !== 0)) return 'training_mode is true';
  return undefined;
}
