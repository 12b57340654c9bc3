// The training copy of a static int8 (QDQ) model and the way back: quantization-aware training of
// static int8 trains the PTQ model's own graph, so that what is trained is what runs.
//   - A weight DequantizeLinear(int8 codes, s, zp, axis) reads QuantizeLinear(W, s, zp, axis) of a
//     trainable float W instead of the codes: fake quantization at PTQ's scale, zero point and axis.
//     W starts at the float weight PTQ rounded where the caller can give it (`before`: the float
//     model as PTQ optimized it, BatchNormalization folded; a weight is taken only where its codes
//     are exactly PTQ's, element by element), else at the dequantized codes. Either way the copy
//     computes exactly what the PTQ model does until training moves it. From the codes, every
//     weight sits at its bin's centre and needs half a step of training to change its code.
//   - An int32 bias DequantizeLinear becomes a trainable float bias, left float while training: its
//     step, s_x * s_w, is about 1/127 of a weight step times an activation step, so rounding it
//     moves an output by ~1e-4 of the activation's own step, and QuantizeLinear has no int32 output
//     to fake it with (no Round with a straight-through gradient either). The export rounds it.
//   - Every activation QuantizeLinear -> DequantizeLinear pair stays: fake quantization at the
//     calibrated scale, its gradient the clipped straight-through estimator (gradients/quantize.ts).
//     Scales and every other float constant are frozen (`frozen`): only W and the biases train.
// `requantize` writes trained floats back as codes on the same scales, into a copy of the PTQ
// model: the same graph with new initializer values.
// Units ('steps', the default): the trainable values are measured in quantization steps, W = U * s
// per channel (U starts at the codes), and a bias in units of 256 of its own codes (s_x * s_w * 256:
// what one weight code moves an output by at a full-range uint8 input). Adam moves every value by
// about the rate per step, whatever its size: in float units a rate that suits a channel whose step
// is 3e-3 (rec's median) moves a channel whose step is 1e-4 (rec's 1st percentile) 30 times as far
// in codes. In steps every channel moves the same share of its own step. 'float': W itself.
import { DataType, dataTypeName } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';

/** A weight whose int8 codes the training copy reads through fake quantization of a float. */
export interface StaticWeightTarget {
  /** The trainable float of the training copy: the weight, or the weight in steps (U, W = U * s). */
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
  /** The trainable float: the bias, or the bias in units of 256 codes. */
  float: string;
  codes: string;
  scale: Float32Array;
  axis: number | undefined;
  dims: number[];
}

/** What the trainable values are measured in (see the head of this file). */
export type StaticQatUnits = 'steps' | 'float';

/** A bias unit in 'steps', in bias codes. */
const BIAS_UNIT_CODES = 256;

