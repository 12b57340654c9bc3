// Multiply-accumulates of one inference, counted from inferred shapes: the layers that dominate
// (Conv, ConvTranspose, MatMul, Gemm), in every graph including If/Loop bodies (a body counted
// once). Structured pruning shrinks this; unstructured and N:M leave it unchanged, since
// onnxruntime runs zeros like any other weight.
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import type { Dim } from '../../ir/value-info.js';
import { inferShapes } from '../../optimize/shape-inference/index.js';

export interface MacCount {
  /** MACs of the layers whose sizes are known. */
  macs: number;
  /** Layers whose sizes could not be counted (their MACs are not in `macs`). */
  unknown: string[];
  /** Layers counted. */
  layers: number;
}

const staticProduct = (dims: readonly Dim[] | undefined): number | undefined =>
  dims === undefined ? undefined : dims.reduce<number | undefined>((p, d) => (p === undefined || typeof d !== 'number' ? undefined : p * d), 1);

/** MACs of `model` for inputs of `inputShapes` (default: the declared shapes). */
export function countMacs(model: Model, inputShapes?: Record<string, Dim[]>): MacCount {
  let total = 0;
  let layers = 0;
  const unknown: string[] = [];
  for (const [node, macs] of macsPerLayer(model, inputShapes)) {
    if (macs === undefined) unknown.push(node.label);
    else {
      total += macs;
      layers++;
    }
  }
  return { macs: total, unknown, layers };
}

/**
 * MACs of each Conv, ConvTranspose, MatMul and Gemm of `model` (every graph, a body counted once),
 * undefined where the sizes are not known, in the order the graphs list them.
 */
export function macsPerLayer(model: Model, inputShapes?: Record<string, Dim[]>): Map<Node, number | undefined> {
  const shapes = inferShapes(model, { inputShapes });
  const result = new Map<Node, number | undefined>();
  for (const { node, graph } of model.graph.allNodes()) {
    if (!['Conv', 'ConvTranspose', 'MatMul', 'Gemm'].includes(node.opType)) continue;
    const dims = (name: string) => {
      for (let g: typeof graph | undefined = graph; g !== undefined; g = g.parent) {
        const t = shapes.types.get(g)?.get(name);
        if (t !== undefined) return t.shape;
      }
      return undefined;
    };
    const x = dims(node.inputs[0]);
    const w = dims(node.inputs[1]);
    const y = dims(node.outputs[0]);
    let macs: number | undefined;
    if (node.opType === 'Conv' && w !== undefined) {
      // Each output element sums C/group * kernel products.
      const perOutput = staticProduct(w.slice(1));
      const outputs = staticProduct(y);
      macs = perOutput === undefined || outputs === undefined ? undefined : perOutput * outputs;
    } else if (node.opType === 'ConvTranspose' && w !== undefined) {
      // Each input element is scattered over M/group * kernel outputs.
      const perInput = staticProduct(w.slice(1));
      const inputs = staticProduct(x);
      macs = perInput === undefined || inputs === undefined ? undefined : perInput * inputs;
    } else if (x !== undefined && x.length > 0) {
      const transA = node.opType === 'Gemm' && node.attrInt('transA', 0) !== 0;
      const k = transA ? x[0] : x[x.length - 1];
      const outputs = staticProduct(y);
      macs = typeof k !== 'number' || outputs === undefined ? undefined : k * outputs;
    }
    result.set(node, macs);
  }
  return result;
}
