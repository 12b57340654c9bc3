// What the weight-only quantization passes share: reading a float weight wherever it lives,
// writing new constants, dropping a Constant node nobody reads any more, quantizing a weight once
// per graph, the com.microsoft op and opset import, and the per-tensor report every pass returns
// (bytes before/after and SQNR).
import { type Attribute, attr } from '../../ir/attribute.js';
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType, dataTypeName } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { float16BitsToFloat32, float32ToFloat16Bits, type ScaleType } from '../../kernels/quant-formats.js';
import type { PassReport } from '../../pipeline/pass.js';
import { isOp, isRead } from '../../optimize/util/graph-queries.js';
import type { PassResult } from '../../optimize/util/report.js';
import { matrixWeightShape, WEIGHTED_OPS } from '../../graph-edit/weighted-layers.js';
import { addConstant } from '../../optimize/util/write-constant.js';

export const MS_DOMAIN = 'com.microsoft';

/** One weight a pass quantized. */
export interface QuantizedTensorReport {
  /** The weight's value name. */
  name: string;
  /** The op that reads it (MatMul, Gather, Conv, Gemm). */
  op: string;
  node: string;
  /** Stored bytes of the float weight, and of everything that replaced it (codes, scales, zero points). */
  bytesBefore: number;
  bytesAfter: number;
  /** 10 log10(sum w^2 / sum (w - dequant(quant(w)))^2). */
  sqnrDb: number;
}

/** A pass report with the per-tensor details (runPass keeps extra fields as they are). */
export interface WeightQuantReport extends Omit<PassReport, 'pass' | 'ms'> {
  tensors: QuantizedTensorReport[];
}

/** A float32 or float16 weight as float32 values, or a reason it cannot be read as one. */
export function readFloatWeight(graph: Graph, name: string): { tensor: Tensor; values: Float32Array } | { reason: string } {
  const tensor = constantValue(graph, name);
  if (tensor === undefined) return { reason: `'${name}' is computed at run time, not a constant` };
  if (tensor.dataType === DataType.FLOAT) return { tensor, values: tensor.data() as Float32Array };
  if (tensor.dataType === DataType.FLOAT16) {
    const bits = tensor.data() as Uint16Array;
    const values = new Float32Array(bits.length);
    for (let i = 0; i < bits.length; i++) values[i] = float16BitsToFloat32(bits[i]);
    return { tensor, values };
  }
  return { reason: `weight '${name}' is ${dataTypeName(tensor.dataType)}; only float32 and float16 weights are quantized` };
}

/** A 2-D float weight (MatMul B, Gemm B), or why it is not one, with the skip code for reports. */
export function readFloatMatrix(graph: Graph, name: string, consumer: string): { tensor: Tensor; values: Float32Array; dims: [number, number] } | { code: string; reason: string } {
  const weight = readFloatWeight(graph, name);
  if ('reason' in weight) return { code: 'weight-not-constant-float', reason: weight.reason };
  const dims = weight.tensor.dims;
  if (dims.length !== 2) return { code: 'weight-not-2d', reason: `weight '${name}' has shape [${dims.join(',')}]; ${consumer} needs a 2-D weight` };
  return { ...weight, dims: [dims[0], dims[1]] };
}

/** Columns `first` to `first + count` of row-major [rows, cols] `data`, as rows: [count, rows]. */
export function transposeColumns(data: Float32Array, rows: number, cols: number, first: number, count: number): Float32Array {
  const out = new Float32Array(count * rows);
  // Eight source rows at a time: each output column gets eight consecutive writes while the
  // reads walk eight rows in step, in stretches of 64 columns that stay in cache (3x faster on
  // 4096^2 than square 32x32 tiles, which were 3x faster than the plain double loop).
  const R = 8;
  const C = 64;
  let r0 = 0;
  for (; r0 + R <= rows; r0 += R) {
    const base = r0 * cols + first;
    for (let c0 = 0; c0 < count; c0 += C) {
      const c1 = Math.min(count, c0 + C);
      for (let c = c0; c < c1; c++) {
        const o = c * rows + r0;
        const s = base + c;
        out[o] = data[s];
        out[o + 1] = data[s + cols];
        out[o + 2] = data[s + 2 * cols];
        out[o + 3] = data[s + 3 * cols];
        out[o + 4] = data[s + 4 * cols];
        out[o + 5] = data[s + 5 * cols];
        out[o + 6] = data[s + 6 * cols];
        out[o + 7] = data[s + 7 * cols];
      }
    }
  }
  for (; r0 < rows; r0++) {
    const base = r0 * cols + first;
    for (let c = 0; c < count; c++) out[c * rows + r0] = data[base + c];
  }
  return out;
}

