// Upgrades a model's ai.onnx opset import (from 9, 10, 11 or 12 up to at most 13), rewriting the
// nodes whose signature or meaning changed on the way so the model computes exactly what it did.
// Quantization needs this: QuantizeLinear/DequantizeLinear exist from opset 10 and take per-axis
// scales from 13, and exporters such as Paddle2ONNX still write opset 9.
//
// Rewrites, each applied when its version lies in (from, to]:
//   10  Slice (starts/ends/axes attributes -> inputs), TopK (k -> input), Upsample -> Resize
//   11  Clip (min/max -> inputs), Pad (pads/value -> inputs), Resize-10 -> Resize-11 (roi input,
//       asymmetric coordinates: what Resize-10 computed)
//   12  Dropout (ratio -> input; its mask turned from T into bool, so a read mask is refused)
//   13  Squeeze, Unsqueeze, ReduceSum (axes -> input), Split (split -> input); Softmax, LogSoftmax
//       and Hardmax stop flattening the input to 2-D around `axis`: the axis is written out when it
//       is the last one (shape inference says so), otherwise Flatten -> op -> Reshape keeps the old
//       meaning. Resize-11's tf_half_pixel_for_nn mode no longer exists and is refused.
// Every other op must be in UNCHANGED_9_TO_13 (same results at every version for the same node);
// anything else is refused with one line naming the op and the node, before the model is touched.
// Not in the optimizer registry: it changes the model's interface version, so it runs on request
// (static int8 quantization, or a caller that wants a newer opset).
import { type Attribute, attr, int64ToNumber } from '../ir/attribute.js';
import { isStandardDomain } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import { numberToFloat16 } from '../kernels/float16.js';
import type { Pass } from '../pipeline/pass.js';
import { inferShapes } from './shape-inference/index.js';
import { allGraphs } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

export interface UpgradeOpsetOptions {
  /** The ai.onnx version wanted: 10 to 13 (default 13). Models already there are left alone. */
  to?: number;
}

/** Ops whose results are the same at every version from 9 through 13 for the same node. */
export const UNCHANGED_9_TO_13: ReadonlySet<string> = new Set([
  'Abs', 'Acos', 'Acosh', 'Add', 'And', 'ArgMax', 'ArgMin', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool', 'BatchNormalization',
  'BitShift', 'Cast', 'Ceil', 'Celu', 'Compress', 'Concat', 'Constant', 'ConstantOfShape', 'Conv', 'ConvInteger', 'ConvTranspose',
  'Cos', 'Cosh', 'CumSum', 'DepthToSpace', 'DequantizeLinear', 'Det', 'Div', 'DynamicQuantizeLinear', 'Einsum', 'Elu', 'Equal', 'Erf',
  'Exp', 'Expand', 'EyeLike', 'Flatten', 'Floor', 'GRU', 'Gather', 'GatherElements', 'GatherND', 'Gemm', 'GlobalAveragePool',
  'GlobalLpPool', 'GlobalMaxPool', 'Greater', 'GreaterOrEqual', 'HardSigmoid', 'Identity', 'If', 'InstanceNormalization', 'IsInf',
  'IsNaN', 'LRN', 'LSTM', 'LeakyRelu', 'Less', 'LessOrEqual', 'Log', 'Loop', 'LpNormalization', 'LpPool', 'MatMul', 'MatMulInteger',
  'Max', 'MaxPool', 'MaxRoiPool', 'MaxUnpool', 'Mean', 'MeanVarianceNormalization', 'Min', 'Mod', 'Mul', 'Neg', 'NonMaxSuppression',
  'NonZero', 'Not', 'OneHot', 'Or', 'PRelu', 'Pow', 'QLinearConv', 'QLinearMatMul', 'QuantizeLinear', 'RNN', 'Range', 'Reciprocal',
  'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSumSquare',
  'Relu', 'Reshape', 'RoiAlign', 'Round', 'Scan', 'ScatterElements', 'ScatterND', 'Selu', 'Shape', 'Shrink', 'Sigmoid', 'Sign', 'Sin',
  'Sinh', 'Size', 'Softplus', 'Softsign', 'SpaceToDepth', 'Sqrt', 'Sub', 'Sum', 'Tan', 'Tanh', 'ThresholdedRelu', 'Tile',
  'Transpose', 'Unique', 'Where', 'Xor',
]);

