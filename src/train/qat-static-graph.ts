// The training copy of a static int8 (QDQ) model and the way back: quantization-aware training of
// static int8 trains the PTQ model's own graph, so that what is trained is what runs.
//   - A weight DequantizeLinear(int8 codes, s, zp, axis) reads QuantizeLinear(W, s, zp, axis) of a
//     trainable float W instead of the codes: fake quantization at PTQ's scale, zero point and axis.
//     W starts at the dequantized codes, so the copy computes exactly what the PTQ model does until
//     training moves it (the float weights before rounding are gone: PTQ folded BatchNormalization
//     into them first).
//   - An int32 bias DequantizeLinear becomes a trainable float bias, left float while training: its
//     step, s_x * s_w, is about 1/127 of a weight step times an activation step, so rounding it
//     moves an output by ~1e-4 of the activation's own step, and QuantizeLinear has no int32 output
//     to fake it with (no Round with a straight-through gradient either). The export rounds it.
//   - Every activation QuantizeLinear -> DequantizeLinear pair stays: fake quantization at the
//     calibrated scale, its gradient the clipped straight-through estimator (gradients/quantize.ts).
//     Scales and every other float constant are frozen (`frozen`): only W and the biases train.
// `requantize` writes trained floats back as codes on the same scales, into a copy of the PTQ
// model: the same graph with new initializer values.
import { DataType, dataTypeName } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';

/** A weight whose int8 codes the training copy reads through fake quantization of a float. */
export interface StaticWeightTarget {
  /** The trainable float weight of the training copy. */
  float: string;
  /** The PTQ model's code initializer (int8 or uint8). */
  codes: string;
  scale: Float32Array;
  zeroPoint: Int32Array;
  /** The per-channel axis, or undefined for one scale. */
  axis: number | undefined;
  dims: number[];
  type: DataType;
}

/** An int32 bias, trained as a float and rounded on its scale at export. */
export interface StaticBiasTarget {
  float: string;
  codes: string;
  scale: Float32Array;
  axis: number | undefined;
  dims: number[];
}

export interface StaticFakeQuantModel {
  /** The PTQ model with trainable floats in place of its weight and bias codes. */
  model: Model;
  weights: StaticWeightTarget[];
  biases: StaticBiasTarget[];
  /** Every other float initializer (activation and weight scales, shapes, constants): kept as is. */
  frozen: string[];
}

const CODE_RANGE: Partial<Record<DataType, [number, number]>> = {
  [DataType.INT8]: [-128, 127],
  [DataType.UINT8]: [0, 255],
  [DataType.INT32]: [-(2 ** 31), 2 ** 31 - 1],
};

/** The training copy of `ptq` (not changed), a static int8 model in QDQ form. */
export function staticFakeQuant(ptq: Model): StaticFakeQuantModel {
  const model = ptq.clone();
  const graph = model.graph;
  const weights: StaticWeightTarget[] = [];
  const biases: StaticBiasTarget[] = [];
  const floats = new Map<string, string>();
  for (const node of [...graph.nodes]) {
    if (node.opType !== 'DequantizeLinear' || node.domain !== '') continue;
    const codes = graph.initializer(node.inputs[0]);
    const scale = graph.initializer(node.inputs[1]);
    if (codes === undefined || scale === undefined) continue;
    if (node.attrInt('block_size', 0) > 0) throw new Error(`DequantizeLinear '${node.name}': blocked codes are not static int8's (block_size)`);
    if (scale.dataType !== DataType.FLOAT) throw new Error(`DequantizeLinear '${node.name}': scale '${scale.name}' is ${dataTypeName(scale.dataType)}, not float`);
    const zeroTensor = node.inputs[2] === undefined || node.inputs[2] === '' ? undefined : graph.initializer(node.inputs[2]);
    if (node.inputs[2] !== undefined && node.inputs[2] !== '' && zeroTensor === undefined) continue;
    const range = CODE_RANGE[codes.dataType];
    if (range === undefined) continue;
    const axis = scale.elementCount === 1 ? undefined : normalizedAxis(node, codes.dims.length);
    const values = dequantize(codes, scale, zeroTensor, axis);
    const known = floats.get(codes.name);
    const float = known ?? graph.uniqueName(`${codes.name}/qat_float`);
    if (known === undefined) {
      floats.set(codes.name, float);
      graph.addInitializer(Tensor.fromArray(float, DataType.FLOAT, codes.dims, values));
    }
    if (codes.dataType === DataType.INT32) {
      if (known === undefined) biases.push({ float, codes: codes.name, scale: Float32Array.from(scale.data() as Float32Array), axis, dims: [...codes.dims] });
      graph.replaceAllUses(node.outputs[0], float);
      graph.removeNode(node);
      continue;
    }
    let zeroPoint = node.inputs[2];
    if (zeroTensor === undefined) {
      // Without a zero point QuantizeLinear writes uint8: an int8 weight needs an explicit 0.
      zeroPoint = graph.uniqueName(`${codes.name}/qat_zero_point`);
      graph.addInitializer(Tensor.fromArray(zeroPoint, codes.dataType, scale.dims, codes.dataType === DataType.INT8 ? new Int8Array(scale.elementCount) : new Uint8Array(scale.elementCount)));
    }
    const quantized = graph.uniqueName(`${codes.name}/qat_codes`);
    const at = graph.nodes.indexOf(node);
    graph.addNode({ opType: 'QuantizeLinear', name: graph.uniqueName(`${node.name}/qat_quantize`), inputs: [float, node.inputs[1], zeroPoint], outputs: [quantized], attributes: node.attributes.filter((a) => a.name === 'axis') }, at);
    node.inputs = [quantized, node.inputs[1], zeroPoint];
    if (known === undefined) {
      weights.push({ float, codes: codes.name, scale: Float32Array.from(scale.data() as Float32Array), zeroPoint: zeroPoints(zeroTensor, scale.elementCount), axis, dims: [...codes.dims], type: codes.dataType });
    }
  }
  graph.changed();
  // Codes nobody reads any more (every reader now reads the float) leave the training copy.
  for (const name of floats.keys()) if (graph.consumers(name).length === 0 && !graph.isGraphOutput(name)) graph.removeInitializer(name);
  const trained = new Set(floats.values());
  const frozen = graph.initializers.filter((t) => t.dataType === DataType.FLOAT && !trained.has(t.name)).map((t) => t.name);
  return { model, weights, biases, frozen };
}

