// Removing a node whose output equals one of its inputs (Identity, a no-op Cast, an identity
// Transpose, ...). Readers are pointed at the input. When the output is a graph output its name
// must survive (the main graph's outputs are the model's interface; a subgraph output that names
// an enclosing value is rejected by onnxruntime), so instead the input's producer is renamed to
// produce the output directly, which is only possible when that producer is a node of this graph.
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import { subgraphReaders } from './graph-queries.js';

/**
 * Removes `node`, whose `output` carries the same value as `input`. Returns undefined when done,
 * or why the node had to stay.
 */
export function bypassNode(graph: Graph, node: Node, input: string, output: string): string | undefined {
  if (input === '') return 'its input is omitted';
  if (!graph.isGraphOutput(output)) {
    graph.removeNode(node);
    graph.replaceAllUses(output, input);
    graph.valueInfo = graph.valueInfo.filter((v) => v.name !== output);
    graph.changed();
    return undefined;
  }
  const producer = graph.producer(input);
  if (producer === undefined) {
    const where = graph.isGraphInput(input) ? 'a graph input' : graph.initializer(input) !== undefined ? 'an initializer' : 'a value of an enclosing graph';
    return `its output '${output}' is a graph output and its input '${input}' is ${where}`;
  }
  if (graph.isGraphOutput(input)) return `its input '${input}' and its output '${output}' are both graph outputs`;
  // Subgraph readers would have to be renamed too; replaceAllUses does that, but a subgraph that
  // defines a value named like the output would shadow it, so keep it simple and refuse.
  if (subgraphReaders(graph, output).length > 0) return `subgraphs read its output '${output}'`;
  graph.removeNode(node);
  producer.outputs = producer.outputs.map((o) => (o === input ? output : o));
  graph.replaceAllUses(input, output);
  // The output's own entry carries the type now; an entry for the old name would describe nothing.
  graph.valueInfo = graph.valueInfo.filter((v) => v.name !== input);
  graph.changed();
  return undefined;
}