export interface StaticFakeQuantModel {
  units: StaticQatUnits;
  /** Weights and biases that start at the float values PTQ rounded (the rest at their codes). */
  fromFloat: number;
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
export function staticFakeQuant(ptq: Model, units: StaticQatUnits = 'steps', before?: Model): StaticFakeQuantModel {
  const model = ptq.clone();
  const graph = model.graph;
  const weights: StaticWeightTarget[] = [];
  const biases: StaticBiasTarget[] = [];
  const floats = new Map<string, string>();
  let fromFloat = 0;
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
    const bias = codes.dataType === DataType.INT32;
    let values = units === 'float' ? dequantize(codes, scale, zeroTensor, axis) : bias ? Float32Array.from(codes.data() as Int32Array, (c) => c / BIAS_UNIT_CODES) : shiftedCodes(codes, zeroTensor, axis);
    // The rewrite names codes after the float they quantized.
    const original = before?.graph.initializer(codes.name.replace(/_quantized$/, ''));
    if (original !== undefined && original.dataType === DataType.FLOAT && original.dims.join() === codes.dims.join() && !floats.has(codes.name)) {
      const start = startingValues(original, codes, scale, zeroTensor, axis, units);
      if (start !== undefined) {
        values = start;
        fromFloat++;
      }
    }
    const known = floats.get(codes.name);
    const float = known ?? graph.uniqueName(`${codes.name}/qat_${units === 'float' ? 'float' : 'steps'}`);
    if (known === undefined) {
      floats.set(codes.name, float);
      graph.addInitializer(Tensor.fromArray(float, DataType.FLOAT, codes.dims, values));
    }
    // In steps, the value the graph computes with is U times the step (a frozen constant).
    const scaled = (unit: Float32Array) => {
      const step = graph.uniqueName(`${codes.name}/qat_step`);
      const dims = axis === undefined ? [] : [codes.dims[axis], ...codes.dims.slice(axis + 1).map(() => 1)];
      graph.addInitializer(Tensor.fromArray(step, DataType.FLOAT, dims, unit));
      const product = graph.uniqueName(`${codes.name}/qat_value`);
      graph.addNode({ opType: 'Mul', name: graph.uniqueName(`${node.name}/qat_scale`), inputs: [float, step], outputs: [product] }, graph.nodes.indexOf(node));
      return product;
    };
    if (bias) {
      if (known === undefined) biases.push({ float, codes: codes.name, scale: Float32Array.from(scale.data() as Float32Array), axis, dims: [...codes.dims] });
      const value = units === 'float' ? float : scaled(Float32Array.from(scale.data() as Float32Array, (v) => v * BIAS_UNIT_CODES));
      graph.replaceAllUses(node.outputs[0], value);
      graph.removeNode(node);
      continue;
    }
    const weight = units === 'float' ? float : scaled(Float32Array.from(scale.data() as Float32Array));
    let zeroPoint = node.inputs[2];
    if (zeroTensor === undefined) {
      // Without a zero point QuantizeLinear writes uint8: an int8 weight needs an explicit 0.
      zeroPoint = graph.uniqueName(`${codes.name}/qat_zero_point`);
      graph.addInitializer(Tensor.fromArray(zeroPoint, codes.dataType, scale.dims, codes.dataType === DataType.INT8 ? new Int8Array(scale.elementCount) : new Uint8Array(scale.elementCount)));
    }
    const quantized = graph.uniqueName(`${codes.name}/qat_codes`);
    const at = graph.nodes.indexOf(node);
    graph.addNode({ opType: 'QuantizeLinear', name: graph.uniqueName(`${node.name}/qat_quantize`), inputs: [weight, node.inputs[1], zeroPoint], outputs: [quantized], attributes: node.attributes.filter((a) => a.name === 'axis') }, at);
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
  return { units, fromFloat, model, weights, biases, frozen };
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
  const steps = fake.units === 'steps';
  for (const w of fake.weights) {
    const values = valueOf(w.float);
    const [lo, hi] = CODE_RANGE[w.type] as [number, number];
    const inner = innerSize(w.dims, w.axis);
    const channels = w.axis === undefined ? 1 : w.dims[w.axis];
    const codes = w.type === DataType.INT8 ? new Int8Array(values.length) : new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const c = w.axis === undefined ? 0 : Math.floor(i / inner) % channels;
      // As the graph computes it: in steps, the weight is the float32 product U * s first.
      const weight = steps ? Math.fround(values[i] * w.scale[c]) : values[i];
      codes[i] = Math.min(hi, Math.max(lo, roundHalfEven(Math.fround(weight / w.scale[c])) + w.zeroPoint[c]));
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
      const bias = steps ? Math.fround(values[i] * Math.fround(s * BIAS_UNIT_CODES)) : values[i];
      codes[i] = Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), roundHalfEven(bias / s)));
      // What DequantizeLinear computes is the code times the scale, in float32; in steps, U = code /
      // 256 (exact: a power of two) times s * 256 (exact too) gives that same product.
      snapped[i] = steps ? codes[i] / BIAS_UNIT_CODES : Math.fround(codes[i] * s);
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

/**
 * The trainable values that start at `original`, the float PTQ rounded into `codes`: a bias as it
 * is (in its units); a weight where the copy's fake quantization gives exactly PTQ's code, else
 * that code's own value; undefined when `original` is not what these codes came from (over half
 * the weight's codes differ).
 */
function startingValues(original: Tensor, codes: Tensor, scale: Tensor, zero: Tensor | undefined, axis: number | undefined, units: StaticQatUnits): Float32Array | undefined {
  const w = original.data() as Float32Array;
  const s = scale.data() as Float32Array;
  const inner = innerSize(codes.dims, axis);
  const count = axis === undefined ? 1 : codes.dims[axis];
  const channel = (i: number) => (axis === undefined ? 0 : Math.floor(i / inner) % count);
  if (codes.dataType === DataType.INT32) return units === 'float' ? Float32Array.from(w) : Float32Array.from(w, (v, i) => v / Math.fround(s[channel(i)] * BIAS_UNIT_CODES));
  const q = codes.data();
  const zp = zeroPoints(zero, count);
  const [lo, hi] = CODE_RANGE[codes.dataType] as [number, number];
  const out = new Float32Array(w.length);
  let differ = 0;
  for (let i = 0; i < w.length; i++) {
    const c = channel(i);
    const code = Number(q[i]);
    const value = units === 'float' ? w[i] : Math.fround(w[i] / s[c]);
    // What the copy computes from it: the weight (U * s in steps), divided by s, rounded, shifted.
    const weight = units === 'float' ? value : Math.fround(value * s[c]);
    if (Math.min(hi, Math.max(lo, roundHalfEven(Math.fround(weight / s[c])) + zp[c])) === code) out[i] = value;
    else {
      differ++;
      out[i] = units === 'float' ? Math.fround((code - zp[c]) * s[c]) : code - zp[c];
    }
  }
  return differ * 2 > w.length ? undefined : out;
}

/** q - zp as floats: a weight in steps. */
function shiftedCodes(codes: Tensor, zero: Tensor | undefined, axis: number | undefined): Float32Array {
  const q = codes.data();
  const count = axis === undefined ? 1 : codes.dims[axis];
  const zp = zeroPoints(zero, count);
  const inner = innerSize(codes.dims, axis);
  return Float32Array.from({ length: q.length }, (_, i) => Number(q[i]) - zp[axis === undefined ? 0 : Math.floor(i / inner) % count]);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round takes halves up; QuantizeLinear takes them to the even neighbour.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
