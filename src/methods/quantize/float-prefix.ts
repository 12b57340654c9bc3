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

export const floatPrefixReason = (layers: number, macShare?: number): string =>
  macShare === undefined
    ? `float prefix: the first ${layers} weighted layer${layers === 1 ? '' : 's'} and the nodes before the next stay float32 (--float-prefix)`
    : `float prefix: the first ${layers} weighted layer${layers === 1 ? '' : 's'} (${(macShare * 100).toFixed(1)}% of the multiply-accumulates) and the nodes before the next stay float32 (--float-prefix auto, the default; --float-prefix 0 quantizes them)`;

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

/**
 * `--float-prefix auto` (the quantize step's default): the longest prefix whose weighted layers
 * hold at most this share of the model's multiply-accumulates. Each model's prefix was chosen on
 * tuning data (PP-OCRv4 det 7 layers = 9.9%, rec 12 = 11.8%); the share, not a count of layers,
 * is what carries from one to the other (7 of det's 64 layers, 12 of rec's 47), and it bounds
 * what the prefix costs in speed: that part runs at float32 speed. A model whose first layer does
 * most of the work (an MLP) keeps none. Not measured per model: the prefix pays off together with
 * bias correction (rec without it: 2-8 layers read 46-70% of held-out words against 77%, and the
 * output SQNR on calibration lines fell 15.3 -> 9.8 dB), so a cheap measurement without it cannot
 * see the gain, and one with it costs a full calibration per length (NOTES.md, issue 15).
 */
export const FLOAT_PREFIX_MAC_SHARE = 0.12;

/**
 * The longest float prefix (in weighted layers, network order as floatPrefixNodes counts them)
 * whose layers hold at most `maxShare` of the multiply-accumulates `macs` counts, with that share.
 * A layer `macs` does not list (an embedding Gather) counts 0; one it lists without a count (sizes
 * unknown) ends the prefix, since its cost cannot be bounded. The last layer never belongs to it.
 */
export function floatPrefixByMacShare(graph: Graph, macs: ReadonlyMap<Node, number | undefined>, maxShare = FLOAT_PREFIX_MAC_SHARE): { layers: number; macShare: number } {
  const weighted = weightedLayers(graph, nodeOrder(graph).order);
  const total = [...macs.values()].reduce((sum: number, m) => sum + (m ?? 0), 0);
  let chosen = { layers: 0, macShare: 0 };
  if (!(total > 0)) return chosen;
  let kept = 0;
  for (let i = 0; i < weighted.length - 1; i++) {
    const node = weighted[i].node;
    if (macs.has(node) && macs.get(node) === undefined) break;
    kept += macs.get(node) ?? 0;
    if (kept / total > maxShare) break;
    chosen = { layers: i + 1, macShare: kept / total };
  }
  return chosen;
}