/**
 * A copy of `ptq` whose weight and bias codes hold `trained` (float values by the training copy's
 * names) quantized on the PTQ scales, as QuantizeLinear computes them: round half to even of the
 * float32 quotient, plus the zero point, saturated. Also returns the float values the written codes
 * stand for, for the training copy: there the biases are rounded as written, so that the copy
 * computes what the written model does.
 */
export function requantize(ptq: Model, fake: StaticFakeQuantModel, trained: ReadonlyMap<string, Tensor>): { model: Model; written: Map<string, Tensor> } {
  const model = ptq.clone();
  const written = new Map<string, Tensor>();
  const replace = (name: string, tensor: Tensor) => {
    const at = model.graph.initializers.findIndex((t) => t.name === name);
    if (at < 0) throw new Error(`the quantized model has no initializer '${name}'`);
    model.graph.replaceInitializer(at, tensor);
  };
  const valueOf = (name: string): Float32Array => {
    const t = trained.get(name);
    if (t === undefined || t.dataType !== DataType.FLOAT) throw new Error(`no trained float weight '${name}'`);
    return t.data() as Float32Array;
  };
  for (const w of fake.weights) {
    const values = valueOf(w.float);
    const [lo, hi] = CODE_RANGE[w.type] as [number, number];
    const inner = innerSize(w.dims, w.axis);
    const channels = w.axis === undefined ? 1 : w.dims[w.axis];
    const codes = w.type === DataType.INT8 ? new Int8Array(values.length) : new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const c = w.axis === undefined ? 0 : Math.floor(i / inner) % channels;
      codes[i] = Math.min(hi, Math.max(lo, roundHalfEven(Math.fround(values[i] / w.scale[c])) + w.zeroPoint[c]));
    }
    replace(w.codes, Tensor.fromArray(w.codes, w.type, w.dims, codes));
    written.set(w.float, Tensor.fromArray(w.float, DataType.FLOAT, w.dims, values));
  }
  for (const b of fake.biases) {
    const values = valueOf(b.float);
    const inner = innerSize(b.dims, b.axis);
    const channels = b.axis === undefined ? 1 : b.dims[b.axis];
    const codes = new Int32Array(values.length);
    const snapped = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const s = b.scale[b.axis === undefined ? 0 : Math.floor(i / inner) % channels];
      codes[i] = Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), roundHalfEven(values[i] / s)));
      // What DequantizeLinear computes: the code times the scale, in float32.
      snapped[i] = Math.fround(codes[i] * s);
    }
    replace(b.codes, Tensor.fromArray(b.codes, DataType.INT32, b.dims, codes));
    written.set(b.float, Tensor.fromArray(b.float, DataType.FLOAT, b.dims, snapped));
  }
  model.graph.changed();
  return { model, written };
}

function normalizedAxis(node: Node, rank: number): number {
  const given = node.attrInt('axis', 1);
  return given < 0 ? given + rank : given;
}

function innerSize(dims: readonly number[], axis: number | undefined): number {
  return axis === undefined ? 1 : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
}

function zeroPoints(tensor: Tensor | undefined, count: number): Int32Array {
  if (tensor === undefined) return new Int32Array(count);
  const data = tensor.data();
  return Int32Array.from({ length: count }, (_, i) => Number(data[tensor.elementCount === 1 ? 0 : i]));
}

/** (q - zp) * s in float32, as DequantizeLinear computes it. */
function dequantize(codes: Tensor, scale: Tensor, zero: Tensor | undefined, axis: number | undefined): Float32Array {
  const q = codes.data();
  const s = scale.data() as Float32Array;
  const zp = zeroPoints(zero, scale.elementCount);
  const inner = innerSize(codes.dims, axis);
  const channels = axis === undefined ? 1 : codes.dims[axis];
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const c = axis === undefined ? 0 : Math.floor(i / inner) % channels;
    out[i] = Math.fround((Number(q[i]) - zp[c]) * s[c]);
  }
  return out;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round takes halves up; QuantizeLinear takes them to the even neighbour.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
