// Pads the input channels of a quantized Conv that reads a graph input up to a multiple of 4, with
// zeros in the input (a Pad before the QuantizeLinear) and in the weight. onnxruntime's QLinearConv
// has a fast kernel (MLAS's symmetric indirect convolution, `MlasConvSymPackWSize`) only for
// input channel counts divisible by 4; an image model's first layer (1 or 3 channels) falls back
// to im2col + a GEMM with K = 9 or 27, slower than float: the Fashion-MNIST CNN's 1-channel conv1
// took 3.8 ms at batch 64 as QLinearConv against 1.4 ms in float. The padded channels are zero in
// both operands, so the result is unchanged: a float 0 quantizes exactly to the zero point, and
// the integer kernel subtracts the zero point before multiplying.
// Only Convs whose input is a graph input are padded: there the Pad runs once on the float input
// before it is quantized; elsewhere it would sit between a DequantizeLinear and a QuantizeLinear.
import { constantValue } from '../../ir/constants.js';
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addConstant, writeNodeConstant } from '../../optimize/util/write-constant.js';

const ALIGN = 4;

/** Pads the Convs among `convs` that qualify; returns the labels of those padded. */
export function padInputChannels(model: Model, graph: Graph, convs: readonly Node[]): string[] {
  const padded: string[] = [];
  const inputs = new Set(graph.inputs.map((i) => i.name));
  for (const conv of convs) {
    if (conv.opType !== 'Conv' || conv.attrInt('group', 1) !== 1 || !inputs.has(conv.inputs[0]) || graph.initializer(conv.inputs[0]) !== undefined) continue;
    const weight = constantValue(graph, conv.inputs[1]);
    if (weight === undefined || weight.dataType !== DataType.FLOAT || weight.dims.length < 3) continue;
    const [outputs, channels, ...kernel] = weight.dims;
    if (channels % ALIGN === 0) continue;
    const wider = Math.ceil(channels / ALIGN) * ALIGN;
    const inner = kernel.reduce((a, b) => a * b, 1);
    const values = weight.data() as Float32Array;
    const grown = new Float32Array(outputs * wider * inner);
    for (let m = 0; m < outputs; m++) grown.set(values.subarray(m * channels * inner, (m + 1) * channels * inner), m * wider * inner);
    writeNodeConstant(model, graph, conv, 1, Tensor.fromArray(conv.inputs[1], DataType.FLOAT, [outputs, wider, ...kernel], grown), `${conv.label}_weight_padded`);
    conv.inputs[0] = insertPad(model, graph, conv, weight.dims.length, wider - channels);
    graph.changed();
    padded.push(conv.label);
  }
  return padded;
}

/** `conv`'s input -> Pad (zeros after the channels on axis 1) -> returns the padded value's name. */
function insertPad(model: Model, graph: Graph, conv: Node, rank: number, extra: number): string {
  // pads: [x1_begin, x2_begin, ..., x1_end, x2_end, ...] (ONNX Pad).
  const pads = new Array<number>(2 * rank).fill(0);
  pads[rank + 1] = extra;
  const output = graph.uniqueName(`${conv.inputs[0]}_channels_padded`);
  const name = graph.uniqueName(`${conv.label}_PadChannels`);
  // Pad-11 takes the pads as an input; Pad-2 as an attribute.
  if ((model.opset('') ?? 1) >= 11) {
    const padsTensor = Tensor.fromArray(graph.uniqueName(`${name}_pads`), DataType.INT64, [pads.length], BigInt64Array.from(pads, BigInt));
    addConstant(model, graph, padsTensor, conv);
    graph.addNode(new Node({ opType: 'Pad', inputs: [conv.inputs[0], padsTensor.name], outputs: [output], name }), graph.nodes.indexOf(conv));
  } else {
    graph.addNode(new Node({ opType: 'Pad', inputs: [conv.inputs[0]], outputs: [output], name, attributes: [attr.ints('pads', pads)] }), graph.nodes.indexOf(conv));
  }
  return output;
}
