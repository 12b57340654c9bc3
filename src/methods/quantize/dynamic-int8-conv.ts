// Conv with a constant float32 weight under dynamic int8. Three forms:
//   'cast-weights'        int8/uint8 weight -> Cast to float32 [-> Sub zero point] -> Mul scale
//                         [M,1,..] feeding the float Conv (the default). The file shrinks ~4x and,
//                         since every input of that chain is a constant, onnxruntime folds it into
//                         a float32 weight once at load: float speed, prepacked kernels and all.
//                         The values equal DequantizeLinear's ((q - zp) * scale in float32).
//   'dequantize-weights'  int8/uint8 weight + DequantizeLinear (per output channel or per tensor)
//                         feeding the float Conv: the file shrinks ~4x, compute stays float. Every
//                         runtime runs it (onnxruntime-web's WebGPU backend has no ConvInteger).
//                         ai.onnx DequantizeLinear where the opset has the form (per tensor >= 10,
//                         per axis >= 13), else com.microsoft.DequantizeLinear, which any opset
//                         may use (PP-OCR rec and cls import ai.onnx 9).
//   'conv-integer'        DynamicQuantizeLinear(X) -> ConvInteger(X_q, W_q, x_zp, w_zp) -> Cast ->
//                         Mul(x_scale * W_scale[M,1,..]) [-> Add bias[M,1,..]], onnxruntime's own
//                         quantize_dynamic layout; needs ai.onnx >= 11. onnxruntime-node and -web
//                         (wasm) 1.30 run it, but its CPU kernel is slower than float Conv
//                         (bench/results/quantize-dynamic.md), hence not the default.
import { attr } from '../../ir/attribute.js';
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import {
  type ActivationQuantizers,
  addNamedConstant,
  dropUnreadChain,
  nodeNamer,
  readFloat32Weight,
  replaceNode,
  rescaleIntegerProduct,
} from './dynamic-int8-graph.js';
import type { RewriteOutcome } from './dynamic-int8-matmul.js';
import { codeTensor, groupByAxes, type LinearWeightOptions, quantizeLinearWeight } from './dynamic-int8-weights.js';
import { MS_DOMAIN } from './weight-tensors.js';
import { WEIGHTED_OPS, weightAxes } from '../../graph-edit/weighted-layers.js';

export type DynamicConvForm = 'cast-weights' | 'dequantize-weights' | 'conv-integer';

export interface DynamicConvSettings {
  weights: LinearWeightOptions;
  perChannel: boolean;
  form: DynamicConvForm;
}

/** Conv attributes ConvInteger shares (ONNX ConvInteger-10). */
const CONV_INTEGER_ATTRIBUTES = new Set(['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides']);

export class ConvRewriter {
  /** Set when a form had to give way to another (reported once by the pass). */
  fallback: string | undefined;

  constructor(
    private readonly model: Model,
    private readonly settings: DynamicConvSettings,
    private readonly activations: ActivationQuantizers,
  ) {}

