// Writes a QDQ plan into the graph: a QuantizeLinear -> DequantizeLinear pair after every planned
// activation (its readers read the dequantized value; the producer's own output keeps its name, so
// per-layer comparison still finds it), and integer constants + DequantizeLinear for weights,
// int32 biases and the constant inputs of Add/Mul/Concat. Axis semantics follow the ONNX spec:
// DequantizeLinear's per-axis scale is 1-D with one value per index of `axis` of its input, so a
// weight's per-channel axis is its output-channel axis in the weighted-layer table (Conv 0, Gemm's
// B 0 when transB else 1, MatMul's [K, N] 1).
import { attr } from '../../ir/attribute.js';
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { roundHalfEven, sqnrDb } from '../../kernels/quantize-blocks.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { outputChannelAxis } from '../../graph-edit/weighted-layers.js';
import type { PlannedConstant, PlannedNode, QdqPlan } from './qdq-placement.js';
import { type Int8Type, type QuantParams, quantizeBias, quantizeWeight, rangeParams } from './quant-params.js';
import { type QuantizedTensorReport, dropUnreadConstant } from './weight-tensors.js';

export interface RewriteOptions {
  perChannel: boolean;
  weightType: Int8Type;
  reduceRange: boolean;
  activationType: Int8Type;
  symmetric: boolean;
}

export interface RewriteResult {
  tensors: QuantizedTensorReport[];
  /** Activation values that got a Q/DQ pair. */
  activations: number;
}

const TYPE: Record<Int8Type, DataType> = { int8: DataType.INT8, uint8: DataType.UINT8 };

/** Rewrites `graph` (the model's main graph) following `plan` with the activation parameters in `params`. */
export function rewriteQdq(model: Model, graph: Graph, plan: QdqPlan, params: ReadonlyMap<string, QuantParams>, options: RewriteOptions): RewriteResult {
  const tensors: QuantizedTensorReport[] = [];
  for (const planned of plan.nodes) {
    // Weights first: the bias needs the weight's scales.
    const ordered = [...planned.constants].sort((a, b) => rank(a) - rank(b));
    let weightScales: Float32Array | undefined;
    for (const constant of ordered) {
      const report = quantizeConstant(model, graph, planned, constant, params, options, weightScales);
      if (report === undefined) continue;
      if (constant.kind === 'weight') weightScales = report.scales;
      tensors.push(report.entry);
    }
  }
  let activations = 0;
  for (const [value, p] of params) {
    insertQdq(model, graph, value, p);
    activations++;
  }
  return { tensors, activations };
}

function rank(c: PlannedConstant): number {
  return c.kind === 'weight' ? 0 : c.kind === 'constant' ? 1 : 2;
}

