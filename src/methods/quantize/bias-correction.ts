// Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization", §4.2; AIMET's
// empirical variant): int8 weights and inputs shift the expected output of a layer, E[ỹ] − E[y]
// per output channel, and everything after it sees the shift. Both models run on the calibration
// samples; the mean of each quantized Conv/Gemm output channel is taken in the float model (once)
// and in the quantized one, and the difference is subtracted from the layer's bias (a bias is
// created where there is none). The difference is taken run by run (the same samples in both), so
// `shift: 'shrunk'` can shrink each channel's mean by its standard error over the runs
// (bias-shift.ts): a shift the samples disagree on is noise. Not the default: on PP-OCRv4 det it
// gained at 8 and 16 calibration pages and lost at 4 (NOTES.md, issue 15). Layers go in rounds
// by depth, so a layer's shift is measured with every layer before it already corrected; layers
// of one round (parallel branches) share a pass.
// The layer's output value keeps its name in the QDQ graph (qdq-rewrite.ts), which is where both
// means are read: before its QuantizeLinear, so the output's own rounding (unbiased) is not in it.
// The bias stays what the rewrite made it: int32 codes through DequantizeLinear with scale
// input_scale × weight_scale (the codes move by round(shift / scale)), or a float constant.
// MatMul has no bias input: when its output (through its own Q/DQ pair) goes to one Add of a
// float constant (a transformer's bias, which static int8 leaves float), that Add's output is
// measured and its constant corrected; a bare MatMul is skipped (an Add inserted between it and
// its QuantizeLinear would stop onnxruntime fusing it).
import { ChannelRunMeans } from '../../eval/channel-run-means.js';
import { collectActivations } from '../../eval/activation-stats.js';
import type { SampleSource } from '../../eval/samples.js';
import { attr } from '../../ir/attribute.js';
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { nodeOrder, nodeReads } from '../../ir/toposort.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import type { PassContext } from '../../pipeline/pass.js';
import { shrunkShift, softShrunkShift } from './bias-shift.js';
import { readersWindow } from './calibration/dead-zones.js';
import { quantizeBias } from './quant-params.js';

/** How a channel's bias shift comes from its per-run shifts (bias-shift.ts). */
export type BiasShiftEstimate = 'mean' | 'shrunk' | 'soft';

export interface BiasCorrectionSettings {
  calibration: SampleSource;
  limit?: number;
  batch?: number;
  threads?: number;
  /** 'mean' (default): each channel's mean shift over the samples; 'shrunk' / 'soft': that mean shrunk by its standard error over the runs (bias-shift.ts). */
  shift?: BiasShiftEstimate;
  /**
   * Each output's means are taken over the values as its readers see them, clamped to the part
   * they can tell apart (calibration/dead-zones.ts: above -3 before a HardSwish, ...). Static int8
   * sets it with `deadZones`: with ranges that leave out the dead zones, the whole-range mean moves
   * with errors no reader sees (values far below -3); on PP-OCRv4 det correcting those lowered the
   * held-out IoU on 3 calibration page sets of 3. Default false.
   */
  seenByReaders?: boolean;
}

export interface CorrectedLayer {
  node: string;
  /** Largest |shift| the bias moved by over the channels (E[ỹ_c] − E[y_c], or that shrunk: bias-shift.ts), and its mean. */
  maxShift: number;
  meanShift: number;
  /** The bias was created (the layer had none). */
  created: boolean;
}

export interface BiasCorrectionResult {
  layers: CorrectedLayer[];
  rounds: number;
  samples: number;
  skipped: { node: string; reason: string }[];
}

const CORRECTED_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

/**
 * Corrects the biases of `layers` (Conv/Gemm nodes of `quantized`'s main graph) against `float`,
 * the same graph before the QDQ rewrite (same value names). `quantized` is changed in place.
 */