type Rewrite = (node: Node, site: Site) => void;

/** Where a rewrite happens: the graph, helpers to add constants and nodes in front of the node. */
interface Site {
  graph: Graph;
  to: number;
  /** Inferred rank and element type of a value of this graph, when shape inference knew them. */
  typeOf(value: string): { elemType: number; rank?: number } | undefined;
  ints(base: string, values: readonly number[]): string;
  scalar(base: string, elemType: number, value: number): string;
  before(node: Node, opType: string, inputs: string[], attributes?: Attribute[]): string;
  result: PassResult;
}

/** The rewrites per op, with the version that made each necessary. */
const REWRITES: Readonly<Record<string, ReadonlyArray<{ at: number; rewrite: Rewrite }>>> = {
  Slice: [{ at: 10, rewrite: attributesToInputs(['starts', 'ends', 'axes']) }],
  TopK: [{ at: 10, rewrite: kToInput }],
  Upsample: [{ at: 10, rewrite: upsampleToResize }],
  Clip: [{ at: 11, rewrite: clipToInputs }],
  Pad: [{ at: 11, rewrite: padToInputs }],
  Resize: [{ at: 11, rewrite: resize10To11 }, { at: 13, rewrite: resize11To13 }],
  Dropout: [{ at: 12, rewrite: dropoutRatioToInput }],
  Squeeze: [{ at: 13, rewrite: attributesToInputs(['axes']) }],
  Unsqueeze: [{ at: 13, rewrite: attributesToInputs(['axes']) }],
  ReduceSum: [{ at: 13, rewrite: reduceSumAxes }],
  Split: [{ at: 13, rewrite: attributesToInputs(['split']) }],
  Softmax: [{ at: 13, rewrite: softmaxPerAxis }],
  LogSoftmax: [{ at: 13, rewrite: softmaxPerAxis }],
  Hardmax: [{ at: 13, rewrite: softmaxPerAxis }],
};

/** Why `node` cannot be upgraded from `from` to `to`, or undefined. */
function refusal(node: Node, from: number, to: number): string | undefined {
  if (REWRITES[node.opType] === undefined && !UNCHANGED_9_TO_13.has(node.opType)) return 'the op is not known to keep its meaning across these versions';
  if (node.opType === 'BatchNormalization' && node.attribute('spatial') !== undefined && node.attrInt('spatial') !== 1) return 'spatial=0 has no equivalent after opset 9';
  if (node.opType === 'Dropout' && from < 12 && to >= 12 && node.outputs.length > 1 && node.outputs[1] !== '') return 'its mask output changes type (T to bool) at opset 12';
  if (node.opType === 'Resize' && from < 13 && to >= 13 && node.attrString('coordinate_transformation_mode') === 'tf_half_pixel_for_nn') return "coordinate_transformation_mode 'tf_half_pixel_for_nn' was removed at opset 13";
  if (node.opType === 'Upsample' && from >= 10) return 'Upsample is deprecated from opset 10';
  return undefined;
}

