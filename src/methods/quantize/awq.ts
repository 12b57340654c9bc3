// AWQ for weight-only quantization: before the MatMulNBits writer packs the weights, each MatMul
// and Gemm of the main graph gets per-input-feature scales s from its calibration inputs
// (kernels/awq.ts: s = m^α, α searched per layer on the output error tr(D H Dᵀ)), its weight
// becomes W·diag(s) and its input x / s, so the float model computes exactly what it did and only
// the rounding moves. Layers that read one activation (Q, K and V) share one s, chosen on their
// weights stacked, since the division happens once, upstream. The 1/s goes where it costs nothing
// when it can: into the producer of x (a LayerNormalization's scale and bias, or the output columns
// and bias of a MatMul/Gemm with a constant weight, the constant of a Mul, also through an Add of
// a constant (scaled too) or a Relu or LeakyRelu, which commute with a positive scale), provided x is read by those layers only (and by Shape); otherwise a Mul
// by the constant 1/s is inserted before them. Statistics come from one
// pass over the calibration samples on the float model (as the paper searches the scales on the
// float model); the model is changed in place and the blocks of W·diag(s) come back by weight
// name for the writer (matmul-nbits.ts `solved`), each block's range shrunk by the factor the
// clipping search chose (the float weights stay unclipped: the model is exact before rounding).
import type { SampleSource } from '../../eval/samples.js';
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { nodeReads } from '../../ir/toposort.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { type AwqOptions, awqSearch, scaledBlocks } from '../../kernels/awq.js';
import type { QuantBits, ScaleType } from '../../kernels/quant-formats.js';
import type { QuantizedBlocks } from '../../kernels/quantize-blocks.js';
import type { PassContext } from '../../pipeline/pass.js';
import { type LayerMatrix, layerMatrix } from '../prune/layer-matrix.js';
import { pruneTargets } from '../prune/layers.js';
import { calibrateInRounds } from '../prune/one-shot.js';

export interface AwqSettings {
  bits: QuantBits;
  blockSize: number;
  symmetric: boolean;
  scaleType?: ScaleType;
  calibration: SampleSource | undefined;
  /** Calibration samples used (default 128). */
  samples?: number;
  /** Exponents tried per layer (default 20). */
  grid?: number;
  /** Search a clipping factor per block after the scales (default true). */
  clip?: boolean;
  exclude?: (node: Node, graph: Graph) => boolean;
}

/** One set of layers reading the same activation, scaled by one s. */
export interface AwqGroup {
  input: string;
  layers: string[];
  alpha: number;
  /** Output error on the calibration data relative to round-to-nearest's (1: no gain), with the scales and then with clipping too. */
  errorRatio: number;
  clippedRatio: number;
  /** Where 1/s went: the producer it was folded into, or a Mul inserted before the layers (and why). */
  folded: { into: string } | { mul: string; reason: string };
}

export interface AwqSolution {
  solved: Map<string, QuantizedBlocks>;
  groups: AwqGroup[];
  samples: number;
  /** Layers AWQ left to round-to-nearest, and why. */
  skipped: { node: string; reason: string }[];
}

const AWQ_OPS = new Set(['MatMul', 'Gemm']);

