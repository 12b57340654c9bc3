// DepthToSpace(k1) -> 1x1 Conv -> DepthToSpace(k2), all CRD, becomes 1x1 Conv' -> DepthToSpace(k1*k2):
// the Conv moves before the first DepthToSpace (a 1x1 Conv mixes the channels of one pixel, and the
// first DepthToSpace only moves channels to pixels), and the two moves become one. PP-OCRv4 det's head
// has two ConvTranspose k2 s2 in a row (convtranspose-as-conv.ts makes each a 1x1 Conv +
// DepthToSpace): its first DepthToSpace moved 2.4M values at 320x320 (4.2 ms with the second in
// onnxruntime, a 6-D transpose), and the second Conv ran at 320x320 instead of 160x160.
//
// The algebra, with K = k1*k2 and the CRD channel order c*k*k + a*k + b for pixel (a, b) of a block:
//   y[c2, i*K + a1*k2 + a2, j*K + b1*k2 + b2] = bias[c2*k2*k2 + a2*k2 + b2]
//       + sum_c1 W[c2*k2*k2 + a2*k2 + b2, c1] * x[c1*k1*k1 + a1*k1 + b1, i, j]
// so Conv' has input channel c1*k1*k1 + a1*k1 + b1, output channel c2*K*K + (a1*k2 + a2)*K + (b1*k2 + b2),
// weight W[c2*k2*k2 + a2*k2 + b2, c1] there and zero elsewhere (k1*k1 times the multiplies, on k1*k1
// times fewer pixels: the same count), bias as above. The sums are the same products in the same order.
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addConstant } from '../../optimize/util/write-constant.js';

/** Merges every DepthToSpace -> 1x1 Conv -> DepthToSpace chain of the main graph; returns the Convs moved. */
export function mergeDepthToSpaceChains(model: Model, graph: Graph): string[] {
  const merged: string[] = [];
  for (const conv of [...graph.nodes]) {
    const chain = chainAround(graph, conv);
    if (chain === undefined) continue;
    const { first, second, weight, bias, k1, k2 } = chain;
    const [out2, c1] = weight.dims;
    const c2 = out2 / (k2 * k2);
    const big = k1 * k2;
    const inputs = c1 * k1 * k1;
    const outputs = c2 * big * big;
    const w = weight.data() as Float32Array;
    const b = bias?.data() as Float32Array | undefined;
    const w2 = new Float32Array(outputs * inputs);
    const b2 = new Float32Array(outputs);
    for (let co = 0; co < c2; co++)
      for (let a1 = 0; a1 < k1; a1++)
        for (let b1 = 0; b1 < k1; b1++)
          for (let a2 = 0; a2 < k2; a2++)
            for (let bb2 = 0; bb2 < k2; bb2++) {
              const row = co * k2 * k2 + a2 * k2 + bb2;
              const o = co * big * big + (a1 * k2 + a2) * big + (b1 * k2 + bb2);
              if (b !== undefined) b2[o] = b[row];
              for (let ci = 0; ci < c1; ci++) w2[o * inputs + ci * k1 * k1 + a1 * k1 + b1] = w[row * c1 + ci];
            }
    const weightTensor = Tensor.fromArray(graph.uniqueName(`${conv.label}_merged_weight`), DataType.FLOAT, [outputs, inputs, 1, 1], w2);
    addConstant(model, graph, weightTensor, conv);
    const biasTensor = Tensor.fromArray(graph.uniqueName(`${conv.label}_merged_bias`), DataType.FLOAT, [outputs], b2);
    addConstant(model, graph, biasTensor, conv);
    const [oldWeight, oldBias] = [conv.inputs[1], conv.inputs[2] ?? ''];
    // first(x -> u) -> conv(u -> v) -> second(v -> y)  becomes  conv(x -> v) -> second(v -> y), block k1*k2.
    conv.inputs = [first.inputs[0], weightTensor.name, biasTensor.name];
    second.attributes = second.attributes.filter((a) => a.name !== 'blocksize');
    second.attributes.push(attr.int('blocksize', big));
    graph.valueInfo = graph.valueInfo.filter((v) => v.name !== first.outputs[0] && v.name !== conv.outputs[0]);
    graph.removeNode(first);
    for (const old of [oldWeight, oldBias]) if (old !== '' && graph.initializer(old) !== undefined && graph.consumers(old).length === 0 && !graph.isGraphOutput(old)) graph.removeInitializer(old);
    graph.changed();
    merged.push(conv.label);
  }
  return merged;
}

function chainAround(graph: Graph, conv: Node): { first: Node; second: Node; weight: Tensor; bias: Tensor | undefined; k1: number; k2: number } | undefined {
  if (conv.opType !== 'Conv' || !isStandardDomain(conv.domain) || conv.attrInt('group', 1) !== 1) return undefined;
  const ones = (v: number[] | undefined) => (v ?? []).every((x) => x === 1);
  const zeros = (v: number[] | undefined) => (v ?? []).every((x) => x === 0);
  if (!ones(conv.attrInts('strides')) || !ones(conv.attrInts('dilations')) || !zeros(conv.attrInts('pads')) || !['NOTSET', ''].includes(conv.attrString('auto_pad', 'NOTSET'))) return undefined;
  const weight = constantValue(graph, conv.inputs[1]);
  if (weight === undefined || weight.dataType !== DataType.FLOAT || weight.dims.length !== 4 || weight.dims[2] !== 1 || weight.dims[3] !== 1) return undefined;
  let bias: Tensor | undefined;
  if (conv.inputs.length > 2 && conv.inputs[2] !== '') {
    bias = constantValue(graph, conv.inputs[2]);
    if (bias === undefined || bias.dataType !== DataType.FLOAT) return undefined;
  }
  const first = graph.producer(conv.inputs[0]);
  if (first === undefined || !isCrd(first) || graph.isGraphOutput(first.outputs[0]) || graph.consumers(first.outputs[0]).length !== 1) return undefined;
  if (graph.isGraphOutput(conv.outputs[0])) return undefined;
  const readers = graph.consumers(conv.outputs[0]);
  if (readers.length !== 1 || !isCrd(readers[0])) return undefined;
  const second = readers[0];
  const [k1, k2] = [first.attrInt('blocksize', 0), second.attrInt('blocksize', 0)];
  if (k1 < 1 || k2 < 1 || weight.dims[0] % (k2 * k2) !== 0) return undefined;
  return { first, second, weight, bias, k1, k2 };
}

function isCrd(node: Node): boolean {
  return node.opType === 'DepthToSpace' && isStandardDomain(node.domain) && node.attrString('mode', 'DCR') === 'CRD';
}
