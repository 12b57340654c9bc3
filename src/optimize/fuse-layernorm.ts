// Fuses layer normalization written out as elementwise ops,
//   mean = ReduceMean(x); d = x - mean; var = ReduceMean(d^2); y = d / Sqrt(var + eps) [* gamma + beta]
// (d^2 as Pow(d, 2) or d * d; the division also as d * Reciprocal(...))
// into one LayerNormalization node (PP-OCRv4's recogniser, exported by paddle2onnx at opset 9,
// has five). ONNX added LayerNormalization at opset 17; onnxruntime registered the same op in the
// ai.onnx domain long before (a contrib op, opsets 1-16, CPU and web kernels alike), so an older
// model can use it and still run in onnxruntime-node and -web, though other ONNX tools would reject
// it. Raising the model's opset instead is not safe in general (Squeeze, Slice, Clip, Resize ...
// changed meaning on the way), so below 17 the option `belowOpset17` decides.
import { attr } from '../ir/attribute.js';
import { constantValue } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';
import type { Pass } from '../pipeline/pass.js';
import { allGraphs } from './util/graph-queries.js';
import {
  dropUnusedConstant,
  fusedNode,
  internalValuesPrivate,
  isScalar,
  otherOperand,
  replacePattern,
  scalarConstant,
  soleConsumer,
} from './util/pattern.js';
import { PassResult } from './util/report.js';
import { constantInts, knownElemType, knownShape } from './util/static-info.js';
import { floatTensor, floatValues, isFoldableFloat } from './util/tensor-math.js';
import { addConstant } from './util/write-constant.js';

export interface FuseLayerNormOptions {
  /**
   * Models importing ai.onnx below 17: 'onnxruntime' (default) uses the LayerNormalization that
   * onnxruntime registers for those opsets; 'skip' leaves the patterns alone.
   */
  belowOpset17?: 'onnxruntime' | 'skip';
}

/** The pieces of one matched pattern. */
interface Match {
  nodes: Node[];
  x: string;
  /** The trailing axes normalized, as a count (LayerNormalization's axis is -count). */
  axisCount: number;
  epsilon: number;
  gamma?: string;
  beta?: string;
  result: string;
}

export const fuseLayerNorm: Pass<FuseLayerNormOptions> = {
  name: 'fuse-layernorm',
  description: 'ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div(/Mul/Add) -> LayerNormalization',
  run(model, options) {
    const result = new PassResult(['fused', 'nodesRemoved', 'constantsRemoved']);
    const opset = model.opset('') ?? 1;
    if (opset < 17 && options.belowOpset17 === 'skip') {
      result.warn('opset-below-17', `model imports ai.onnx ${opset}; LayerNormalization is standard from 17 (belowOpset17: 'skip')`);
      return result.done();
    }
    let notedSchema = false;
    for (const graph of allGraphs(model.graph)) {
      for (const anchor of [...graph.nodes]) {
        if (!graph.nodes.includes(anchor) || anchor.opType !== 'ReduceMean' || !(anchor.domain === '' || anchor.domain === 'ai.onnx')) continue;
        const match = matchLayerNorm(graph, anchor, opset);
        if (match === undefined) continue;
        const outcome = fuse(model, graph, match);
        if (typeof outcome === 'string') {
          result.warn('not-fused', `layer norm at '${anchor.label}' left as is: ${outcome}`, { node: anchor.label });
          continue;
        }
        result.count('fused');
        result.count('constantsRemoved', outcome);
        result.count('nodesRemoved', match.nodes.length - 1);
        if (opset < 17 && !notedSchema) {
          notedSchema = true;
          result.warn('onnxruntime-schema', `model imports ai.onnx ${opset}: LayerNormalization uses onnxruntime's pre-17 registration (runs in onnxruntime-node and -web; onnx.checker rejects it)`);
        }
      }
    }
    return result.done();
  },
};

/** ReduceMean axes (attribute before opset 18, second input from 18) and keepdims. */
function reduceAxes(graph: Graph, node: Node, opset: number): number[] | undefined {
  if (node.attrInt('keepdims', 1) !== 1) return undefined;
  const axes = opset >= 18 ? constantInts(graph, node.inputs[1] ?? '') : node.attrInts('axes');
  if (axes === undefined || axes.length === 0) return undefined;
  return axes;
}