function quantizeConstant(
  model: Model,
  graph: Graph,
  planned: PlannedNode,
  constant: PlannedConstant,
  params: ReadonlyMap<string, QuantParams>,
  options: RewriteOptions,
  weightScales: Float32Array | undefined,
): { entry: QuantizedTensorReport; scales: Float32Array } | undefined {
  const { node } = planned;
  const name = node.inputs[constant.index];
  const tensor = constantValue(graph, name);
  if (tensor === undefined || tensor.dataType !== DataType.FLOAT) return undefined;
  const values = tensor.data() as Float32Array;
  let codes: Tensor;
  let scale: Tensor;
  let zero: Tensor | undefined;
  let axis: number | undefined;
  let restored: Float32Array;
  if (constant.kind === 'bias') {
    const input = params.get(node.inputs[0]);
    if (input === undefined || weightScales === undefined) return undefined;
    const q = quantizeBias(values, input.scale, weightScales);
    codes = Tensor.fromArray(graph.uniqueName(`${name}_quantized`), DataType.INT32, tensor.dims, q.codes);
    scale = Tensor.fromArray(graph.uniqueName(`${name}_scale`), DataType.FLOAT, q.scales.length === 1 ? [] : [q.scales.length], q.scales);
    axis = q.scales.length === 1 ? undefined : 0;
    restored = Float32Array.from(q.codes, (c, i) => c * q.scales[q.scales.length === 1 ? 0 : i]);
  } else {
    const weight = constant.kind === 'weight';
    let q;
    if (weight) {
      q = quantizeWeight(values, tensor.dims, options.perChannel ? outputChannelAxis(node, tensor.dims) : undefined, options.weightType, options.reduceRange);
    } else {
      // Add/Mul/Concat constants take the activation type (the integer kernels want one type);
      // a Concat's constant shares the Concat's parameters.
      const shared = node.opType === 'Concat' && planned.output !== undefined ? params.get(planned.output) : undefined;
      const p = shared ?? rangeParams({ min: Math.min(...values), max: Math.max(...values) }, options.activationType, options.symmetric);
      q = quantizeWithParams(values, p);
    }
    axis = q.axis;
    const type = TYPE[weight ? options.weightType : options.activationType];
    const scaleDims = axis === undefined ? [] : [q.scales.length];
    codes = Tensor.fromArray(graph.uniqueName(`${name}_quantized`), type, tensor.dims, q.codes);
    scale = Tensor.fromArray(graph.uniqueName(`${name}_scale`), DataType.FLOAT, scaleDims, q.scales);
    zero = Tensor.fromArray(graph.uniqueName(`${name}_zero_point`), type, scaleDims, q.zeroPoints);
    const inner = axis === undefined ? values.length : tensor.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const channels = q.scales.length;
    restored = Float32Array.from(q.codes, (c, i) => {
      const k = axis === undefined ? 0 : Math.floor(i / inner) % channels;
      return (c - q.zeroPoints[k]) * q.scales[k];
    });
  }
  const added = zero === undefined ? [codes, scale] : [codes, scale, zero];
  for (const t of added) addConstant(model, graph, t, node);
  const output = graph.uniqueName(`${name}_dequantized`);
  const dq = new Node({
    opType: 'DequantizeLinear',
    inputs: added.map((t) => t.name),
    outputs: [output],
    name: graph.uniqueName(`${name}_DequantizeLinear`),
    attributes: axis === undefined ? [] : [attr.int('axis', axis)],
  });
  graph.addNode(dq, graph.nodes.indexOf(node));
  node.inputs[constant.index] = output;
  graph.changed();
  dropUnreadConstant(graph, name);
  return {
    entry: {
      name,
      op: node.opType,
      node: node.label,
      bytesBefore: tensor.byteLength,
      bytesAfter: added.reduce((n, t) => n + t.byteLength, 0),
      sqnrDb: sqnrDb(values, restored),
    },
    scales: scale.data() as Float32Array,
  };
}

/** Per-tensor codes with given parameters (constants that must match an activation's type). */
function quantizeWithParams(values: Float32Array, p: QuantParams): { codes: Int8Array | Uint8Array; scales: Float32Array; zeroPoints: Int8Array | Uint8Array; axis: undefined } {
  const codes = p.type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  const [qmin, qmax] = p.type === 'int8' ? [-128, 127] : [0, 255];
  for (let i = 0; i < values.length; i++) codes[i] = Math.min(qmax, Math.max(qmin, roundHalfEven(values[i] / p.scale) + p.zeroPoint));
  const zeroPoints = p.type === 'int8' ? Int8Array.of(p.zeroPoint) : Uint8Array.of(p.zeroPoint);
  return { codes, scales: Float32Array.of(p.scale), zeroPoints, axis: undefined };
}

/** value -> QuantizeLinear -> DequantizeLinear, with every reader of `value` moved to the dequantized one. */
function insertQdq(model: Model, graph: Graph, value: string, p: QuantParams): void {
  const readers = [...graph.consumers(value)];
  const producer = graph.producer(value);
  const type = TYPE[p.type];
  const scale = Tensor.fromArray(graph.uniqueName(`${value}_scale`), DataType.FLOAT, [], Float32Array.of(p.scale));
  const zero = Tensor.fromArray(graph.uniqueName(`${value}_zero_point`), type, [], p.type === 'int8' ? Int8Array.of(p.zeroPoint) : Uint8Array.of(p.zeroPoint));
  // Constant nodes (IR < 4 main graphs) go first; the pass sorts the graph afterwards anyway.
  addConstant(model, graph, scale, graph.nodes[0]);
  addConstant(model, graph, zero, graph.nodes[0]);
  const quantized = graph.uniqueName(`${value}_quantized`);
  const dequantized = graph.uniqueName(`${value}_dequantized`);
  const at = producer === undefined ? 0 : graph.nodes.indexOf(producer) + 1;
  graph.addNode(new Node({ opType: 'DequantizeLinear', inputs: [quantized, scale.name, zero.name], outputs: [dequantized], name: graph.uniqueName(`${value}_DequantizeLinear`) }), at);
  graph.addNode(new Node({ opType: 'QuantizeLinear', inputs: [value, scale.name, zero.name], outputs: [quantized], name: graph.uniqueName(`${value}_QuantizeLinear`) }), at);
  for (const reader of readers) reader.inputs = reader.inputs.map((input) => (input === value ? dequantized : input));
  graph.changed();
}