/** [rows, cols] -> [cols, rows]. */
export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  return transposeColumns(data, rows, cols, 0, cols);
}

/** A tensor of scales (or float zero points) stored as `scaleType`. */
export function floatTensor(name: string, values: Float32Array, dims: readonly number[], scaleType: ScaleType): Tensor {
  if (scaleType === 'float32') return Tensor.fromArray(name, DataType.FLOAT, dims, values);
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = float32ToFloat16Bits(values[i]);
  return Tensor.fromArray(name, DataType.FLOAT16, dims, bits);
}

/**
 * Adds `tensor` to `graph` as a constant named from `base`, read as `elemType`: when the stored
 * type differs (float16 scales for a float32 op), a Cast follows it, which onnxruntime folds at
 * load time, so the file keeps the small form and the op gets the type it requires.
 */
export function addTypedConstant(model: Model, graph: Graph, tensor: Tensor, base: string, elemType: DataType, before: Node): string {
  tensor.name = graph.uniqueName(base);
  addConstant(model, graph, tensor, before);
  if (tensor.dataType === elemType) return tensor.name;
  const output = graph.uniqueName(`${base}_cast`);
  const cast = new Node({ opType: 'Cast', inputs: [tensor.name], outputs: [output], name: graph.uniqueName(`${base}_Cast`), attributes: [attr.int('to', elemType)] });
  graph.addNode(cast, Math.max(0, graph.nodes.indexOf(before)));
  return output;
}

/** Removes the Constant node that produced `name` in `graph`'s scope chain if nothing reads it now. */
export function dropUnreadConstant(graph: Graph, name: string): void {
  for (let g: Graph | undefined = graph; g !== undefined; g = g.parent) {
    if (!g.definesLocally(name)) continue;
    if (isRead(g, name)) return;
    const producer = g.producer(name);
    if (producer !== undefined && producer.opType === 'Constant' && isStandardDomain(producer.domain)) g.removeNode(producer);
    else if (g.initializer(name) !== undefined && !g.isGraphInput(name)) g.removeInitializer(name);
    return;
  }
}

/** Imports the com.microsoft domain (version 1) unless the model already does. */
export function ensureMicrosoftOpset(model: Model): void {
  if (model.opset(MS_DOMAIN) === undefined) model.opsetImports = [...model.opsetImports, { domain: MS_DOMAIN, version: 1 }];
}

/** Stored bytes of a tensor's data (what the file holds for it). */
export function storedBytes(...tensors: Tensor[]): number {
  return tensors.reduce((n, t) => n + t.byteLength, 0);
}

/**
 * What each weight became, kept per graph: a weight that several nodes of one graph read alike is
 * quantized once, while a subgraph gets constants of its own next to its readers.
 */
export class PerGraphCache<T> {
  private readonly byGraph = new Map<Graph, Map<string, T>>();

  /** The value for `key` in `graph`; `make` runs only the first time, and then `fresh` is true. */
  get(graph: Graph, key: string, make: () => T): { value: T; fresh: boolean } {
    let perGraph = this.byGraph.get(graph);
    if (perGraph === undefined) {
      perGraph = new Map();
      this.byGraph.set(graph, perGraph);
    }
    const known = perGraph.get(key);
    if (known !== undefined) return { value: known, fresh: false };
    const value = make();
    perGraph.set(key, value);
    return { value, fresh: true };
  }
}