/** The number of trailing axes `axes` covers, or undefined if they are not the last ones. */
function trailingCount(graph: Graph, x: string, axes: number[]): number | undefined {
  const rank = knownShape(graph, x)?.length;
  const negative = axes.map((a) => (a < 0 ? a : rank === undefined ? Number.NaN : a - rank));
  if (negative.some(Number.isNaN)) return undefined;
  const sorted = [...new Set(negative)].sort((a, b) => a - b);
  if (sorted.length !== axes.length) return undefined;
  for (let i = 0; i < sorted.length; i++) if (sorted[i] !== i - sorted.length) return undefined;
  return sorted.length;
}

function matchLayerNorm(graph: Graph, mean: Node, opset: number): Match | undefined {
  const x = mean.inputs[0];
  const axes = reduceAxes(graph, mean, opset);
  if (axes === undefined) return undefined;
  const sub = soleConsumer(graph, mean.outputs[0], 'Sub');
  if (sub === undefined || sub.inputs[0] !== x || sub.inputs[1] !== mean.outputs[0]) return undefined;
  const d = sub.outputs[0];
  // d is read twice: squared for the variance and divided by the standard deviation.
  const readers = graph.consumers(d);
  if (readers.length !== 2 || graph.isGraphOutput(d)) return undefined;
  const square = readers.find((n) => (n.opType === 'Pow' && n.inputs[0] === d && isScalar(graph, n.inputs[1], 2)) || (n.opType === 'Mul' && n.inputs[0] === d && n.inputs[1] === d));
  // d / std, or d * Reciprocal(std) as ONNX's own function body for LayerNormalization writes it.
  const div = readers.find((n) => n !== square && ((n.opType === 'Div' && n.inputs[0] === d) || (n.opType === 'Mul' && n.inputs.includes(d))));
  if (square === undefined || div === undefined) return undefined;
  const variance = soleConsumer(graph, square.outputs[0], 'ReduceMean');
  if (variance === undefined) return undefined;
  const axes2 = reduceAxes(graph, variance, opset);
  if (axes2 === undefined || axes2.join() !== axes.join()) return undefined;
  const addEps = soleConsumer(graph, variance.outputs[0], 'Add');
  if (addEps === undefined) return undefined;
  const epsValue = otherOperand(addEps, variance.outputs[0]);
  const epsilon = epsValue === undefined ? undefined : scalarConstant(graph, epsValue);
  if (epsilon === undefined) return undefined;
  const sqrt = soleConsumer(graph, addEps.outputs[0], 'Sqrt');
  if (sqrt === undefined) return undefined;
  const reciprocal = div.opType === 'Mul' ? soleConsumer(graph, sqrt.outputs[0], 'Reciprocal') : undefined;
  const divisor = reciprocal ?? sqrt;
  if (otherOperand(div, d) !== divisor.outputs[0] || div.inputs[0] === div.inputs[1] || soleConsumer(graph, divisor.outputs[0], div.opType) !== div) return undefined;
  if (div.opType === 'Mul' && reciprocal === undefined) return undefined;
  const axisCount = trailingCount(graph, x, axes);
  if (axisCount === undefined) return undefined;

  const nodes = [mean, sub, square, variance, addEps, sqrt, ...(reciprocal === undefined ? [] : [reciprocal]), div];
  let result = div.outputs[0];
  let gamma: string | undefined;
  let beta: string | undefined;
  const mul = soleConsumer(graph, result, 'Mul');
  const scale = mul === undefined ? undefined : otherOperand(mul, result);
  if (mul !== undefined && scale !== undefined && constantValue(graph, scale) !== undefined) {
    nodes.push(mul);
    gamma = scale;
    result = mul.outputs[0];
    const add = soleConsumer(graph, result, 'Add');
    const shift = add === undefined ? undefined : otherOperand(add, result);
    if (add !== undefined && shift !== undefined && constantValue(graph, shift) !== undefined) {
      nodes.push(add);
      beta = shift;
      result = add.outputs[0];
    }
  }
  if (!internalValuesPrivate(graph, nodes, result)) return undefined;
  return { nodes, x, axisCount, epsilon, gamma, beta, result };
}

/**
 * The dims LayerNormalization's Scale and B must have: the normalized (trailing) dims of x, from
 * its declared shape or, failing that, from gamma's own trailing dims.
 */
function normalizedDims(graph: Graph, match: Match): number[] | undefined {
  const shape = knownShape(graph, match.x);
  const trailing = shape?.slice(-match.axisCount);
  if (trailing !== undefined && trailing.length === match.axisCount && trailing.every((d): d is number => typeof d === 'number')) return trailing;
  if (match.gamma === undefined) return undefined;
  const dims = constantValue(graph, match.gamma)?.dims;
  if (dims === undefined || dims.length < match.axisCount) return undefined;
  const own = dims.slice(-match.axisCount);
  // A size-1 dim in gamma may be a broadcast over a larger dim of x: ambiguous without x's shape.
  return own.every((d) => d > 1) ? [...own] : undefined;
}

