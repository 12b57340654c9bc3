// "Keep the first and last layers at higher precision": the layers are the main graph's nodes
// that carry a constant weight (Conv, ConvTranspose, MatMul and Gemm with a constant B, Gather on a
// constant table), in network order. The input and output layers of a network are the usual
// places where quantization hurts most (raw pixels or embeddings in, logits out).
import { constantValue } from '../../ir/constants.js';
import { dataTypeInfo } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { nodeOrder } from '../../ir/toposort.js';

/** Weight input position of the op types that count as layers. */
const WEIGHT_INPUT: Record<string, number> = { Conv: 1, ConvTranspose: 1, MatMul: 1, Gemm: 1, Gather: 0 };

/** Names of the first `count` and the last `count` weighted layers (fewer when the model has fewer). */
export function firstAndLastLayers(model: Model, count: number): string[] {
  if (count <= 0) return [];
  const graph = model.graph;
  const layers = nodeOrder(graph).order.filter((node) => isWeightedLayer(node, (name) => constantValue(graph, name)));
  const chosen = [...layers.slice(0, count), ...layers.slice(-count)];
  return [...new Set(chosen.map((n) => n.name).filter((name) => name !== ''))];
}

function isWeightedLayer(node: Node, constant: (name: string) => { dataType: number } | undefined): boolean {
  const index = WEIGHT_INPUT[node.opType];
  if (index === undefined || node.domain !== '') return false;
  const weight = constant(node.inputs[index] ?? '');
  return weight !== undefined && dataTypeInfo(weight.dataType).isFloat;
}

/** An --exclude pattern that matches exactly this node name (regex characters escaped). */
export function exactNamePattern(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}
