// MatMul and Gemm with a constant float32 weight -> integer matrix products with the activation
// quantized at run time. Two forms, both run by onnxruntime-node and onnxruntime-web (wasm):
//   'com.microsoft'  DynamicQuantizeMatMul(A, B_q, B_scale, B_zero_point?, bias?): one node, any
//                    ai.onnx opset; the kernel onnxruntime itself fuses the standard form into at
//                    graph optimization 'extended' (ContribOperators.md, DynamicQuantizeMatMul:
//                    Y = (quant(A) - a_zp) @ (B_q - b_zp) * a_scale * b_scale + bias, b_scale and
//                    b_zero_point scalar or per column [N]).
//   'onnx'           DynamicQuantizeLinear(A) -> MatMulInteger(A_q, B_q, a_zp, b_zp) -> Cast(float)
//                    -> Mul(a_scale * B_scale) [-> Add bias]: standard ops only (ai.onnx >= 11),
//                    the layout of onnxruntime's own quantize_dynamic, for runtimes without
//                    contrib ops.
// B is quantized per tensor or per column; a Gemm's B is transposed to [K, N] first (transB) and
// alpha is folded into the scale, beta into the bias.
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
import { codeTensor, groupByAxes, type LinearWeightOptions, quantizeLinearWeight } from './dynamic-int8-weights.js';
import { MS_DOMAIN, PerGraphCache, type QuantizedTensorReport, transpose } from './weight-tensors.js';
import { WEIGHTED_OPS, matrixWeightShape } from '../../graph-edit/weighted-layers.js';
import { otherOperand, soleConsumer } from '../../optimize/util/pattern.js';

export type DynamicMatMulForm = 'com.microsoft' | 'onnx';

export interface DynamicMatMulSettings {
  weights: LinearWeightOptions;
  perChannel: boolean;
  form: DynamicMatMulForm;
}

/** Names of a quantized weight's constants, shared by every node of a graph that reads it alike. */
interface QuantizedB {
  q: string;
  scale: string;
  zeroPoint: string | undefined;
  report: Omit<QuantizedTensorReport, 'node'>;
}

/** What a rewrite did: the report of a weight newly quantized (undefined when shared), or why not. */
export type RewriteOutcome = { done: true; tensor?: Omit<QuantizedTensorReport, 'node'> } | { done: false; code: string; reason: string };

/**
 * The Add that alone reads a MatMul's output `product` and adds a constant float32 vector of its
 * N columns ([N] or [1, N]), with that constant; undefined otherwise.
 */
function foldableBiasAdd(graph: Graph, product: string, N: number): { add: Node; name: string; bias: Tensor } | undefined {
  const add = soleConsumer(graph, product, 'Add');
  if (add === undefined || graph.isGraphOutput(product) || add.inputs[0] === add.inputs[1]) return undefined;
  const name = otherOperand(add, product);
  const bias = name === undefined ? undefined : constantValue(graph, name);
  if (name === undefined || bias === undefined || bias.dataType !== DataType.FLOAT || bias.elementCount !== N) return undefined;
  if (bias.dims.length > 2 || bias.dims[bias.dims.length - 1] !== N) return undefined;
  return { add, name, bias };
}

export class MatMulRewriter {
  private readonly weights = new PerGraphCache<QuantizedB>();

  constructor(
    private readonly model: Model,
    private readonly settings: DynamicMatMulSettings,
    private readonly activations: ActivationQuantizers,
  ) {}