/**
 * `value` (gamma or beta) as a tensor of exactly `dims`, broadcasting if needed; undefined if it
 * does not broadcast to `dims` alone (it would also change the result's shape or other axes).
 */
function asNormalizedTensor(graph: Graph, value: string, dims: number[], rank: number | undefined): Tensor | undefined {
  const tensor = constantValue(graph, value);
  if (tensor === undefined || !isFoldableFloat(tensor.dataType)) return undefined;
  const own = tensor.dims;
  const lead = own.slice(0, Math.max(0, own.length - dims.length));
  // Leading dims must be 1 and must not raise the rank of the result.
  if (lead.some((d) => d !== 1)) return undefined;
  if (own.length > dims.length && (rank === undefined || own.length > rank)) return undefined;
  const tail = own.slice(own.length - Math.min(own.length, dims.length));
  const offset = dims.length - tail.length;
  if (tail.some((d, i) => d !== 1 && d !== dims[i + offset])) return undefined;
  if (tail.length === dims.length && tail.every((d, i) => d === dims[i]) && own.length === dims.length) return tensor;
  const values = floatValues(tensor);
  const count = dims.reduce((a, b) => a * b, 1);
  const out = new Float64Array(count);
  // Broadcast by walking the output index and mapping it onto the tensor's (right-aligned) dims.
  for (let i = 0; i < count; i++) {
    let rest = i;
    let source = 0;
    let stride = 1;
    for (let axis = dims.length - 1; axis >= 0; axis--) {
      const coordinate = rest % dims[axis];
      rest = Math.floor(rest / dims[axis]);
      const t = axis - offset;
      if (t >= 0) {
        if (tail[t] !== 1) source += coordinate * stride;
        stride *= tail[t];
      }
    }
    out[i] = values[source];
  }
  return floatTensor(`${value}_normalized`, tensor.dataType, dims, out);
}

/**
 * Writes the fused node and returns how many constants it made unused (and removed), or why not
 * when the weights do not fit LayerNormalization.
 */
function fuse(model: Model, graph: Graph, match: Match): number | string {
  const dims = normalizedDims(graph, match);
  if (dims === undefined) return `the normalized dims of '${match.x}' are unknown (no shape for it, no gamma to read them from)`;
  const rank = knownShape(graph, match.x)?.length;
  const elemType = match.gamma !== undefined ? constantValue(graph, match.gamma)?.dataType : knownElemType(graph, match.x);
  if (elemType === undefined || !isFoldableFloat(elemType)) return `the element type of '${match.x}' is unknown or not float`;

  const inputs = [match.x];
  const replaced: string[] = [];
  const scale = match.gamma === undefined ? undefined : asNormalizedTensor(graph, match.gamma, dims, rank);
  if (match.gamma !== undefined && scale === undefined) return `gamma '${match.gamma}' does not broadcast to the normalized dims [${dims.join(',')}] alone`;
  const bias = match.beta === undefined ? undefined : asNormalizedTensor(graph, match.beta, dims, rank);
  if (match.beta !== undefined && bias === undefined) return `beta '${match.beta}' does not broadcast to the normalized dims [${dims.join(',')}] alone`;

  const anchor = match.nodes[0];
  const place = (tensor: Tensor | undefined, original: string | undefined, fallback: () => Tensor): string => {
    if (tensor !== undefined && original !== undefined && tensor.name === original) return original;
    const made = tensor ?? fallback();
    made.name = graph.uniqueName(made.name);
    addConstant(model, graph, made, anchor);
    if (original !== undefined) replaced.push(original);
    return made.name;
  };
  const count = dims.reduce((a, b) => a * b, 1);
  inputs.push(place(scale, match.gamma, () => floatTensor(`${match.x}_ln_scale`, elemType, dims, new Float64Array(count).fill(1))));
  if (bias !== undefined) inputs.push(place(bias, match.beta, () => bias));

  const node = fusedNode(graph, 'LayerNormalization', inputs, [attr.int('axis', -match.axisCount), attr.float('epsilon', match.epsilon)]);
  let dropped = replacePattern(graph, match.nodes, node, match.result);
  for (const value of replaced) if (dropUnusedConstant(graph, value)) dropped++;
  return dropped;
}
