// Dynamic int8 self-attention in the form onnxruntime's CPU runs fastest (the default of
// dynamic-int8-attention.ts): the three projections as integer products of one quantized input
// (one DynamicQuantizeLinear shared by three com.microsoft MatMulIntegerToFloat, bias folded in),
// then com.microsoft MultiHeadAttention with no mask input. Only without a mask (and without
// past/present) does onnxruntime's CPU MultiHeadAttention take its flash path (MlasFlashAttention:
// Q.K^T, softmax and P.V per block of query rows, no [B, N, S, S] score tensor, no mask copies);
// QAttention and a masked MultiHeadAttention build and copy a float mask per head
// (attention_cpu_base.h). The padding mask still applies, exactly, through one extra column per
// head: Q gets a column of 1 (zero weights, bias 1), K a column (1 - mask) * c / scale, so that
// scale * q'.k' = scale * q.k + (1 - mask) * c, with c = -10000 (the value QAttention and
// MultiHeadAttention use for masked keys). spam-bert x 128 tokens, 1 thread, CPU time against
// QAttention: the same at batch 1, a few % less at batch 8, ~10% less at 32-64
// (bench/results/quantize-dynamic-bert.md, NOTES.md); in float, within 5e-7 of the masked form.
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { type ActivationQuantizers, addNamedConstant, nodeNamer } from './dynamic-int8-graph.js';
import { codeTensor, groupByAxes, type LinearWeightOptions, quantizeLinearWeight } from './dynamic-int8-weights.js';
import { MS_DOMAIN, type PerGraphCache, type QuantizedTensorReport } from './weight-tensors.js';

/** What a masked key adds to the scaled score (QAttention's and MultiHeadAttention's mask_filter_value). */
export const MASKED_SCORE = -10000;

export interface FlashProjection {
  input: string;
  weight: Tensor;
  bias: Float32Array;
}

export interface FlashAttention {
  heads: number;
  /** The score scale of the attention (1/sqrt(head size) unless the model says otherwise). */
  scale: number;
  /** The integer [B, L] key mask (1 = attend), or undefined for none. */
  mask: string | undefined;
}

/**
 * The nodes that replace `mha` (its output kept): MatMulIntegerToFloat for Q, K and V of one
 * DynamicQuantizeLinear, the mask column added to K, and MultiHeadAttention(q, k, v). Constants go
 * into the graph before `mha`; the mask columns are made once per graph (`maskColumns`).
 */
export function flashAttentionNodes(
  model: Model,
  graph: Graph,
  mha: Node,
  projections: readonly FlashProjection[],
  attention: FlashAttention,
  settings: { weights: LinearWeightOptions; perChannel: boolean },
  activations: ActivationQuantizers,
  maskColumns: PerGraphCache<string>,
): { nodes: Node[]; tensor: Omit<QuantizedTensorReport, 'node'> } {
  const { heads, scale, mask } = attention;
  const [K, N] = projections[0].weight.dims;
  const headSize = N / heads;
  const x = activations.of(graph, projections[0].input);
  const name = nodeNamer(graph, mha);
  const nodes: Node[] = [];
  const outputs: string[] = [];
  let bytesBefore = 0;
  let bytesAfter = 0;
  let sqnrDb = Number.POSITIVE_INFINITY;
  projections.forEach((p, which) => {
    // Q and K get the mask column when there is a mask; V keeps its width.
    const widened = mask !== undefined && which < 2 ? withMaskColumn(p, heads, headSize, which === 0 ? 1 : 0) : { weight: p.weight.data() as Float32Array, bias: p.bias };
    const width = widened.bias.length;
    const q = quantizeLinearWeight(widened.weight, groupByAxes([K, width], settings.perChannel ? [1] : []), settings.weights);
    const scaleDims = settings.perChannel ? [width] : [];
    const base = `${p.weight.name}_${width === N ? '' : 'masked_'}`;
    const codes = addNamedConstant(model, graph, codeTensor('', settings.weights.type, [K, width], q.codes), `${base}quantized`, mha);
    const scales = addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, q.scales), `${base}scale`, mha);
    const bias = addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, [width], widened.bias), `${base}bias`, mha);
    const zeroPoint = q.zeroPoints.some((z) => z !== 0) ? addNamedConstant(model, graph, codeTensor('', settings.weights.type, scaleDims, q.zeroPoints), `${base}zero_point`, mha) : '';
    const output = graph.uniqueName(`${mha.outputs[0]}_${'qkv'[which]}`);
    nodes.push(
      new Node({
        opType: 'MatMulIntegerToFloat',
        domain: MS_DOMAIN,
        inputs: [x.q, codes, x.scale, scales, x.zeroPoint, zeroPoint, bias],
        outputs: [output],
        name: name(`MatMulIntegerToFloat_${'qkv'[which]}`),
      }),
    );
    outputs.push(output);
    bytesBefore += K * N * 4;
    bytesAfter += K * width + q.scales.length * 4 + (zeroPoint === '' ? 0 : q.zeroPoints.length);
    sqnrDb = Math.min(sqnrDb, q.sqnrDb);
  });
  if (mask !== undefined) {
    const columns = maskColumns.get(graph, `${mask}|${heads}|${headSize}|${scale}`, () => {
      const made = maskColumnNodes(model, graph, mha, mask, heads, headSize, scale);
      nodes.unshift(...made.nodes);
      return made.output;
    }).value;
    const masked = graph.uniqueName(`${outputs[1]}_masked`);
    nodes.push(new Node({ opType: 'Add', inputs: [outputs[1], columns], outputs: [masked], name: name('Add_mask_columns') }));
    outputs[1] = masked;
  }
  nodes.push(
    new Node({
      opType: 'MultiHeadAttention',
      domain: MS_DOMAIN,
      inputs: outputs,
      outputs: [mha.outputs[0]],
      name: name('MultiHeadAttention'),
      // The scale is explicit: with the mask column the Q/K head size is one more than V's.
      attributes: [attr.int('num_heads', heads), attr.float('scale', scale)],
    }),
  );
  return { nodes, tensor: { name: projections.map((p) => p.weight.name).join('+'), op: 'MatMulIntegerToFloat', bytesBefore, bytesAfter, sqnrDb } };
}

