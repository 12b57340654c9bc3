// Constant nodes become initializers of the graph that holds them (subgraph initializers are valid
// ONNX and onnxruntime reads them), which drops a node per weight and lets the writer move big
// tensors to external data. The inverse, initializers-to-constants, serves runtimes and tools that
// want every weight in the node list. Tensor bytes move as they are, without a copy.
import { attr } from '../ir/attribute.js';
import { constantNodeValue, isStandardDomain } from '../ir/constants.js';
import { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { allGraphs } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

export const constantsToInitializersPass: Pass = {
  name: 'constants-to-initializers',
  description: 'turns Constant nodes into initializers, in the main graph and in subgraphs',
  run(model) {
    const result = new PassResult(['nodesRemoved', 'initializersAdded']);
    if (model.irVersion < 4) {
      // Before IR 4 every initializer had to be listed as a graph input, i.e. overridable.
      result.warn('ir-version', `IR version ${model.irVersion} < 4: initializers would become graph inputs; Constant nodes kept`);
      return result.done();
    }
    for (const graph of allGraphs(model.graph)) {
      const converted = new Set<Node>();
      for (const node of graph.nodes) {
        if (node.opType !== 'Constant' || !isStandardDomain(node.domain)) continue;
        const output = node.outputs[0] ?? '';
        if (output === '') continue;
        if (graph.isGraphOutput(output)) {
          result.warn('constant-output', `Constant '${node.label}' kept: its value '${output}' is a graph output`, { node: node.label, tensor: output });
          continue;
        }
        if (node.attribute('sparse_value') !== undefined) {
          result.warn('sparse-constant', `Constant '${node.label}' kept: a sparse value would grow when stored dense`, { node: node.label, tensor: output });
          continue;
        }
        const tensor = constantNodeValue(node);
        tensor.name = output;
        graph.initializers.push(tensor);
        converted.add(node);
        result.count('nodesRemoved');
        result.count('initializersAdded');
      }
      if (converted.size === 0) continue;
      graph.nodes = graph.nodes.filter((n) => !converted.has(n));
      graph.changed();
    }
    return result.done();
  },
};

export const initializersToConstantsPass: Pass = {
  name: 'initializers-to-constants',
  description: 'turns initializers (not graph inputs) into Constant nodes, the inverse of constants-to-initializers',
  run(model) {
    const result = new PassResult(['nodesAdded', 'initializersRemoved']);
    for (const graph of allGraphs(model.graph)) {
      const keep = graph.initializers.filter((t) => graph.isGraphInput(t.name) || t.isExternal);
      for (const tensor of graph.initializers) {
        if (tensor.isExternal) {
          // onnxruntime reads external data for initializers only, never for attribute tensors.
          result.warn('external-initializer', `initializer '${tensor.name}' kept: its data is external`, { tensor: tensor.name });
        }
      }
      const moved = graph.initializers.filter((t) => !keep.includes(t));
      if (moved.length === 0) continue;
      const constants = moved.map(
        (tensor) => new Node({ opType: 'Constant', outputs: [tensor.name], name: graph.uniqueName(`${tensor.name}_Constant`), attributes: [attr.tensor('value', tensor)] }),
      );
      graph.initializers = keep;
      graph.nodes = [...constants, ...graph.nodes];
      graph.changed();
      result.count('nodesAdded', constants.length);
      result.count('initializersRemoved', constants.length);
    }
    return result.done();
  },
};