  /** Rewrites one MatMul or Gemm node of `graph`, or says why it cannot. */
  rewrite(graph: Graph, node: Node): RewriteOutcome {
    const isGemm = node.opType === 'Gemm';
    const weightName = node.inputs[WEIGHTED_OPS[node.opType].weight];
    const weight = readFloat32Weight(graph, weightName, `weight '${weightName}' is float16; DynamicQuantizeLinear quantizes float32 activations only`);
    if ('reason' in weight) return weight;
    const dims = weight.tensor.dims;
    const shape = matrixWeightShape(node, dims);
    if (shape === undefined)
      return {
        done: false,
        code: 'weight-not-2d',
        reason: `weight '${weightName}' has shape [${dims.join(',')}]; a 2-D [K, N] weight is needed`,
      };
    if (isGemm && node.attrInt('transA', 0) !== 0)
      return {
        done: false,
        code: 'gemm-trans-a',
        reason: 'Gemm with transA = 1 is left in float',
      };
    // B as stored is [K, N], or [N, K] with Gemm's transB.
    const { K, N, transposed: transB } = shape;
    const alpha = isGemm ? node.attrFloat('alpha', 1) : 1;
    const beta = isGemm ? node.attrFloat('beta', 1) : 1;
    // The bias: Gemm's C folded with beta into a constant [N] when it is one, else added after.
    let bias: Float32Array | undefined;
    let biasValue: string | undefined;
    const cName = isGemm ? (node.inputs[2] ?? '') : '';
    if (cName !== '') {
      const c = constantValue(graph, cName);
      if (c !== undefined && c.dataType === DataType.FLOAT && c.elementCount === N && (c.dims.length === 1 || (c.dims.length === 2 && c.dims[0] === 1))) {
        bias = Float32Array.from(c.data() as Float32Array, (v) => v * beta);
      } else if (beta === 1) {
        biasValue = cName;
      } else {
        return {
          done: false,
          code: 'gemm-bias',
          reason: `Gemm's C '${cName}' is not a constant [N] and beta = ${beta}; left in float`,
        };
      }
    }

    let form = this.settings.form;
    if (form === 'onnx' && (this.model.opset('') ?? 1) < 11) form = 'com.microsoft';
    // A MatMul's bias Add (Linear as exported) goes into DynamicQuantizeMatMul's bias input.
    const biasAdd = !isGemm && form === 'com.microsoft' ? foldableBiasAdd(graph, node.outputs[0], N) : undefined;
    if (biasAdd !== undefined) bias = Float32Array.from(biasAdd.bias.data() as Float32Array);
    const key = `${weightName}|${transB}|${alpha}`;
    const { value: b, fresh } = this.weights.get(graph, key, () =>
      this.quantizeB(graph, node, weightName, transB ? transpose(weight.values, N, K) : weight.values, K, N, alpha),
    );
    const output = biasAdd?.add.outputs[0] ?? node.outputs[0];
    const a = node.inputs[0];
    const added: Node[] = [];
    const name = nodeNamer(graph, node);
    let biasName: string | undefined;
    if (bias !== undefined) biasName = addNamedConstant(this.model, graph, Tensor.fromArray('', DataType.FLOAT, [N], bias), `${biasAdd?.name ?? cName}_bias`, node);
    const product = biasValue !== undefined || (form === 'onnx' && biasName !== undefined) ? name('product') : output;
    if (form === 'com.microsoft') {
      const inputs = [a, b.q, b.scale, b.zeroPoint ?? '', biasName ?? ''];
      while (inputs[inputs.length - 1] === '') inputs.pop();
      added.push(
        new Node({
          opType: 'DynamicQuantizeMatMul',
          domain: MS_DOMAIN,
          inputs,
          outputs: [product],
          name: name('DynamicQuantizeMatMul'),
        }),
      );
    } else {
      const qa = this.activations.of(graph, a);
      const integer = name('MatMulInteger');
      const asFloat = name('float');
      const scale = name('scale');
      const inputs = [qa.q, b.q, qa.zeroPoint, b.zeroPoint ?? ''];
      while (inputs[inputs.length - 1] === '') inputs.pop();
      added.push(
        new Node({
          opType: 'MatMulInteger',
          inputs,
          outputs: [integer],
          name: name('MatMulInteger'),
        }),
        ...rescaleIntegerProduct({ integer, asFloat, scaleProduct: scale, activationScale: qa.scale, weightScale: b.scale, output: product }, name),
      );
      if (biasName !== undefined) {
        added.push(
          new Node({
            opType: 'Add',
            inputs: [product, biasName],
            outputs: [biasValue !== undefined ? name('biased') : output],
            name: name('bias_Add'),
          }),
        );
      }
    }
    if (biasValue !== undefined) {
      const last = added[added.length - 1].outputs[0];
      added.push(
        new Node({
          opType: 'Add',
          inputs: [last, biasValue],
          outputs: [output],
          name: name('C_Add'),
        }),
      );
    }
    replaceNode(graph, node, added);
    if (biasAdd !== undefined) {
      graph.removeNode(biasAdd.add);
      dropUnreadChain(graph, biasAdd.name);
    }
    dropUnreadChain(graph, weightName);
    if (cName !== '' && bias !== undefined) dropUnreadChain(graph, cName);
    return fresh ? { done: true, tensor: b.report } : { done: true };
  }

  private quantizeB(graph: Graph, node: Node, weightName: string, values: Float32Array, K: number, N: number, alpha: number): QuantizedB {
    const { weights, perChannel } = this.settings;
    const q = quantizeLinearWeight(values, groupByAxes([K, N], perChannel ? [1] : []), weights);
    const scaleDims = perChannel ? [N] : [];
    const scales = alpha === 1 ? q.scales : Float32Array.from(q.scales, (s) => s * alpha);
    const codes = addNamedConstant(this.model, graph, codeTensor('', weights.type, [K, N], q.codes), `${weightName}_quantized`, node);
    const scale = addNamedConstant(this.model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, scales), `${weightName}_scale`, node);
    // All-zero zero points (symmetric int8) are the ops' default: leave the input out.
    const zeroPoint = q.zeroPoints.some((z) => z !== 0)
      ? addNamedConstant(this.model, graph, codeTensor('', weights.type, scaleDims, q.zeroPoints), `${weightName}_zero_point`, node)
      : undefined;
    const bytesAfter = K * N + scales.length * 4 + (zeroPoint === undefined ? 0 : q.zeroPoints.length);
    return {
      q: codes,
      scale,
      zeroPoint,
      report: {
        name: weightName,
        op: node.opType,
        bytesBefore: K * N * 4,
        bytesAfter,
        sqnrDb: q.sqnrDb,
      },
    };
  }
}