export async function correctBiases(quantized: Model, float: Model, layers: readonly Node[], settings: BiasCorrectionSettings, ctx: PassContext): Promise<BiasCorrectionResult> {
  const ort = ctx.ort;
  if (ort === undefined) throw new Error('bias correction: runs both models in onnxruntime; pass ctx.ort');
  const graph = quantized.graph;
  const skipped: { node: string; reason: string }[] = [];
  const chosen: Node[] = [];
  /** What is measured for a layer: its output, or (MatMul) the Add of its bias, with that Add. */
  const measuredAt = new Map<Node, { value: string; add?: { node: Node; input: number } }>();
  for (const node of layers) {
    if (node.opType === 'MatMul') {
      const add = biasAdd(graph, node);
      if ('reason' in add) skipped.push({ node: node.label, reason: add.reason });
      else {
        chosen.push(node);
        measuredAt.set(node, { value: add.node.outputs[0], add });
      }
      continue;
    }
    if (!CORRECTED_OPS.has(node.opType)) skipped.push({ node: node.label, reason: `${node.opType} has no bias input to correct` });
    else if (node.opType === 'Gemm' && node.attrInt('transA', 0) !== 0) skipped.push({ node: node.label, reason: 'Gemm with transA' });
    else if (node.opType === 'Gemm' && node.attrFloat('beta', 1) === 0 && (node.inputs[2] ?? '') === '') skipped.push({ node: node.label, reason: 'Gemm with beta 0 ignores a bias' });
    else chosen.push(node);
  }
  if (chosen.length === 0) return { layers: [], rounds: 0, samples: 0, skipped };
  const valueOf = (node: Node) => measuredAt.get(node)?.value ?? node.outputs[0];
  // Read on the float model: its readers are the ops themselves (HardSwish, Relu), not Q/DQ pairs.
  const windowOf = (value: string) => {
    if (settings.seenByReaders !== true) return undefined;
    return readersWindow(float.graph, value);
  };
  const collect = async (model: Model, nodes: readonly Node[], purpose: string) => {
    const stats = nodes.map((n) => new ChannelRunMeans(valueOf(n), n.opType === 'Conv' ? 1 : -1, windowOf(valueOf(n))));
    const result = await collectActivations(ort, model, stats, settings.calibration, { limit: settings.limit, batch: settings.batch, threads: settings.threads ?? ctx.threads, progress: ctx.progress, purpose });
    return { means: new Map(stats.map((s) => [s.value, s])), samples: result.samples, notFloat: result.notFloat };
  };
  const reference = await collect(float, chosen, 'bias correction, float model');
  const rounds = roundsByDepth(graph, chosen);
  const corrected: CorrectedLayer[] = [];
  for (const [r, round] of rounds.entries()) {
    const measured = await collect(quantized, round, `bias correction, round ${r + 1}/${rounds.length}`);
    for (const node of round) {
      const value = valueOf(node);
      const want = reference.means.get(value);
      const got = measured.means.get(value);
      if (want === undefined || got === undefined || want.runs.length === 0 || want.runs.length !== got.runs.length || want.runs[0].length !== got.runs[0].length) {
        skipped.push({ node: node.label, reason: `its output '${value}' was not measured as float32 in both models` });
        continue;
      }
      const shift = channelShifts(got, want, settings.shift ?? 'mean');
      const add = measuredAt.get(node)?.add;
      const outcome = add === undefined ? adjustBias(quantized, graph, node, shift) : adjustAdd(quantized, graph, add, shift);
      if (typeof outcome !== 'boolean') {
        skipped.push({ node: node.label, reason: outcome.reason });
        continue;
      }
      let max = 0;
      let sum = 0;
      for (const v of shift) {
        max = Math.max(max, Math.abs(v));
        sum += Math.abs(v);
      }
      corrected.push({ node: node.label, maxShift: max, meanShift: sum / shift.length, created: outcome });
      ctx.debug?.(2, `bias correction: ${node.label} round ${r + 1}, largest channel shift ${max.toExponential(2)}`);
    }
  }
  return { layers: corrected, rounds: rounds.length, samples: reference.samples, skipped };
}