/** Turns `node` in place into the com.microsoft op `opType` (the caller marks the graph changed). */
export function becomeMicrosoftOp(node: Node, opType: string, inputs: string[], attributes: Attribute[]): void {
  node.opType = opType;
  node.domain = MS_DOMAIN;
  node.inputs = inputs;
  node.attributes = attributes;
}

/** A MatMul whose weight is a constant float matrix, with its [K, N] shape. */
export interface MatMulWeight {
  node: Node;
  graph: Graph;
  weightName: string;
  weight: { tensor: Tensor; values: Float32Array; dims: [number, number] };
  K: number;
  N: number;
  /** Counts the MatMul as skipped in the pass result, with a warning naming it. */
  skip(code: string, message: string, tensor?: string): void;
}

/**
 * Every MatMul of the model (all scopes) with a constant float weight, for the weight-only passes
 * that rewrite them; the others are counted as skipped in `result` with the reason, as are those
 * `exclude` names. `consumer` names the op they would become, in messages.
 */
export function* eligibleMatMuls(model: Model, result: PassResult, consumer: string, exclude?: (node: Node, graph: Graph) => boolean, onEach?: () => void): Generator<MatMulWeight> {
  const targets = [...model.graph.allNodes()].filter(({ node }) => isOp(node, 'MatMul'));
  for (const { node, graph } of targets) {
    onEach?.();
    result.count('matmuls');
    const skip = (code: string, message: string, tensor?: string): void => {
      result.count('skipped');
      result.warn(code, `MatMul '${node.label}': ${message}`, { node: node.label, tensor });
    };
    if (exclude?.(node, graph)) {
      skip('excluded', 'excluded by the caller');
      continue;
    }
    const weightName = node.inputs[WEIGHTED_OPS.MatMul.weight];
    const weight = readFloatMatrix(graph, weightName, consumer);
    if ('reason' in weight) {
      skip(weight.code, weight.reason, weightName);
      continue;
    }
    const shape = matrixWeightShape(node, weight.dims);
    if (shape === undefined) continue;
    yield { node, graph, weightName, weight, K: shape.K, N: shape.N, skip };
  }
}

/** How many MatMuls `eligibleMatMuls` will look at (for progress). */
export function matMulCount(model: Model): number {
  return [...model.graph.allNodes()].filter(({ node }) => isOp(node, 'MatMul')).length;
}

/** A Gather on a constant float 2-D table along its rows: an embedding. */
export interface GatherTable {
  node: Node;
  graph: Graph;
  tableName: string;
  table: { tensor: Tensor; values: Float32Array };
  /** Counts the Gather as skipped in the pass result, with a warning naming it. */
  skip(code: string, message: string): void;
}

/**
 * Every Gather of the model (all scopes) that reads rows of a constant float 2-D table, for the
 * passes that quantize embeddings. Gathers over shapes and indices (integer constants, run-time
 * values) are not embeddings and pass unmentioned; float tables that cannot be converted (excluded,
 * not 2-D, another axis) are counted as skipped in `result` with the reason. `consumer` names the
 * form they would take, in messages.
 */
export function* eligibleGathers(model: Model, result: PassResult, consumer: string, exclude?: (node: Node, graph: Graph) => boolean): Generator<GatherTable> {
  const targets = [...model.graph.allNodes()].filter(({ node }) => isOp(node, 'Gather'));
  for (const { node, graph } of targets) {
    const tableName = node.inputs[0];
    const table = readFloatWeight(graph, tableName);
    if ('reason' in table) continue;
    result.count('gathers');
    const skip = (code: string, message: string): void => {
      result.count('skipped');
      result.warn(code, `Gather '${node.label}': ${message}`, { node: node.label, tensor: tableName });
    };
    if (exclude?.(node, graph)) {
      skip('excluded', 'excluded by the caller');
      continue;
    }
    const dims = table.tensor.dims;
    const axis = node.attrInt('axis', 0);
    if (dims.length !== 2 || (axis !== 0 && axis !== -2)) {
      skip('not-an-embedding', `table '${tableName}' [${dims.join(',')}] gathered on axis ${axis}; ${consumer} needs a 2-D table gathered on axis 0`);
      continue;
    }
    yield { node, graph, tableName, table, skip };
  }
}
