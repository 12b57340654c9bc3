// Gemm with a constant weight -> com.microsoft MatMulNBits + Add, so that Gemm weights get 4-bit
// (or 2-bit, ternary, binary) blocks at any opset: DequantizeLinear has int4 blocks only from
// opset 21 and no 2-bit codes before 25, and MatMulNBits also computes from the packed codes
// directly instead of materializing a float weight.
//   Y = alpha * A' @ B' + beta * C     (A' = A, transA 1 is left alone; B' = B or B^T)
// becomes
//   Y = MatMulNBits(A, pack(B'), alpha * scales) + beta * C
// The packed layout wants the columns of B' as rows ([N, blocks, blob], quantized along K): with
// transB 1 that is B as stored, with transB 0 it is B transposed. alpha multiplies the scales
// (exact: dequant(code) * alpha); beta * C is folded into a new constant when C is constant, a Mul
// otherwise; no Add is written when there is no C or beta is 0. Add broadcasts C as Gemm does.
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import type { ZeroPointType } from '../../kernels/quantize-blocks.js';
import type { Pass } from '../../pipeline/pass.js';
import { isOp } from '../../optimize/util/graph-queries.js';
import { PassResult } from '../../optimize/util/report.js';
import { WEIGHTED_OPS, matrixWeightShape } from '../../graph-edit/weighted-layers.js';
import { type MatMulNBitsOptions, type Replacement, buildNBitsWeight, matMulNBitsAttributes, resolveBlockOptions } from './matmul-nbits.js';
import { MS_DOMAIN, type QuantizedTensorReport, type WeightQuantReport, addTypedConstant, dropUnreadConstant, ensureMicrosoftOpset, floatTensor, readFloatMatrix, readFloatWeight, transpose } from './weight-tensors.js';

export interface GemmNBitsOptions extends MatMulNBitsOptions {
  /**
   * Name every Gemm left as it is, and why, in the warnings (default true). weight-only.ts turns
   * this off: the Gemms left here go on to DequantizeLinear, whose report speaks for them.
   */
  reportSkips?: boolean;
}

