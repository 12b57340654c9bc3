// Layers that static int8 leaves in float32 run in float only if onnxruntime lets them: its
// WeightBiasQuantization transformer (level 1: 'basic' and above) finds a Conv, ConvTranspose or
// Gemm whose input comes from a DequantizeLinear with a per-tensor scale and whose output goes
// (through Relu/Clip at most) to a QuantizeLinear, and quantizes its float weights itself,
// per-tensor: an excluded layer ran as int8 anyway, with coarser weights than the per-channel int8
// it was excluded from. The transformer (and the QDQ selectors that fuse QLinearConv) want a
// per-tensor scale, so an excluded layer here reads its input through a DequantizeLinear of its own
// whose scale and zero point are the same numbers repeated per channel (axis 1): the same values,
// a float layer at run time, while the int8 layer before it keeps its int8 output.
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import { attr } from '../ir/attribute.js';
import { inferShapes } from '../optimize/shape-inference/index.js';

const WEIGHTED = new Set(['Conv', 'ConvTranspose', 'Gemm']);
/** Ops onnxruntime's QDQPropagation moves a per-tensor DequantizeLinear past (input 0 carries the data). */
const PROPAGATED = new Set(['MaxPool', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten', 'Slice', 'Gather', 'Expand', 'Resize', 'DepthToSpace', 'SpaceToDepth']);

/**
 * Gives each float layer among `nodes` a per-channel DequantizeLinear on input 0 (see above),
 * also when data movement (MaxPool, Reshape ...) stands between it and the DequantizeLinear.
 * Returns how many layers changed; a layer whose channel count is unknown or 1 is left alone.
 */
export function readFloatInputs(model: Model, nodes: readonly Node[]): number {
  const graph = model.graph;
  const candidates = nodes.filter((n) => WEIGHTED.has(n.opType) && n.inputs.length >= 2 && graph.producer(n.inputs[1])?.opType !== 'DequantizeLinear');
  if (candidates.length === 0) return 0;
  const shapes = inferShapes(model).main;
  let changed = 0;
  for (const node of candidates) {
    // Back through data movement that only this layer reads, to the DequantizeLinear.
    let reader: Node = node;
    let dq = graph.producer(reader.inputs[0]);
    for (let step = 0; dq !== undefined && PROPAGATED.has(dq.opType) && graph.consumers(dq.outputs[0]).length === 1 && step < 8; step++) {
      reader = dq;
      dq = graph.producer(reader.inputs[0]);
    }
    if (dq?.opType !== 'DequantizeLinear' || dq.attribute('axis') !== undefined) continue;
    const scale = graph.initializer(dq.inputs[1]);
    const zeroPoint = dq.inputs[2] === undefined || dq.inputs[2] === '' ? undefined : graph.initializer(dq.inputs[2]);
    if (scale === undefined || scale.dims.length > 1 || (scale.dims[0] ?? 1) !== 1 || (zeroPoint !== undefined && (zeroPoint.dims[0] ?? 1) !== 1)) continue;
    const channels = shapes.get(dq.outputs[0])?.shape?.[1];
    if (typeof channels !== 'number' || channels <= 1) continue;
    const perChannel = (t: Tensor, suffix: string) => {
      const values = t.data();
      const out = new (values.constructor as { new (n: number): typeof values })(channels);
      out.fill(values[0] as never);
      return graph.addInitializer(Tensor.fromArray(graph.uniqueName(`${dq.outputs[0]}_${suffix}_per_channel`), t.dataType, [channels], out)).name;
    };
    const output = graph.uniqueName(`${dq.outputs[0]}_float_input`);
    const inputs = [dq.inputs[0], perChannel(scale, 'scale')];
    if (zeroPoint !== undefined) inputs.push(perChannel(zeroPoint, 'zero_point'));
    graph.addNode(new Node({ opType: 'DequantizeLinear', name: graph.uniqueName(`${node.name}_float_input`), inputs, outputs: [output], attributes: [attr.int('axis', 1)] }), graph.nodes.indexOf(dq) + 1);
    reader.inputs[0] = output;
    graph.changed();
    if (graph.consumers(dq.outputs[0]).length === 0 && !graph.isGraphOutput(dq.outputs[0])) graph.removeNode(dq);
    changed++;
  }
  return changed;
}