/** Scales `model`'s MatMul/Gemm layers in place (float outputs unchanged) and returns their blocks. */
export async function solveAwq(model: Model, settings: AwqSettings, ctx: PassContext): Promise<AwqSolution> {
  const { targets, skipped } = pruneTargets(model, {});
  const layers: LayerMatrix[] = [];
  for (const target of targets) {
    const reader = target.readers[0];
    if (!AWQ_OPS.has(reader.node.opType) || settings.exclude?.(reader.node, reader.graph)) continue;
    if (target.weight.dataType !== DataType.FLOAT) {
      skipped.push({ node: reader.node.label, reason: `weight '${target.name}' is not float32` });
      continue;
    }
    const view = layerMatrix(target, model.graph);
    if ('reason' in view) skipped.push({ node: reader.node.label, reason: view.reason });
    else layers.push(view);
  }
  const options: AwqOptions = { bits: settings.bits, blockSize: settings.blockSize, symmetric: settings.symmetric, scaleType: settings.scaleType, grid: settings.grid, clipGrid: settings.clip === false ? 0 : undefined };
  // One round on the float model: every statistic is collected before anything changes.
  const byInput = new Map<string, { layers: LayerMatrix[]; hessian: Float64Array }>();
  const outcome = await calibrateInRounds(model, layers, { statistic: 'gram', calibration: settings.calibration, samples: settings.samples, sequential: false, purpose: 'awq calibration' }, ctx, (layer, hessian) => {
    const entry = byInput.get(layer.input) ?? { layers: [], hessian };
    entry.layers.push(layer);
    byInput.set(layer.input, entry);
  });
  // Searched on the original weights: folding into a producer that is itself a layer only scales
  // its rows, which round-to-nearest per row does not notice.
  const searched = [...byInput].map(([input, { layers: members, hessian }]) => {
    const cols = members[0].cols;
    const rows = members.reduce((n, l) => n + l.rows, 0);
    const stacked = new Float64Array(rows * cols);
    let at = 0;
    for (const l of members) {
      stacked.set(l.read(), at);
      at += l.rows * cols;
    }
    return { input, members, cols, result: awqSearch(stacked, rows, cols, hessian, options) };
  });
  const groups: AwqGroup[] = [];
  for (const { input, members, cols, result } of searched) {
    const inverse = Float32Array.from(result.scales, (s) => 1 / s);
    const nodes = new Set(members.map((l) => l.node));
    const fold = foldInverse(model, input, nodes, inverse, cols);
    const folded = typeof fold === 'string' ? { into: fold } : { mul: insertMul(model, input, members, inverse), reason: fold.reason };
    groups.push({ input, layers: members.map((l) => l.node.label), alpha: result.alpha, errorRatio: result.rtnError > 0 ? result.error / result.rtnError : 1, clippedRatio: result.rtnError > 0 ? result.clippedError / result.rtnError : 1, folded });
  }
  // Each weight becomes W·diag(s), read as it is now (a fold may have scaled its rows), and its
  // blocks are rounded with their clipping factors (rows of the stacked weights, in order).
  const solved = new Map<string, QuantizedBlocks>();
  const blocksPerRow = (cols: number) => Math.ceil(cols / settings.blockSize);
  for (const { members, cols, result } of searched) {
    let firstRow = 0;
    for (const layer of members) {
      const matrix = currentMatrix(layer);
      for (let r = 0; r < layer.rows; r++) for (let k = 0; k < cols; k++) matrix[r * cols + k] *= result.scales[k];
      const weight = layer.target.weight;
      replaceConstant(model, layer.target.scope, layer.target.name, Tensor.fromArray(layer.target.name, weight.dataType, weight.dims, layer.write(matrix)), layer.target.readers);
      const offset = firstRow * blocksPerRow(cols);
      solved.set(layer.target.name, scaledBlocks(matrix, layer.rows, cols, undefined, options, (b) => result.clip[offset + b]).blocks);
      firstRow += layer.rows;
    }
  }
  return { solved, groups, samples: outcome.samples, skipped: [...skipped, ...outcome.skipped] };
}

/** The layer's weight as W [rows, cols], from the graph as it is now (layer.read() sees the original). */
function currentMatrix(layer: LayerMatrix): Float64Array {
  const tensor = constantValue(layer.target.scope, layer.target.name);
  if (tensor === undefined) throw new Error(`awq: weight '${layer.target.name}' of '${layer.node.label}' is no longer a constant`);
  const values = tensor.data() as Float32Array;
  const { rows, cols } = layer;
  if (layer.node.opType === 'Gemm' && layer.node.attrInt('transB', 0) !== 0) return Float64Array.from(values);
  const m = new Float64Array(rows * cols);
  for (let k = 0; k < cols; k++) for (let n = 0; n < rows; n++) m[n * cols + k] = values[k * rows + n];
  return m;
}

