// HardSigmoid in the 8-bit domain. onnxruntime has no int8 HardSigmoid, so in QDQ form every
// hard-swish (x * HardSigmoid(x), PP-OCR's MobileNetV3/PPLCNet blocks) leaves int8 for a
// DequantizeLinear -> HardSigmoid -> QuantizeLinear round trip in float (det: 34 of them, about a
// fifth of its int8 time). But HardSigmoid(x) = clip(alpha x + beta, 0, 1) = alpha clip(x + beta/alpha,
// 0, 1/alpha), and a QuantizeLinear whose range is exactly [0, 1/alpha] does that clip by saturating.
// So the float op becomes an Add of a constant, which onnxruntime runs as QLinearAdd:
//
//   DQ(x) -> HardSigmoid -> Q(h) -> DQ(h)    becomes    DQ(x), DQ(beta/alpha) -> Add -> Q[0, 1/alpha] -> DQ[0, 1]
//
// The Q codes (scale 1/(255 alpha), zero point 0) read back with scale 1/255 are alpha times the
// clipped value, HardSigmoid on 256 levels of [0, 1] (what calibration of h gives anyway, h's range
// being [0, 1] wherever the clip is reached). Also a lookup table (Cast + Gather of 256 codes) was
// tried: onnxruntime's Gather copies one element at a time (det: 320 ms against 22 ms of HardSigmoid).
// HardSwish (what the optimizer fuses x * HardSigmoid(x) into from opset 14) is split back into that Add,
// the clipping Q -> DQ and a Mul, which onnxruntime runs as QLinearAdd and QLinearMul.
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { dropUnreadConstant } from './weight-tensors.js';

/** Rewrites every HardSigmoid and HardSwish between a DequantizeLinear and a Q -> DQ pair; returns how many. */
export function quantizeHardSigmoids(model: Model, graph: Graph): number {
  let rewritten = 0;
  for (const node of [...graph.nodes]) {
    if ((node.opType !== 'HardSigmoid' && node.opType !== 'HardSwish') || !isStandardDomain(node.domain)) continue;
    const input = graph.producer(node.inputs[0]);
    const readers = graph.consumers(node.outputs[0]);
    if (input?.opType !== 'DequantizeLinear' || graph.isGraphOutput(node.outputs[0]) || readers.length === 0 || readers.some((r) => r.opType !== 'QuantizeLinear')) continue;
    const swish = node.opType === 'HardSwish';
    const qs = readers;
    const dqs = qs.flatMap((q) => graph.consumers(q.outputs[0]));
    if (!swish && (qs.length !== 1 || graph.isGraphOutput(qs[0].outputs[0]) || dqs.length === 0 || dqs.some((d) => d.opType !== 'DequantizeLinear' || d.inputs[1] !== qs[0].inputs[1] || d.inputs[2] !== qs[0].inputs[2]))) continue;
    const zero = constantValue(graph, qs[0].inputs[2] ?? '');
    if (zero === undefined || zero.dataType !== DataType.UINT8) continue;
    // HardSwish(x) = x * HardSigmoid(x; 1/6, 1/2) (ONNX spec).
    const alpha = swish ? 1 / 6 : node.attrFloat('alpha', 0.2);
    const beta = swish ? 0.5 : node.attrFloat('beta', 0.5);
    const shift = beta / alpha;
    // The shift is stored as code 255 of the range [0, shift], exactly; other signs stay float.
    if (!(alpha > 0) || !(shift > 0)) continue;
    const base = node.outputs[0];
    const constants = {
      shiftCodes: Tensor.fromArray(graph.uniqueName(`${base}_shift_quantized`), DataType.UINT8, [], Uint8Array.of(255)),
      shiftScale: Tensor.fromArray(graph.uniqueName(`${base}_shift_scale`), DataType.FLOAT, [], Float32Array.of(shift / 255)),
      zero: Tensor.fromArray(graph.uniqueName(`${base}_zero_point_0`), DataType.UINT8, [], Uint8Array.of(0)),
      qScale: Tensor.fromArray(graph.uniqueName(`${base}_clip_scale`), DataType.FLOAT, [], Float32Array.of(1 / (255 * alpha))),
      dqScale: Tensor.fromArray(graph.uniqueName(`${base}_scale_unit`), DataType.FLOAT, [], Float32Array.of(1 / 255)),
    };
    for (const t of Object.values(constants)) addConstant(model, graph, t, graph.nodes[0]);
    const named = (suffix: string) => graph.uniqueName(`${base}_${suffix}`);
    const shifted = named('shift_dequantized');
    const at = graph.nodes.indexOf(node);
    graph.removeNode(node);
    const added: Node[] = [new Node({ opType: 'DequantizeLinear', inputs: [constants.shiftCodes.name, constants.shiftScale.name, constants.zero.name], outputs: [shifted], name: named('shift_DequantizeLinear') })];
    if (swish) {
      // x + 3 on [0, 6] -> codes read back on [0, 1] -> x * that, quantized as the HardSwish was.
      const sum = named('shifted');
      const clipped = named('clipped_quantized');
      const sigmoid = named('hardsigmoid_dequantized');
      added.push(
        new Node({ opType: 'Add', inputs: [node.inputs[0], shifted], outputs: [sum], name: named('as_add') }),
        new Node({ opType: 'QuantizeLinear', inputs: [sum, constants.qScale.name, constants.zero.name], outputs: [clipped], name: named('clip_QuantizeLinear') }),
        new Node({ opType: 'DequantizeLinear', inputs: [clipped, constants.dqScale.name, constants.zero.name], outputs: [sigmoid], name: named('hardsigmoid_DequantizeLinear') }),
        new Node({ opType: 'Mul', inputs: [node.inputs[0], sigmoid], outputs: [base], name: named('as_mul') }),
      );
    } else {
      // The Add's output gets a name of its own (x + beta/alpha is not the HardSigmoid's value, and
      // per-layer comparison matches values by name); its Q reads it with the clipping range.
      const sum = named('shifted');
      added.push(new Node({ opType: 'Add', inputs: [node.inputs[0], shifted], outputs: [sum], name: named('as_add') }));
      const [q] = qs;
      const old = q.inputs.slice(1);
      q.inputs = [sum, constants.qScale.name, constants.zero.name];
      for (const dq of dqs) dq.inputs = [dq.inputs[0], constants.dqScale.name, constants.zero.name];
      graph.changed();
      for (const name of old) dropUnreadConstant(graph, name);
    }
    added.forEach((n, i) => graph.addNode(n, at + i));
    graph.changed();
    rewritten++;
  }
  return rewritten;
}