  rewrite(graph: Graph, node: Node): RewriteOutcome {
    const weightInput = WEIGHTED_OPS.Conv.weight;
    const weightName = node.inputs[weightInput];
    const weight = readFloat32Weight(graph, weightName, `weight '${weightName}' is not float32`);
    if ('reason' in weight) return weight;
    const dims = weight.tensor.dims;
    const axes = weightAxes(node, dims);
    if (axes === undefined)
      return {
        done: false,
        code: 'weight-shape',
        reason: `weight '${weightName}' [${dims.join(',')}] is not a Conv weight [M, C/group, k...]`,
      };
    const opset = this.model.opset('') ?? 1;
    let form = this.settings.form;
    if (form === 'conv-integer' && opset < 11) {
      form = 'dequantize-weights';
      this.fallback = `ConvInteger with DynamicQuantizeLinear needs ai.onnx 11; the model imports ${opset}, so Conv weights use DequantizeLinear`;
    }
    const { weights, perChannel } = this.settings;
    const q = quantizeLinearWeight(weight.values, groupByAxes(dims, perChannel ? [axes.output] : []), weights);
    const M = axes.outputChannels;
    // ConvInteger's weight zero point is one value in onnxruntime's kernel: per-channel zero
    // points of asymmetric weights are refused here rather than at run time.
    if (form === 'conv-integer' && new Set(q.zeroPoints).size > 1) {
      return {
        done: false,
        code: 'conv-integer-zero-points',
        reason: 'ConvInteger takes one weight zero point; use symmetric weights or per-tensor scales',
      };
    }
    const codes = addNamedConstant(this.model, graph, codeTensor('', weights.type, dims, q.codes), `${weightName}_quantized`, node);
    const zeroIsDefault = q.zeroPoints.every((z) => z === 0);
    const name = nodeNamer(graph, node);
    let bytesAfter = q.codes.length + q.scales.length * 4 + (zeroIsDefault ? 0 : q.zeroPoints.length);
    if (form === 'cast-weights') {
      const scaleDims = perChannel ? [M, ...new Array(dims.length - 1).fill(1)] : [];
      const scale = addNamedConstant(this.model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, q.scales), `${weightName}_scale`, node);
      const asFloat = name('weight_float');
      const chain = [new Node({ opType: 'Cast', inputs: [codes], outputs: [asFloat], name: name('weight_Cast'), attributes: [attr.int('to', DataType.FLOAT)] })];
      let centred = asFloat;
      if (!zeroIsDefault) {
        const zeroPoint = addNamedConstant(this.model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, Float32Array.from(q.zeroPoints)), `${weightName}_zero_point`, node);
        centred = name('weight_centred');
        chain.push(new Node({ opType: 'Sub', inputs: [asFloat, zeroPoint], outputs: [centred], name: name('weight_Sub') }));
      }
      const dequantized = name('weight');
      chain.push(new Node({ opType: 'Mul', inputs: [centred, scale], outputs: [dequantized], name: name('weight_Mul') }));
      let at = graph.nodes.indexOf(node);
      for (const n of chain) graph.addNode(n, at++);
      node.inputs[weightInput] = dequantized;
      graph.changed();
    } else if (form === 'dequantize-weights') {
      const scaleDims = perChannel ? [M] : [];
      const scale = addNamedConstant(this.model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, q.scales), `${weightName}_scale`, node);
      const inputs = [codes, scale];
      if (!zeroIsDefault)
        inputs.push(addNamedConstant(this.model, graph, codeTensor('', weights.type, scaleDims, q.zeroPoints), `${weightName}_zero_point`, node));
      const standard = perChannel ? opset >= 13 : opset >= 10;
      const dequantized = name('weight');
      const dq = new Node({
        opType: 'DequantizeLinear',
        domain: standard ? '' : MS_DOMAIN,
        inputs,
        outputs: [dequantized],
        name: name('DequantizeLinear'),
        attributes: perChannel ? [attr.int('axis', axes.output)] : [],
      });
      graph.addNode(dq, graph.nodes.indexOf(node));
      node.inputs[weightInput] = dequantized;
      graph.changed();
    } else {
      const qx = this.activations.of(graph, node.inputs[0]);
      // Scales broadcast over [N, M, spatial...]: shape [M, 1, ...] (or a scalar).
      const spatial = dims.length - 2;
      const scaleDims = perChannel ? [M, ...new Array(spatial).fill(1)] : [];
      const scale = addNamedConstant(this.model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, q.scales), `${weightName}_scale`, node);
      const inputs = [qx.q, codes, qx.zeroPoint];
      if (!zeroIsDefault)
        inputs.push(addNamedConstant(this.model, graph, codeTensor('', weights.type, [], q.zeroPoints.subarray(0, 1)), `${weightName}_zero_point`, node));
      const integer = name('ConvInteger_out');
      const asFloat = name('float');
      const scaleProduct = name('scale');
      const biasName = node.inputs[2] ?? '';
      const output = node.outputs[0];
      const scaled = biasName === '' ? output : name('scaled');
      const added = [
        new Node({
          opType: 'ConvInteger',
          inputs,
          outputs: [integer],
          name: name('ConvInteger'),
          attributes: node.attributes.filter((a) => CONV_INTEGER_ATTRIBUTES.has(a.name)),
        }),
        ...rescaleIntegerProduct({ integer, asFloat, scaleProduct, activationScale: qx.scale, weightScale: scale, output: scaled }, name),
      ];
      if (biasName !== '') {
        const b = constantValue(graph, biasName);
        let biasInput: string;
        if (b !== undefined && b.dataType === DataType.FLOAT && b.elementCount === M) {
          biasInput = addNamedConstant(
            this.model,
            graph,
            Tensor.fromArray('', DataType.FLOAT, [M, ...new Array(spatial).fill(1)], Float32Array.from(b.data() as Float32Array)),
            `${biasName}_broadcast`,
            node,
          );
        } else {
          const shape = addNamedConstant(
            this.model,
            graph,
            Tensor.fromArray('', DataType.INT64, [spatial + 1], BigInt64Array.from([BigInt(M), ...new Array(spatial).fill(1n)])),
            `${biasName}_shape`,
            node,
          );
          biasInput = name('bias');
          added.push(
            new Node({
              opType: 'Reshape',
              inputs: [biasName, shape],
              outputs: [biasInput],
              name: name('bias_Reshape'),
            }),
          );
        }
        added.push(
          new Node({
            opType: 'Add',
            inputs: [scaled, biasInput],
            outputs: [output],
            name: name('bias_Add'),
          }),
        );
      }
      replaceNode(graph, node, added);
      if (biasName !== '') dropUnreadChain(graph, biasName);
      bytesAfter = q.codes.length + q.scales.length * 4 + (zeroIsDefault ? 0 : 1);
    }
    dropUnreadChain(graph, weightName);
    return {
      done: true,
      tensor: {
        name: weightName,
        op: 'Conv',
        bytesBefore: weight.tensor.byteLength,
        bytesAfter,
        sqnrDb: q.sqnrDb,
      },
    };
  }
}