/** Each channel's shift from the runs of both models (same samples, same order). */
function channelShifts(got: ChannelRunMeans, want: ChannelRunMeans, how: BiasShiftEstimate): Float32Array {
  const runs = want.runs.length;
  const total = want.counts.reduce((a, b) => a + b, 0);
  const perRun = new Float64Array(runs);
  return Float32Array.from({ length: want.runs[0].length }, (_, c) => {
    for (let k = 0; k < runs; k++) perRun[k] = got.runs[k][c] - want.runs[k][c];
    if (how === 'shrunk') return shrunkShift(perRun);
    if (how === 'soft') return softShrunkShift(perRun);
    // The mean over every value, as one sum would give it (runs weighted by their size).
    return perRun.reduce((sum, v, k) => sum + v * want.counts[k], 0) / total;
  });
}

/** Rounds by depth: a layer's round comes after every chosen layer upstream of it. */
export function roundsByDepth(graph: Graph, layers: readonly Node[]): Node[][] {
  const chosen = new Set(layers);
  const depthOf = new Map<string, number>();
  const rounds: Node[][] = [];
  for (const node of nodeOrder(graph).order) {
    let depth = 0;
    for (const name of nodeReads(node)) depth = Math.max(depth, depthOf.get(name) ?? 0);
    if (chosen.has(node)) {
      depth += 1;
      while (rounds.length < depth) rounds.push([]);
      rounds[depth - 1].push(node);
    }
    for (const out of node.outputs) if (out !== '') depthOf.set(out, depth);
  }
  return rounds.filter((r) => r.length > 0);
}

/** Subtracts `shift` from the bias of `node`; true when the bias was created, or why nothing changed. */
function adjustBias(model: Model, graph: Graph, node: Node, measured: Float32Array): boolean | { reason: string } {
  const channels = measured.length;
  // Gemm adds beta·C: the bias moves by shift / beta.
  const beta = node.opType === 'Gemm' ? node.attrFloat('beta', 1) : 1;
  const shift = beta === 1 ? measured : measured.map((v) => v / beta);
  const biasName = node.inputs[2] ?? '';
  if (biasName !== '') {
    const plain = constantValue(graph, biasName);
    if (plain !== undefined) {
      if (plain.dataType !== DataType.FLOAT) return { reason: `its bias '${biasName}' is not float32 or a DequantizeLinear of int32` };
      const values = plain.data() as Float32Array;
      if (values.length !== 1 && values.length !== channels) return { reason: `its bias '${biasName}' [${plain.dims}] does not have ${channels} channels` };
      const next = Float32Array.from(shift, (s, c) => values[values.length === 1 ? 0 : c] - s);
      replaceConstant(model, graph, biasName, Tensor.fromArray(biasName, DataType.FLOAT, [channels], next), [{ graph, node, input: 2 }]);
      return false;
    }
    const dq = graph.producer(biasName);
    const codes = dq?.opType === 'DequantizeLinear' ? constantValue(graph, dq.inputs[0]) : undefined;
    const scale = dq?.opType === 'DequantizeLinear' ? constantValue(graph, dq.inputs[1]) : undefined;
    if (dq === undefined || codes === undefined || scale === undefined || codes.dataType !== DataType.INT32 || codes.data().length !== channels) {
      return { reason: `its bias '${biasName}' is neither a float32 constant nor a DequantizeLinear of ${channels} int32 codes` };
    }
    const q = codes.data() as Int32Array;
    const s = scale.data() as Float32Array;
    const next = Int32Array.from(q, (v, c) => {
      const step = s[s.length === 1 ? 0 : c];
      return step > 0 ? Math.max(-2147483648, Math.min(2147483647, v - Math.round(shift[c] / step))) : v;
    });
    replaceConstant(model, graph, dq.inputs[0], Tensor.fromArray(dq.inputs[0], DataType.INT32, codes.dims, next), [{ graph, node: dq, input: 0 }]);
    return false;
  }
  // No bias: an int32 one like the rewrite's when input and weight are dequantized constants, else float.
  const negated = Float32Array.from(shift, (s) => -s);
  const inputScale = dequantizedScale(graph, node.inputs[0]);
  const weightScales = dequantizedScale(graph, node.inputs[1]);
  let bias: string;
  if (inputScale !== undefined && inputScale.length === 1 && weightScales !== undefined && (weightScales.length === 1 || weightScales.length === channels)) {
    const q = quantizeBias(negated, inputScale[0], weightScales);
    const codes = Tensor.fromArray(graph.uniqueName(`${node.label}_bias_quantized`), DataType.INT32, [channels], q.codes);
    const scale = Tensor.fromArray(graph.uniqueName(`${node.label}_bias_scale`), DataType.FLOAT, q.scales.length === 1 ? [] : [q.scales.length], q.scales);
    addConstant(model, graph, codes, node);
    addConstant(model, graph, scale, node);
    bias = graph.uniqueName(`${node.label}_bias_dequantized`);
    const dq = new Node({ opType: 'DequantizeLinear', inputs: [codes.name, scale.name], outputs: [bias], name: graph.uniqueName(`${node.label}_bias_DequantizeLinear`), attributes: q.scales.length === 1 ? [] : [attr.int('axis', 0)] });
    graph.addNode(dq, graph.nodes.indexOf(node));
  } else {
    const tensor = Tensor.fromArray(graph.uniqueName(`${node.label}_bias`), DataType.FLOAT, [channels], negated);
    addConstant(model, graph, tensor, node);
    bias = tensor.name;
  }
  node.inputs = [...node.inputs.slice(0, 2), bias];
  graph.changed();
  return true;
}

