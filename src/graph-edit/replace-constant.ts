// Giving a constant new contents on behalf of some of its readers. When those readers are all
// there are, the constant is replaced where it lives (an initializer swapped, a Constant node's
// `value` rewritten), keeping its name; when other nodes read it too, the given readers get a
// copy under a new name and the others keep the original.
import { attr } from '../ir/attribute.js';
import { isStandardDomain } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';
import { addConstant } from '../optimize/util/write-constant.js';

/** One read of the constant: input `input` of `node`, a node of `graph`. */
export interface ConstantReader {
  graph: Graph;
  node: Node;
  input: number;
}

/** Every node reading `name` in `scope` and the subgraphs below it. */
export function constantReaders(scope: Graph, name: string): Node[] {
  return [...scope.allNodes()].filter((e) => e.node.inputs.includes(name)).map((e) => e.node);
}

/**
 * Makes `readers` of constant `name` (defined in `scope`) read `tensor`. Returns the name they
 * read now: `name` when replaced in place, a new one when the constant is shared with others.
 */
export function replaceConstant(model: Model, scope: Graph, name: string, tensor: Tensor, readers: readonly ConstantReader[]): string {
  const ours = new Set(readers.map((r) => r.node));
  const shared = constantReaders(scope, name).some((n) => !ours.has(n)) || scope.isGraphOutput(name) || scope.isGraphInput(name);
  if (!shared) {
    tensor.name = name;
    const at = scope.initializers.findIndex((t) => t.name === name);
    if (at >= 0) {
      scope.replaceInitializer(at, tensor);
      return name;
    }
    const producer = scope.producer(name);
    if (producer !== undefined && producer.opType === 'Constant' && isStandardDomain(producer.domain)) {
      producer.attributes = [attr.tensor('value', tensor)];
      return name;
    }
  }
  tensor.name = scope.uniqueName(`${name}_pruned`);
  addConstant(model, scope, tensor);
  for (const r of readers) {
    r.node.inputs[r.input] = tensor.name;
    r.graph.changed();
  }
  scope.changed();
  return tensor.name;
}