/**
 * Multiplies channel n of the producer of `input` by inverse[n]: returns the producer's label, or
 * why it cannot be done (then the caller inserts a Mul). SmoothQuant folds its 1/s the same way.
 */
export function foldInverse(model: Model, input: string, layers: ReadonlySet<Node>, inverse: Float32Array, cols: number): string | { reason: string } {
  const graph = model.graph;
  if (graph.isGraphOutput(input) || graph.isGraphInput(input)) return { reason: `'${input}' is a graph ${graph.isGraphOutput(input) ? 'output' : 'input'}` };
  const producer = graph.producer(input);
  if (producer === undefined) return { reason: `'${input}' has no producer in the main graph` };
  for (const node of graph.nodes) {
    if (layers.has(node) || node.opType === 'Shape' || !nodeReads(node).has(input)) continue;
    return { reason: `'${input}' is also read by ${node.opType} '${node.label}'` };
  }
  if (producer.outputs[0] !== input) return { reason: `'${input}' is not the first output of ${producer.opType} '${producer.label}'` };
  // relu(z)/s = relu(z/s) for s > 0: the division moves on through Relu to whatever makes z.
  if (producer.opType === 'Relu' || producer.opType === 'LeakyRelu') {
    const through = foldInverse(model, producer.inputs[0], new Set([producer]), inverse, cols);
    return typeof through === 'string' ? `${through} through ${producer.opType} '${producer.label}'` : through;
  }
  // (z + b)/s = z/s + b/s: an Add of a constant (a bias, a decomposed LayerNorm's beta) takes 1/s
  // and passes it on to whatever makes z (a MatMul, the Mul by gamma).
  const addend = producer.opType === 'Add' ? producer.inputs.findIndex((name) => constantValue(graph, name) !== undefined) : -1;
  if (addend >= 0) {
    const bias = constantValue(graph, producer.inputs[addend]) as Tensor;
    const values = bias.data() as Float32Array;
    if (bias.dataType !== DataType.FLOAT || (values.length !== 1 && (values.length !== cols || bias.dims[bias.dims.length - 1] !== cols))) {
      return { reason: `Add '${producer.label}' adds a constant [${bias.dims}] with no axis of ${cols} channels` };
    }
    const through = foldInverse(model, producer.inputs[1 - addend], new Set([producer]), inverse, cols);
    if (typeof through !== 'string') return through;
    const scaled = values.length === 1 ? Float32Array.from(inverse, (x) => x * values[0]) : values.map((v, i) => v * inverse[i % cols]);
    const name = producer.inputs[addend];
    replaceConstant(model, graph, name, Tensor.fromArray(name, DataType.FLOAT, values.length === 1 ? [cols] : bias.dims, scaled), [{ graph, node: producer, input: addend }]);
    return `${through} through Add '${producer.label}'`;
  }
  // Each edit is checked before any is made: a fold is all or nothing.
  const edits: { input: number; scale: (values: Float32Array, dims: readonly number[]) => Float32Array | undefined }[] = [];
  const perLast = (values: Float32Array, dims: readonly number[]) => (dims.length >= 1 && dims[dims.length - 1] === cols ? values.map((v, i) => v * inverse[i % cols]) : undefined);
  if (producer.opType === 'LayerNormalization') {
    if (producer.attrInt('axis', -1) !== -1) return { reason: `LayerNormalization '${producer.label}' normalises from axis ${producer.attrInt('axis', -1)}, not the last` };
    edits.push({ input: 1, scale: (v, d) => (v.length === cols ? perLast(v, d) : undefined) });
    if ((producer.inputs[2] ?? '') !== '') edits.push({ input: 2, scale: (v, d) => (v.length === cols ? perLast(v, d) : undefined) });
  } else if (producer.opType === 'MatMul') {
    edits.push({ input: 1, scale: (v, d) => (d.length === 2 ? perLast(v, d) : undefined) });
  } else if (producer.opType === 'Gemm') {
    const transB = producer.attrInt('transB', 0) !== 0;
    edits.push({ input: 1, scale: (v, d) => (d.length !== 2 ? undefined : transB ? (d[0] === cols ? v.map((x, i) => x * inverse[Math.floor(i / d[1])]) : undefined) : perLast(v, d)) });
    if ((producer.inputs[2] ?? '') !== '') edits.push({ input: 2, scale: (v, d) => (v.length === 1 ? Float32Array.from(inverse, (x) => x * v[0]) : perLast(v, d)) });
  } else if (producer.opType === 'Mul' && producer.inputs.some((name) => constantValue(graph, name) !== undefined)) {
    // A Mul by a constant (GELU's final 0.5, a scale): the constant takes 1/s, a scalar becoming a vector.
    const at = constantValue(graph, producer.inputs[1]) !== undefined ? 1 : 0;
    if (constantValue(graph, producer.inputs[1 - at]) !== undefined) return { reason: `Mul '${producer.label}' multiplies two constants` };
    edits.push({ input: at, scale: (v, d) => (v.length === 1 ? Float32Array.from(inverse, (x) => x * v[0]) : v.length === cols ? perLast(v, d) : undefined) });
  } else {
    return { reason: `'${input}' comes from ${producer.opType} '${producer.label}'` };
  }
  const replacements: { input: number; tensor: Tensor }[] = [];
  for (const edit of edits) {
    const name = producer.inputs[edit.input];
    const tensor = constantValue(graph, name);
    if (tensor === undefined) return { reason: `input ${edit.input} of ${producer.opType} '${producer.label}' is not a constant` };
    if (tensor.dataType !== DataType.FLOAT) return { reason: `input ${edit.input} of ${producer.opType} '${producer.label}' is not float32` };
    const scaled = edit.scale(tensor.data() as Float32Array, tensor.dims);
    if (scaled === undefined) return { reason: `input ${edit.input} of ${producer.opType} '${producer.label}' [${tensor.dims}] has no axis of its ${cols} output channels to scale` };
    // A scalar (Gemm bias, Mul factor) becomes a vector, one value per channel.
    replacements.push({ input: edit.input, tensor: Tensor.fromArray(name, DataType.FLOAT, scaled.length === tensor.data().length ? tensor.dims : [cols], scaled) });
  }
  for (const r of replacements) replaceConstant(model, graph, producer.inputs[r.input], r.tensor, [{ graph, node: producer, input: r.input }]);
  return `${producer.opType} '${producer.label}'`;
}

/** Inserts x·(1/s) before the layers of the group and makes them read it; returns the Mul's name. */
export function insertMul(model: Model, input: string, layers: readonly Pick<LayerMatrix, 'node'>[], inverse: Float32Array, tag = 'awq'): string {
  const graph = model.graph;
  const first = Math.min(...layers.map((l) => graph.nodes.indexOf(l.node)));
  const before = graph.nodes[first];
  const constant = Tensor.fromArray(graph.uniqueName(`${input}_${tag}_inverse_scales`), DataType.FLOAT, [inverse.length], inverse);
  addConstant(model, graph, constant, before);
  const output = graph.uniqueName(`${input}_${tag}`);
  const mul = graph.addNode(new Node({ opType: 'Mul', name: graph.uniqueName(`${input}_${tag}_Mul`), inputs: [input, constant.name], outputs: [output] }), graph.nodes.indexOf(before));
  for (const layer of layers) layer.node.inputs[0] = output;
  graph.changed();
  return mul.label;
}