/**
 * The Add that adds a bias to a MatMul's output: the one reader of the output, or of its
 * QuantizeLinear -> DequantizeLinear pair, with a float constant of one value per output channel.
 */
function biasAdd(graph: Graph, matmul: Node): { node: Node; input: number } | { reason: string } {
  const only = (value: string) => {
    const readers = [...graph.consumers(value)];
    return readers.length === 1 && !graph.isGraphOutput(value) ? readers[0] : undefined;
  };
  let reader = only(matmul.outputs[0]);
  if (reader?.opType === 'QuantizeLinear') {
    const dq = only(reader.outputs[0]);
    reader = dq?.opType === 'DequantizeLinear' ? only(dq.outputs[0]) : undefined;
  }
  const none = { reason: 'MatMul has no bias input, and its output does not go to one Add of a constant bias' };
  if (reader?.opType !== 'Add') return none;
  const input = reader.inputs.findIndex((name) => constantValue(graph, name)?.dataType === DataType.FLOAT);
  if (input < 0) return none;
  const bias = constantValue(graph, reader.inputs[input]) as Tensor;
  const weight = constantValue(graph, matmul.inputs[1]) ?? dequantizedConstant(graph, matmul.inputs[1]);
  const channels = weight?.dims[weight.dims.length - 1];
  if (channels === undefined || bias.data().length !== channels || bias.dims[bias.dims.length - 1] !== channels) return { reason: `its bias Add '${reader.label}' adds [${bias.dims}], not one value per output channel` };
  return { node: reader, input };
}

/** The constant behind a DequantizeLinear's output (its codes; only the dims are read). */
function dequantizedConstant(graph: Graph, value: string): Tensor | undefined {
  const dq = graph.producer(value);
  return dq?.opType === 'DequantizeLinear' ? constantValue(graph, dq.inputs[0]) : undefined;
}

/** Subtracts `shift` from the constant the bias Add adds. */
function adjustAdd(model: Model, graph: Graph, add: { node: Node; input: number }, shift: Float32Array): boolean {
  const name = add.node.inputs[add.input];
  const bias = constantValue(graph, name) as Tensor;
  const values = bias.data() as Float32Array;
  replaceConstant(model, graph, name, Tensor.fromArray(name, DataType.FLOAT, bias.dims, Float32Array.from(values, (v, c) => v - shift[c])), [{ graph, node: add.node, input: add.input }]);
  return false;
}

/** The scale of the DequantizeLinear that produces `value`, when it is a constant. */
function dequantizedScale(graph: Graph, value: string): Float32Array | undefined {
  const dq = graph.producer(value);
  if (dq?.opType !== 'DequantizeLinear') return undefined;
  const scale = constantValue(graph, dq.inputs[1]);
  return scale?.dataType === DataType.FLOAT ? (scale.data() as Float32Array) : undefined;
}
