// Removes Casts that change nothing: a Cast to the type its input already has, and the first
// Cast of a pair whose first step widened exactly (float16 -> float32 -> float16 becomes the
// original float16 value; float16 -> float32 -> float64 becomes one Cast). Precision conversion
// leaves such chains where converted and kept regions meet; exported models often carry them too.

import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import { bypassNode } from '../../optimize/util/bypass.js';
import { allGraphs, isOp, isRead } from '../../optimize/util/graph-queries.js';

/** Conversions that keep every value exactly, so a Cast after them may read their input instead. */
const EXACT_WIDENING: ReadonlySet<string> = new Set(
  [
    [DataType.FLOAT16, DataType.FLOAT],
    [DataType.FLOAT16, DataType.DOUBLE],
    [DataType.BFLOAT16, DataType.FLOAT],
    [DataType.BFLOAT16, DataType.DOUBLE],
    [DataType.FLOAT, DataType.DOUBLE],
  ].map(([from, to]) => `${from}>${to}`),
);

/** The element type of a value as seen from a graph, or undefined when unknown. */
export type TypeOf = (graph: Graph, value: string) => number | undefined;

/** Removes redundant Casts in `root` and its subgraphs; returns how many were removed. */
export function removeRedundantCasts(root: Graph, typeOf: TypeOf): number {
  let removed = 0;
  for (const graph of allGraphs(root)) {
    let again = true;
    while (again) {
      again = false;
      for (const node of [...graph.nodes]) {
        if (!isOp(node, 'Cast') || !graph.nodes.includes(node)) continue;
        if (skipExactWidening(graph, node, typeOf)) again = true;
        const input = node.inputs[0];
        if (typeOf(graph, input) === node.attrInt('to') && bypassNode(graph, node, input, node.outputs[0]) === undefined) {
          removed++;
          again = true;
        }
      }
      for (const node of [...graph.nodes]) {
        if (isOp(node, 'Cast') && !isRead(graph, node.outputs[0])) {
          graph.removeNode(node);
          removed++;
          again = true;
        }
      }
    }
  }
  return removed;
}

/** Cast(Cast(x)) where the inner Cast widened x exactly: the outer one reads x. */
function skipExactWidening(graph: Graph, node: Node, typeOf: TypeOf): boolean {
  const producer = graph.producer(node.inputs[0]);
  if (!isOp(producer, 'Cast')) return false;
  const source = producer.inputs[0];
  const from = typeOf(graph, source);
  if (from === undefined || !EXACT_WIDENING.has(`${from}>${producer.attrInt('to')}`)) return false;
  node.inputs[0] = source;
  graph.changed();
  return true;
}
