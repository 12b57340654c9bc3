// Output parameters of a quantized Mul or Add by one scalar constant, taken from its input's
// instead of calibrated: y = c * x is exactly x's codes on a grid c times as wide (the zero point
// mirrored when c < 0), and y = x + c is x's grid shifted by the whole steps nearest c. The op then
// adds no rounding of its own, where a separately calibrated output grid re-rounds every element.
// Why: PP-OCRv4 rec's backbone (PPLCNetV3) follows each hard-swish with a learnable affine block,
// a scalar Mul and a scalar Add (65 such ops), each re-rounding its activations. Measured on 200
// held-out lines, words identical to float32 without -> with this: minmax 76.0 -> 76.8%, entropy
// 80.9 -> 87.4%, percentile 83.3 -> 85.0% (bench/results/quantize-static-cnn-rec.md, notes).
import { constantValue } from '../../ir/constants.js';
import type { Graph } from '../../ir/graph.js';
import type { PlannedNode } from './qdq-placement.js';
import { type QuantParams, typeRange } from './quant-params.js';

/**
 * Replaces, in graph order, the calibrated output parameters of planned Mul/Add nodes that read
 * one quantized activation and one scalar constant (no Relu/Clip folded, the output in a group of
 * its own). Returns how many were replaced.
 */
export function deriveScalarOpParams(graph: Graph, nodes: readonly PlannedNode[], groups: ReadonlyMap<string, number>, params: Map<string, QuantParams>): number {
  const groupSize = new Map<number, number>();
  for (const g of groups.values()) groupSize.set(g, (groupSize.get(g) ?? 0) + 1);
  let derived = 0;
  for (const planned of nodes) {
    const { node, output } = planned;
    if ((node.opType !== 'Mul' && node.opType !== 'Add') || output === undefined || planned.folded.length > 0) continue;
    if (planned.activations.length !== 1 || planned.constants.length !== 1) continue;
    if (groupSize.get(groups.get(output) ?? -1) !== 1) continue;
    const input = params.get(planned.activations[0].value);
    const constant = constantValue(graph, node.inputs[planned.constants[0].index]);
    if (input === undefined || constant === undefined || constant.elementCount !== 1 || !params.has(output)) continue;
    const c = (constant.data() as Float32Array)[0];
    const [qmin, qmax] = typeRange(input.type);
    let next: QuantParams | undefined;
    if (node.opType === 'Mul' && c > 0) next = { ...input, scale: input.scale * c };
    else if (node.opType === 'Mul' && c < 0) next = { ...input, scale: -input.scale * c, zeroPoint: qmin + qmax - input.zeroPoint };
    else if (node.opType === 'Add') next = { ...input, zeroPoint: input.zeroPoint - Math.round(c / input.scale) };
    // A zero point outside the type's codes (a shift past the range): keep the calibrated grid.
    if (next === undefined || next.zeroPoint < qmin || next.zeroPoint > qmax) continue;
    params.set(output, next);
    derived++;
  }
  return derived;
}