/** Rewrites the model in place so it imports ai.onnx `to`; throws (model untouched) when it cannot. */
export function upgradeOpset(model: Model, options: UpgradeOpsetOptions = {}): PassResult {
  const to = options.to ?? 13;
  const from = model.opset('') ?? 1;
  const result = new PassResult(['from', 'to', 'nodesRewritten', 'softmaxFlattened', 'constantsAdded']);
  result.stats.from = from;
  result.stats.to = Math.max(from, to);
  if (to < 10 || to > 13) throw new Error(`upgrade-opset: target ai.onnx opset ${to} is not supported (10 to 13)`);
  if (from >= to) return result;
  if (from < 9) throw new Error(`upgrade-opset: the model imports ai.onnx opset ${from}; only 9 to 12 can be upgraded`);
  for (const fn of model.functions) {
    if (fn.node.some((n) => isStandardDomain(n.domain))) throw new Error(`upgrade-opset: model-local function '${fn.name}' uses ai.onnx ops; functions are not upgraded`);
  }
  const graphs = allGraphs(model.graph);
  for (const graph of graphs) {
    for (const node of graph.nodes) {
      if (!isStandardDomain(node.domain)) continue;
      const why = refusal(node, from, to);
      if (why !== undefined) throw new Error(`upgrade-opset: cannot upgrade ai.onnx opset ${from} to ${to}: ${node.opType} node '${node.label}' in graph '${graph.name}': ${why}`);
    }
  }

  // Ranks for Softmax and element types for Clip/Pad constants; inferred on the model as it stands.
  let inferred: ReturnType<typeof inferShapes>['types'] = new Map();
  try {
    inferred = inferShapes(model).types;
  } catch {
    // Without inference, Softmax takes the always-correct Flatten/Reshape form and constants are float.
  }
  for (const graph of graphs) {
    const types = inferred.get(graph);
    const site: Site = {
      graph,
      to,
      result,
      typeOf: (value) => {
        const t = types?.get(value);
        return t === undefined ? undefined : { elemType: t.elemType, rank: t.shape?.length };
      },
      ints: (base, values) => {
        result.count('constantsAdded');
        return graph.addInitializer(Tensor.fromArray(graph.uniqueName(base), DataType.INT64, [values.length], BigInt64Array.from(values, (v) => BigInt(v)))).name;
      },
      scalar: (base, elemType, value) => {
        result.count('constantsAdded');
        return graph.addInitializer(scalarTensor(graph.uniqueName(base), elemType, value)).name;
      },
      before: (node, opType, inputs, attributes = []) => {
        const output = graph.uniqueName(`${node.name || opType}_${opType.toLowerCase()}`);
        graph.addNode({ opType, inputs, outputs: [output], name: graph.uniqueName(`${node.name || opType}_${opType}`), attributes }, graph.nodes.indexOf(node));
        return output;
      },
    };
    for (const node of [...graph.nodes]) {
      if (!isStandardDomain(node.domain)) continue;
      if (node.opType === 'BatchNormalization' && node.attribute('spatial') !== undefined) node.removeAttribute('spatial');
      let touched = false;
      for (const step of REWRITES[node.opType] ?? []) {
        if (step.at > from && step.at <= to) {
          step.rewrite(node, site);
          touched = true;
        }
      }
      if (touched) result.count('nodesRewritten');
    }
    graph.changed();
  }
  model.opsetImports = model.opsetImports.map((o) => (isStandardDomain(o.domain) ? { ...o, version: to } : o));
  // Opset 13 came with IR version 7, opset 10 with 5.
  const ir = to >= 13 ? 7 : to >= 11 ? 6 : 5;
  if (model.irVersion < ir) model.irVersion = ir;
  return result;
}

/** A scalar of a float type holding `value` (float when the type is not known). */
function scalarTensor(name: string, elemType: number, value: number): Tensor {
  if (elemType === DataType.DOUBLE) return Tensor.fromArray(name, DataType.DOUBLE, [], new Float64Array([value]));
  if (elemType === DataType.FLOAT16) return Tensor.fromArray(name, DataType.FLOAT16, [], new Uint16Array([numberToFloat16(value)]));
  return Tensor.fromArray(name, DataType.FLOAT, [], new Float32Array([value]));
}

function ints(node: Node, name: string): number[] | undefined {
  const a = node.attribute(name);
  return a?.kind === 'ints' ? a.value.map(int64ToNumber) : undefined;
}

/** Moves int-list attributes into int64 inputs, in this order; a missing one stays an omitted input. */
function attributesToInputs(names: readonly string[]): Rewrite {
  return (node, site) => {
    const added = names.map((name) => {
      const values = ints(node, name);
      node.removeAttribute(name);
      return values === undefined ? '' : site.ints(`${node.name || node.opType}_${name}`, values);
    });
    while (added.length > 0 && added[added.length - 1] === '') added.pop();
    node.inputs = [node.inputs[0], ...added];
  };
}

function kToInput(node: Node, site: Site): void {
  const k = node.attrInt('k', 1);
  node.removeAttribute('k');
  node.inputs = [node.inputs[0], site.ints(`${node.name || 'TopK'}_k`, [k])];
}

function reduceSumAxes(node: Node, site: Site): void {
  attributesToInputs(['axes'])(node, site);
}

