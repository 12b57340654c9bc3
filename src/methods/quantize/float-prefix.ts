// Keeps the start of a network in float32: the first N weighted layers (Conv, MatMul, Gemm, ...)
// and every node before the next one, in network order, so that none of their activations is
// quantized either. Excluding the layers alone would not do: the activations between them would
// still be rounded to 8 bits, and those are what hurts. Why the start: its activations see the
// raw input, so their ranges move most with what the calibration samples happen to show (a dark
// page widens them), and their rounding noise passes through the whole network. PP-OCRv4 det
// (static int8, 7 sets of 4 calibration pages): its first 7 layers float (those at 1/2 and 1/4
// resolution) took held-out text-mask IoU from 0.927-0.960 to 0.970-0.983, at 2.17x float32 at
// 1 thread (bench det-calibration-sets, quantize-static); PP-OCRv4 rec with 12: 96.75% of held-out
// words against 77.24% (bench rec-float-prefix).
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import { nodeOrder } from '../../ir/toposort.js';
import { weightedLayers } from '../../graph-edit/weighted-layers.js';

export const floatPrefixReason = (layers: number): string => `float prefix: the first ${layers} weighted layer${layers === 1 ? '' : 's'} and the nodes before the next stay float32 (--float-prefix)`;

/**
 * The nodes of `graph` (main graph) that a float prefix of `layers` weighted layers keeps float:
 * in network order, everything before the (layers + 1)-th weighted layer (everything, when the
 * model has no more). Constant nodes are left out: they hold no activation.
 */
export function floatPrefixNodes(graph: Graph, layers: number): Node[] {
  if (!Number.isInteger(layers) || layers < 0) throw new Error(`static-int8: float prefix must be a whole number of layers >= 0, got ${layers}`);
  if (layers === 0) return [];
  const order = nodeOrder(graph).order;
  const weighted = weightedLayers(graph, order);
  const end = layers < weighted.length ? order.indexOf(weighted[layers].node) : order.length;
  return order.slice(0, end).filter((node) => node.opType !== 'Constant');
}
