// "Keep the first and last layers at higher precision": the layers are the main graph's nodes
// that carry a constant float weight (the weighted-layer table: Conv, ConvTranspose, MatMul, Gemm,
// Gather on a constant table, LSTM/GRU/RNN), in network order. The input and output layers of a
// network are the usual places where quantization hurts most (raw pixels or embeddings in,
// logits out).
import type { Model } from '../../ir/model.js';
import { nodeOrder } from '../../ir/toposort.js';
import { weightedLayers } from '../../graph-edit/weighted-layers.js';

/** Names of the first `count` and the last `count` weighted layers (fewer when the model has fewer). */
export function firstAndLastLayers(model: Model, count: number): string[] {
  if (count <= 0) return [];
  const graph = model.graph;
  const layers = weightedLayers(graph, nodeOrder(graph).order).map((layer) => layer.node);
  const chosen = [...layers.slice(0, count), ...layers.slice(-count)];
  return [...new Set(chosen.map((n) => n.name).filter((name) => name !== ''))];
}

/** An --exclude pattern that matches exactly this node name (regex characters escaped). */
export function exactNamePattern(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}
