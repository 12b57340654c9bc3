// The quantized layers of a static int8 model, grouped by the kernel onnxruntime runs for them: the
// op type, and for the kinds whose integer kernels differ most from their float ones on a CPU,
// what sets them apart. A depthwise (grouped) QLinearConv has no NCHWc-blocked int8 form; a Conv
// reading the model's input has 3 channels; layers after a global pool (squeeze-and-excitation:
// Conv on [N,C,1,1], the gate's Add) run on 1x1 maps, and the Mul that applies such a gate to a
// full map broadcasts. Latency placement times whole groups in float32: the profile prices one
// layer at a time, but what a float island costs inside a QDQ graph (layout reorders, converts,
// lost fusions) shows only when the model runs, and a group is a handful of models to time.
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { isQuantized } from './fp32-search.js';

/** Layers by group key ('Conv depthwise', 'Conv first', 'Conv pooled', 'Mul broadcast', 'MaxPool', ...). */
export function layerGroups(quantized: Model): Map<string, string[]> {
  const graph = quantized.graph;
  const layers = graph.nodes.filter((n) => n.name !== '' && isQuantized(n, quantized));
  const isLayer = new Set(layers);
  /**
   * Where a value comes from: the layer (or global pool) that computes it, through Q/DQ and the ops
   * quantization leaves alone (a Pad of the input channels, a Relu), or the model input.
   */
  const source = (value: string): Node | 'input' | undefined => {
    let current = value;
    for (let step = 0; step < 6; step++) {
      if (graph.isGraphInput(current)) return 'input';
      const producer = graph.producer(current);
      if (producer === undefined || isLayer.has(producer) || isGlobalPool(producer)) return producer;
      if (producer.inputs.length === 0) return undefined;
      current = producer.inputs[0];
    }
    return undefined;
  };
  // Graph order: a layer's sources are classified before it.
  const pooled = new Set<Node>();
  const groups = new Map<string, string[]>();
  for (const node of layers) {
    // Weights and constants (initializers, DequantizeLinear of one) trace to nothing.
    const sources = node.inputs.filter((v) => v !== '').map(source);
    const fromPool = sources.filter((s): s is Node => s !== undefined && s !== 'input').map((s) => isGlobalPool(s) || pooled.has(s));
    let kind = '';
    if (fromPool.length > 0 && fromPool.every(Boolean)) {
      pooled.add(node);
      kind = 'pooled';
    } else if (fromPool.some(Boolean)) {
      kind = 'broadcast';
    } else if ((node.opType === 'Conv' || node.opType === 'ConvTranspose') && Number(node.attribute('group')?.value ?? 1) > 1) {
      kind = 'depthwise';
    } else if (sources.includes('input')) {
      kind = 'first';
    }
    const key = kind === '' ? node.opType : `${node.opType} ${kind}`;
    groups.set(key, [...(groups.get(key) ?? []), node.name]);
  }
  return groups;
}

function isGlobalPool(node: Node): boolean {
  return node.opType === 'GlobalAveragePool' || node.opType === 'GlobalMaxPool';
}