function clipToInputs(node: Node, site: Site): void {
  const elemType = site.typeOf(node.inputs[0])?.elemType ?? DataType.FLOAT;
  const min = node.attrFloat('min');
  const max = node.attrFloat('max');
  node.removeAttribute('min');
  node.removeAttribute('max');
  const base = node.name || 'Clip';
  node.inputs = [node.inputs[0], min === undefined ? '' : site.scalar(`${base}_min`, elemType, min), max === undefined ? '' : site.scalar(`${base}_max`, elemType, max)];
  while (node.inputs[node.inputs.length - 1] === '') node.inputs.pop();
}

function padToInputs(node: Node, site: Site): void {
  const pads = ints(node, 'pads') ?? [];
  const value = node.attrFloat('value', 0);
  node.removeAttribute('pads');
  node.removeAttribute('value');
  const base = node.name || 'Pad';
  const elemType = site.typeOf(node.inputs[0])?.elemType ?? DataType.FLOAT;
  const constant = node.attrString('mode', 'constant') === 'constant' && value !== 0 ? [site.scalar(`${base}_value`, elemType, value)] : [];
  node.inputs = [node.inputs[0], site.ints(`${base}_pads`, pads), ...constant];
}

function dropoutRatioToInput(node: Node, site: Site): void {
  const ratio = node.attrFloat('ratio', 0.5);
  node.removeAttribute('ratio');
  node.inputs = [node.inputs[0], site.scalar(`${node.name || 'Dropout'}_ratio`, DataType.FLOAT, ratio)];
  node.outputs = node.outputs.slice(0, 1);
}

/** Upsample-9 (X, scales) computes Resize-10 with the same mode; later Resize needs its roi slot too. */
function upsampleToResize(node: Node, site: Site): void {
  node.opType = 'Resize';
  node.proto = undefined;
  if (site.to >= 11) resize10To11(node, site);
}

/** Resize-10 is Upsample's arithmetic: asymmetric coordinates, nearest rounding down. */
function resize10To11(node: Node, site: Site): void {
  const roi = site.to >= 13 ? '' : site.graph.addInitializer(Tensor.fromArray(site.graph.uniqueName(`${node.name || 'Resize'}_roi`), DataType.FLOAT, [0], new Float32Array(0))).name;
  node.inputs = [node.inputs[0], roi, node.inputs[1] ?? ''];
  node.setAttribute(attr.string('coordinate_transformation_mode', 'asymmetric'));
  if (node.attrString('mode', 'nearest') === 'nearest') node.setAttribute(attr.string('nearest_mode', 'floor'));
}

/** Resize-13 made roi optional; an empty roi constant may stay. Nothing else changes for allowed modes. */
function resize11To13(): void {}

/**
 * Softmax-style ops before 13 flatten to [prod(d < axis), prod(d >= axis)] and normalize each row.
 * That is the per-axis op of 13 only when `axis` is the last axis; otherwise reproduce the flattening.
 */
function softmaxPerAxis(node: Node, site: Site): void {
  const axis = node.attrInt('axis', 1);
  const rank = site.typeOf(node.inputs[0])?.rank;
  if (rank !== undefined && (axis === rank - 1 || axis === -1)) {
    node.setAttribute(attr.int('axis', -1));
    return;
  }
  const input = node.inputs[0];
  const flat = site.before(node, 'Flatten', [input], [attr.int('axis', axis)]);
  const shape = site.before(node, 'Shape', [input]);
  const output = node.outputs[0];
  const normalized = site.graph.uniqueName(`${output}_2d`);
  node.inputs = [flat];
  node.outputs = [normalized];
  node.setAttribute(attr.int('axis', -1));
  const at = site.graph.nodes.indexOf(node) + 1;
  site.graph.addNode({ opType: 'Reshape', inputs: [normalized, shape], outputs: [output], name: site.graph.uniqueName(`${node.name || node.opType}_Reshape`) }, at);
  site.result.count('softmaxFlattened');
}

export const upgradeOpsetPass: Pass<UpgradeOpsetOptions> = {
  name: 'upgrade-opset',
  description: 'raises the ai.onnx opset (9-12 to 13), rewriting nodes whose signature or meaning changed',
  run: (model, options) => upgradeOpset(model, options).done(),
};
