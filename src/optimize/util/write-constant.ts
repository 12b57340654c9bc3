// Giving a node new constant inputs (folded weights and biases). A constant that only this node
// reads is overwritten where it lives, keeping its name: an initializer is swapped, a Constant
// node gets a new `value`. A shared one is left to its other readers and the node reads a new
// initializer instead (a new Constant node in the main graph of IR < 4 models, where every
// initializer must also be a graph input).
import { attr } from '../../ir/attribute.js';
import { isStandardDomain } from '../../ir/constants.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import type { Tensor } from '../../ir/tensor.js';
import { onlyReader } from './graph-queries.js';

/** How a constant was written: in place (bytes replaced) or as a new value. */
export type ConstantWrite = 'replaced' | 'added';

/**
 * Makes input `index` of `node` (in `graph`) read `tensor`. `base` names a new value when one is
 * needed. Returns how it was done.
 */
export function writeNodeConstant(model: Model, graph: Graph, node: Node, index: number, tensor: Tensor, base: string): ConstantWrite {
  const current = node.inputs[index] ?? '';
  if (current !== '' && onlyReader(graph, current, node) && node.inputs.filter((n) => n === current).length === 1) {
    const initializerAt = graph.initializers.findIndex((t) => t.name === current);
    if (initializerAt >= 0 && !graph.isGraphInput(current)) {
      tensor.name = current;
      graph.replaceInitializer(initializerAt, tensor);
      return 'replaced';
    }
    const producer = graph.producer(current);
    if (producer !== undefined && producer.opType === 'Constant' && isStandardDomain(producer.domain)) {
      tensor.name = current;
      // value_float(s)/value_int(s) and the rest give way to one tensor-valued `value`.
      producer.attributes = [attr.tensor('value', tensor)];
      return 'replaced';
    }
  }
  tensor.name = graph.uniqueName(base);
  addConstant(model, graph, tensor, node);
  while (node.inputs.length <= index) node.inputs.push('');
  node.inputs[index] = tensor.name;
  graph.changed();
  return 'added';
}

/** Adds `tensor` to `graph` as an initializer, or as a Constant node placed before `before`. */
export function addConstant(model: Model, graph: Graph, tensor: Tensor, before?: Node): void {
  if (graph.parent !== undefined || model.irVersion >= 4) {
    graph.addInitializer(tensor);
    return;
  }
  const at = before === undefined ? 0 : Math.max(0, graph.nodes.indexOf(before));
  graph.addNode(new Node({ opType: 'Constant', outputs: [tensor.name], name: graph.uniqueName(`${tensor.name}_Constant`), attributes: [attr.tensor('value', tensor)] }), at);
}