/** Converts every eligible Gemm of the model (all scopes) to MatMulNBits (+ Add of beta * C). */
export function quantizeGemms(model: Model, options: GemmNBitsOptions): WeightQuantReport {
  const o = resolveBlockOptions(options);
  const zeroPointType: ZeroPointType = o.symmetric ? 'integer' : o.bits === 8 ? 'integer' : (options.zeroPointType ?? 'integer');
  const reportSkips = options.reportSkips ?? true;
  const result = new PassResult(['gemms', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter']);
  const tensors: QuantizedTensorReport[] = [];
  // A weight read the same way (transB, alpha) by several Gemms of one graph is packed once.
  const done = new Map<Graph, Map<string, Replacement>>();
  const targets = [...model.graph.allNodes()].filter(({ node }) => isOp(node, 'Gemm'));
  for (const { node, graph } of targets) {
    result.count('gemms');
    const skip = (code: string, message: string, tensor?: string): void => {
      if (!reportSkips) return;
      result.count('skipped');
      result.warn(code, `Gemm '${node.label}': ${message}`, { node: node.label, tensor });
    };
    if (options.exclude?.(node, graph)) {
      skip('excluded', 'excluded by the caller');
      continue;
    }
    if (node.attrInt('transA', 0) !== 0) {
      skip('gemm-trans-a', 'transA = 1; MatMulNBits reads A as [M, K] only');
      continue;
    }
    const weightName = node.inputs[WEIGHTED_OPS.Gemm.weight];
    const weight = readFloatMatrix(graph, weightName, 'Gemm');
    if ('reason' in weight) {
      skip(weight.code, weight.reason, weightName);
      continue;
    }
    // B is [K, N], or [N, K] with transB (readFloatMatrix checked it is 2-D).
    const shape = matrixWeightShape(node, weight.dims);
    if (shape === undefined) continue;
    const { K, N, transposed: transB } = shape;
    if (K % o.blockSize !== 0 && (options.partialBlocks ?? 'pad') === 'skip') {
      skip('block-size-does-not-divide-k', `K = ${K} of weight '${weightName}' is not a multiple of block size ${o.blockSize}`, weightName);
      continue;
    }
    const alpha = node.attrFloat('alpha', 1);
    const beta = node.attrFloat('beta', 1);
    const bias = node.inputs[WEIGHTED_OPS.Gemm.bias as number] ?? '';
    const elemType = weight.tensor.dataType;

    let perGraph = done.get(graph);
    if (perGraph === undefined) {
      perGraph = new Map();
      done.set(graph, perGraph);
    }
    const key = `${weightName}\u0000${transB}\u0000${alpha}`;
    let replacement = perGraph.get(key);
    if (replacement === undefined) {
      // transB 1 stores B' transposed already: its rows are the columns MatMulNBits packs.
      const columns = transB ? weight.values : transpose(weight.values, K, N);
      replacement = buildNBitsWeight(model, graph, node, { name: weightName, op: 'Gemm', elemType, columns, K, N, scaleFactor: alpha, solved: options.solved?.get(weightName) }, o, zeroPointType);
      perGraph.set(key, replacement);
      result.count('bytesBefore', replacement.report.bytesBefore);
      result.count('bytesAfter', replacement.report.bytesAfter);
    }

    const output = node.outputs[0];
    const addend = bias === '' || beta === 0 ? undefined : scaledBias(model, graph, node, bias, beta, elemType);
    node.opType = 'MatMulNBits';
    node.domain = MS_DOMAIN;
    node.inputs = [node.inputs[0], ...replacement.inputs];
    node.attributes = matMulNBitsAttributes(K, N, o, options.accuracyLevel);
    if (addend !== undefined) {
      const product = graph.uniqueName(`${output}_matmul`);
      node.outputs = [product];
      graph.addNode(new Node({ opType: 'Add', inputs: [product, addend], outputs: [output], name: graph.uniqueName(`${node.name || output}_bias`) }), graph.nodes.indexOf(node) + 1);
    }
    graph.changed();
    dropUnreadConstant(graph, weightName);
    if (bias !== '' && addend !== bias) dropUnreadConstant(graph, bias);
    tensors.push({ ...replacement.report, node: node.label });
    result.count('quantized');
  }
  if (result.stats.quantized > 0) ensureMicrosoftOpset(model);
  return { ...result.done(), tensors };
}

/** beta * C as a value name: C itself for beta 1, a folded constant when C is one, else a Mul. */
function scaledBias(model: Model, graph: Graph, node: Node, bias: string, beta: number, elemType: DataType): string {
  if (beta === 1) return bias;
  const scaleType = elemType === DataType.FLOAT16 ? 'float16' : 'float32';
  const constant = readFloatWeight(graph, bias);
  if (!('reason' in constant)) {
    const folded = floatTensor('', constant.values.map((v) => v * beta), constant.tensor.dims, scaleType);
    return addTypedConstant(model, graph, folded, `${bias}_times_beta`, elemType, node);
  }
  const betaName = addTypedConstant(model, graph, floatTensor('', Float32Array.of(beta), [], scaleType), `${node.name || bias}_beta`, elemType, node);
  const output = graph.uniqueName(`${bias}_times_beta`);
  graph.addNode(new Node({ opType: 'Mul', inputs: [bias, betaName], outputs: [output], name: graph.uniqueName(`${node.name || bias}_beta_Mul`), attributes: [] }), graph.nodes.indexOf(node));
  return output;
}

export const gemmNBitsPass: Pass<GemmNBitsOptions> = {
  name: 'gemm-nbits',
  description: 'Gemm with a constant weight -> com.microsoft MatMulNBits (alpha in the scales) + Add of beta * C',
  run: (model, options) => quantizeGemms(model, options),
};
