// Rewrites a ConvTranspose whose kernel equals its stride (no overlap, no pads) as a 1x1 Conv to
// C_out*k*k channels followed by DepthToSpace (mode CRD): the same values in float, and a Conv
// that static int8 can quantize. onnxruntime has no integer ConvTranspose kernel, so PP-OCRv4 det's
// two head upsamplers (kernel 2, stride 2) stayed float behind a DequantizeLinear.
//
// Why it is exact: with kernel k == stride k and no padding, every output pixel (i*k + a, j*k + b)
// receives exactly one input pixel (i, j) through one kernel tap (a, b):
//   y[n, co, i*k + a, j*k + b] = bias[co] + sum_ci x[n, ci, i, j] * W[ci, co, a, b].
// A 1x1 Conv with W'[co*k*k + a*k + b, ci] = W[ci, co, a, b] and bias'[co*k*k + a*k + b] = bias[co]
// computes those sums as channels, and DepthToSpace CRD moves channel co*k*k + a*k + b to pixel
// (a, b) of block (i, j) in channel co. The same products and sums, only ordered differently.
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { mergeDepthToSpaceChains } from './merge-depth-to-space.js';

/** Rewrites every qualifying ConvTranspose of the main graph but those `keep` names; returns the names of those rewritten. */
export function convTransposesAsConv(model: Model, graph: Graph, keep: (node: Node) => boolean = () => false): string[] {
  // DepthToSpace's CRD mode is from opset 11.
  if ((model.opset('') ?? 1) < 11) return [];
  const rewritten: string[] = [];
  for (const node of [...graph.nodes]) {
    const plan = keep(node) ? undefined : qualifies(graph, node);
    if (plan === undefined) continue;
    const { weight, bias, k } = plan;
    const [cin, cout] = weight.dims;
    const w = weight.data() as Float32Array;
    const m = cout * k * k;
    // W is [cin][cout][a][b], i.e. a [cin, m] matrix with m = co*k*k + a*k + b: W' is its transpose.
    const w1 = new Float32Array(m * cin);
    for (let ci = 0; ci < cin; ci++) for (let j = 0; j < m; j++) w1[j * cin + ci] = w[ci * m + j];
    const base = node.label;
    const weightTensor = Tensor.fromArray(graph.uniqueName(`${base}_as_conv_weight`), DataType.FLOAT, [m, cin, 1, 1], w1);
    addConstant(model, graph, weightTensor, node);
    const inputs = [node.inputs[0], weightTensor.name];
    if (bias !== undefined) {
      const b = bias.data() as Float32Array;
      const b1 = new Float32Array(m);
      for (let co = 0; co < cout; co++) b1.fill(b[co], co * k * k, (co + 1) * k * k);
      const biasTensor = Tensor.fromArray(graph.uniqueName(`${base}_as_conv_bias`), DataType.FLOAT, [m], b1);
      addConstant(model, graph, biasTensor, node);
      inputs.push(biasTensor.name);
    }
    const channels = graph.uniqueName(`${node.outputs[0]}_channels`);
    const at = graph.nodes.indexOf(node);
    const conv = new Node({
      opType: 'Conv',
      inputs,
      outputs: [channels],
      name: graph.uniqueName(`${base}_as_conv`),
      attributes: [attr.ints('kernel_shape', [1, 1])],
    });
    const d2s = new Node({
      opType: 'DepthToSpace',
      inputs: [channels],
      outputs: [node.outputs[0]],
      name: graph.uniqueName(`${base}_depth_to_space`),
      attributes: [attr.int('blocksize', k), attr.string('mode', 'CRD')],
    });
    graph.removeNode(node);
    graph.addNode(conv, at);
    graph.addNode(d2s, at + 1);
    // A Relu after it moves before the DepthToSpace (an elementwise op commutes with a permutation):
    // static int8 then folds it into the Conv's output range, and DepthToSpace moves codes.
    const reader = graph.isGraphOutput(d2s.outputs[0]) ? [] : graph.consumers(d2s.outputs[0]);
    if (reader.length === 1 && reader[0].opType === 'Relu' && isStandardDomain(reader[0].domain)) {
      const relu = reader[0];
      const [before, after] = [d2s.outputs[0], relu.outputs[0]];
      relu.inputs[0] = channels;
      relu.outputs[0] = graph.uniqueName(`${channels}_relu`);
      d2s.inputs[0] = relu.outputs[0];
      d2s.outputs[0] = after;
      graph.removeNode(relu);
      graph.addNode(relu, graph.nodes.indexOf(d2s));
      graph.valueInfo = graph.valueInfo.filter((v) => v.name !== before);
    }
    // The ConvTranspose's own weight and bias, when nothing else reads them.
    for (const old of node.inputs.slice(1)) if (old !== '' && graph.initializer(old) !== undefined && graph.consumers(old).length === 0 && !graph.isGraphOutput(old)) graph.removeInitializer(old);
    rewritten.push(base);
  }
  // Two upsamplers in a row (det's head): one DepthToSpace at the end (merge-depth-to-space.ts).
  if (rewritten.length > 1) mergeDepthToSpaceChains(model, graph);
  return rewritten;
}

/** The weight, bias and block size of a ConvTranspose that is a Conv + DepthToSpace; undefined otherwise. */
function qualifies(graph: Graph, node: Node): { weight: Tensor; bias: Tensor | undefined; k: number } | undefined {
  if (node.opType !== 'ConvTranspose' || !isStandardDomain(node.domain) || node.attrInt('group', 1) !== 1) return undefined;
  if (node.attrInts('output_shape') !== undefined || !['NOTSET', ''].includes(node.attrString('auto_pad', 'NOTSET'))) return undefined;
  const weight = constantValue(graph, node.inputs[1]);
  if (weight === undefined || weight.dataType !== DataType.FLOAT || weight.dims.length !== 4) return undefined;
  const [kh, kw] = weight.dims.slice(2);
  const kernel = node.attrInts('kernel_shape') ?? [kh, kw];
  const strides = node.attrInts('strides') ?? [1, 1];
  const allZero = (v: number[] | undefined) => (v ?? []).every((x) => x === 0);
  const allOne = (v: number[] | undefined) => (v ?? []).every((x) => x === 1);
  if (kh !== kw || kernel[0] !== kh || kernel[1] !== kw || strides[0] !== kh || strides[1] !== kw || kh < 2) return undefined;
  if (!allZero(node.attrInts('pads')) || !allZero(node.attrInts('output_padding')) || !allOne(node.attrInts('dilations'))) return undefined;
  let bias: Tensor | undefined;
  if (node.inputs.length > 2 && node.inputs[2] !== '') {
    bias = constantValue(graph, node.inputs[2]);
    if (bias === undefined || bias.dataType !== DataType.FLOAT) return undefined;
  }
  return { weight, bias, k: kh };
}