/** `p`'s [K, heads * headSize] weight and bias with a column after each head: zero weights, bias `fill`. */
export function withMaskColumn(p: FlashProjection, heads: number, headSize: number, fill: number): { weight: Float32Array; bias: Float32Array } {
  const w = p.weight.data() as Float32Array;
  const [K, N] = p.weight.dims;
  const wide = heads * (headSize + 1);
  const weight = new Float32Array(K * wide);
  const bias = new Float32Array(wide);
  for (let h = 0; h < heads; h++) {
    const from = h * headSize;
    const to = h * (headSize + 1);
    for (let k = 0; k < K; k++) weight.set(w.subarray(k * N + from, k * N + from + headSize), k * wide + to);
    bias.set(p.bias.subarray(from, from + headSize), to);
    bias[to + headSize] = fill;
  }
  return { weight, bias };
}

/** [B, L, heads * (headSize + 1)]: (1 - mask) * MASKED_SCORE / scale in each head's last column, 0 elsewhere. */
function maskColumnNodes(model: Model, graph: Graph, before: Node, mask: string, heads: number, headSize: number, scale: number): { nodes: Node[]; output: string } {
  const wide = heads * (headSize + 1);
  const pattern = new Float32Array(wide);
  for (let h = 0; h < heads; h++) pattern[h * (headSize + 1) + headSize] = MASKED_SCORE / scale;
  const columns = addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, [wide], pattern), `${mask}_mask_column_pattern`, before);
  const one = addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, [], new Float32Array([1])), `${mask}_one`, before);
  const value = (suffix: string) => graph.uniqueName(`${mask}_${suffix}`);
  const asFloat = value('float');
  const masked = value('masked');
  const column = value('masked_column');
  const output = value('mask_columns');
  // [B, L] -> [B, L, 1] by Reshape with 0 = keep that dim (any opset, unlike Unsqueeze's axes).
  const shape = addNamedConstant(model, graph, Tensor.fromArray('', DataType.INT64, [3], new BigInt64Array([0n, 0n, 1n])), `${mask}_column_shape`, before);
  return {
    nodes: [
      new Node({ opType: 'Cast', inputs: [mask], outputs: [asFloat], name: graph.uniqueName(`${mask}_Cast_float`), attributes: [attr.int('to', DataType.FLOAT)] }),
      new Node({ opType: 'Sub', inputs: [one, asFloat], outputs: [masked], name: graph.uniqueName(`${mask}_Sub`) }),
      new Node({ opType: 'Reshape', inputs: [masked, shape], outputs: [column], name: graph.uniqueName(`${mask}_Reshape_column`) }),
      new Node({ opType: 'Mul', inputs: [column, columns], outputs: [output], name: graph.uniqueName(`${mask}_Mul_columns`) }),
    ],
    output,
  };
}
