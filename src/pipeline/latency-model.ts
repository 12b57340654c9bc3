// A latency cost model for mixed precision: what keeping some layers of a static int8 model in
// float32 costs (or saves) on this machine, predicted without building and timing the model. It is
// calibrated once, from two measurements: the float and the all-int8 model timed beside each other
// (their wall latencies), and onnxruntime's profile of each (every kernel's time). A layer's float
// and int8 times are the profiled kernels that carry its name or its output's (onnxruntime names a
// fused kernel after the node it replaces: `conv_token_17`, `fused conv`, `value_nchwc`), scaled so
// each profile sums to its wall latency. A mixed model is then predicted as the int8 latency plus,
// for each layer kept in float, its float time minus its int8 time; negative where the int8 kernel
// is the slower one (int8 Resize or ConvTranspose running through Q/DQ), which is what makes a
// mixed model faster than the all-int8 one. Kernels no layer claims (Q/DQ, reorders) stay in the
// base. A float island pays converts at its edges: a DequantizeLinear for each input read from an
// int8 layer and a QuantizeLinear for an output an int8 layer reads, priced per element at the rate
// the int8 model's own Q/DQ kernels ran at.
import type { Model } from '../ir/model.js';
import { isQuantized } from './fp32-search.js';

/** One profiled kernel: onnxruntime's node name, op type, milliseconds per run. */
export interface NodeTime {
  name: string;
  op: string;
  ms: number;
  /** Elements of its first input and first output, when the profile says. */
  input_elements?: number;
  output_elements?: number;
}

/** Every kernel of one run (medians over runs) and the run's total. */
export interface NodeProfile {
  nodes: NodeTime[];
  run_ms: number;
}

export interface LayerCost {
  op: string;
  /** Milliseconds of the layer's kernels in the float and in the all-int8 model. */
  float_ms: number;
  int8_ms: number;
  /** Elements it reads (first input) and writes, from its int8 kernel: what converts at its edges move. */
  input_elements: number;
  output_elements: number;
  /** The layers whose outputs it reads, and those that read its output (through Q/DQ). */
  feeds: string[];
  readers: string[];
  /** Its share of its op type's timed difference (calibrateByOpType), when timed: wins over the profile. */
  timed_delta_ms?: number;
}

/** JSON (the auto cache holds it). */
export interface LatencyModel {
  /** Wall latencies the model is calibrated on, timed interleaved. */
  float_ms: number;
  int8_ms: number;
  /** Quantized layers of the int8 model, by node name. */
  layers: Record<string, LayerCost>;
  /** Share of each profile's kernel time that some layer claimed (the rest is base). */
  claimed: { float: number; int8: number };
  /** Milliseconds per element of a QuantizeLinear and of a DequantizeLinear. */
  convert_ms: { quantize: number; dequantize: number };
  /** Per op type: the int8 model with every layer of that type in float, timed (calibrateByOpType). */
  op_types?: Record<string, { layers: number; timed_ms: number; profiled_delta_ms: number }>;
}

/**
 * Calibrates the model: `quantized` is the all-int8 model (QDQ, as the quantizer wrote it), its
 * layers those the quantizer touched; the profiles are of `float` (the input) and of `quantized`.
 * A float kernel may be named after a value of the input that the quantized model no longer has
 * (a Conv's output before the BatchNormalization folded into it): its producer there names the layer.
 */
export function buildLatencyModel(float: Model, quantized: Model, profiles: { float: NodeProfile; int8: NodeProfile }, wall: { float_ms: number; int8_ms: number }): LatencyModel {
  const graph = quantized.graph;
  const layers: Record<string, LayerCost> = {};
  for (const node of graph.nodes) if (node.name !== '' && isQuantized(node, quantized)) layers[node.name] = { op: node.opType, float_ms: 0, int8_ms: 0, input_elements: 0, output_elements: 0, feeds: [], readers: [] };
  // Neighbours through the converts and the ops between layers that quantization leaves alone
  // (DequantizeLinear <- QuantizeLinear <- Relu <- the producing layer).
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  for (const [name, layer] of Object.entries(layers)) {
    for (const input of byName.get(name)?.inputs ?? []) {
      let producer = graph.producer(input);
      for (let step = 0; producer !== undefined && layers[producer.name] === undefined && step < 6; step++) producer = producer.inputs.length === 0 ? undefined : graph.producer(producer.inputs[0]);
      if (producer !== undefined && layers[producer.name] !== undefined && producer.name !== name && !layer.feeds.includes(producer.name)) {
        layer.feeds.push(producer.name);
        layers[producer.name].readers.push(name);
      }
    }
  }
  /** The layer a kernel belongs to: its name, or the value it computes, with onnxruntime's suffixes taken off. */
  const layerOf = (kernel: string): string | undefined => {
    for (const name of kernelNames(kernel)) {
      if (layers[name] !== undefined) return name;
      for (const g of [graph, float.graph]) {
        // A fused kernel is named after its last node's output (a Conv's BatchNormalization and Relu): walk back to the layer.
        let producer = g.producer(name);
        for (let step = 0; producer !== undefined && step < 4; step++) {
          if (layers[producer.name] !== undefined) return producer.name;
          producer = producer.inputs.length === 0 ? undefined : g.producer(producer.inputs[0]);
        }
      }
    }
    return undefined;
  };
  const claimed = { float: 0, int8: 0 };
  for (const [kind, profile, wallMs] of [
    ['float', profiles.float, wall.float_ms],
    ['int8', profiles.int8, wall.int8_ms],
  ] as const) {
    const total = profile.nodes.reduce((s, n) => s + n.ms, 0);
    // Kernel times sum to less than the wall latency (the executor's own time): scale them up to it.
    const scale = total > 0 ? wallMs / total : 0;
    let mine = 0;
    for (const kernel of profile.nodes) {
      const layer = layerOf(kernel.name);
      if (layer === undefined) continue;
      layers[layer][kind === 'float' ? 'float_ms' : 'int8_ms'] += kernel.ms * scale;
      mine += kernel.ms;
      if (kind === 'int8') {
        layers[layer].input_elements = Math.max(layers[layer].input_elements, kernel.input_elements ?? 0);
        layers[layer].output_elements = Math.max(layers[layer].output_elements, kernel.output_elements ?? 0);
      }
    }
    claimed[kind] = total > 0 ? mine / total : 0;
  }
  const int8Scale = wall.int8_ms / Math.max(1e-9, profiles.int8.nodes.reduce((s, n) => s + n.ms, 0));
  const rate = (op: string) => {
    const kernels = profiles.int8.nodes.filter((n) => n.op === op && (n.output_elements ?? 0) > 0);
    const elements = kernels.reduce((s, n) => s + (n.output_elements ?? 0), 0);
    return elements === 0 ? undefined : (kernels.reduce((s, n) => s + n.ms, 0) * int8Scale) / elements;
  };
  const quantize = rate('QuantizeLinear');
  const dequantize = rate('DequantizeLinear');
  const convert_ms = { quantize: quantize ?? dequantize ?? 0, dequantize: dequantize ?? quantize ?? 0 };
  return { float_ms: wall.float_ms, int8_ms: wall.int8_ms, layers, claimed, convert_ms };
}

/** Predicted latency of the int8 model with the layers `keep` names left in float32. */
export function predictLatency(model: LatencyModel, keep: Iterable<string>): number {
  const kept = new Set([...keep].filter((name) => model.layers[name] !== undefined));
  let ms = model.int8_ms;
  for (const name of kept) ms += floatCost(model, name, kept);
  return ms;
}

/**
 * Milliseconds keeping layer `name` in float adds (negative: saves), beside the layers in `kept`:
 * its kernels' difference and the converts at its edges with int8 layers.
 */
export function floatCost(model: LatencyModel, name: string, kept: ReadonlySet<string> = new Set()): number {
  const layer = model.layers[name];
  if (layer.timed_delta_ms !== undefined) return layer.timed_delta_ms;
  const int8Feeds = layer.feeds.filter((f) => !kept.has(f)).length;
  // An output no layer reads leaves the model (or goes on in float): no convert.
  const int8Readers = layer.readers.some((r) => !kept.has(r)) ? 1 : 0;
  return layer.float_ms - layer.int8_ms + int8Feeds * layer.input_elements * model.convert_ms.dequantize + int8Readers * layer.output_elements * model.convert_ms.quantize;
}

/** The names a kernel may stand for: as profiled, without 'fused ', without `_token_N` and `_nchwc` suffixes. */
function kernelNames(kernel: string): string[] {
  const names = [kernel];
  let name = kernel.replace(/^fused /, '');
  names.push(name);
  for (let changed = true; changed; ) {
    const next = name.replace(/_token_\d+$/, '').replace(/_nchwc$/, '');
    changed = next !== name;
    name = next;
    if (changed) names.push(name);
  }
  return names;
}

/** Op types of the layers, with their layer names (the variants calibrateByOpType needs timed). */
export function layersByOpType(model: LatencyModel): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const [name, layer] of Object.entries(model.layers)) groups.set(layer.op, [...(groups.get(layer.op) ?? []), name]);
  return groups;
}

/**
 * Corrects the profile with timed variants: `timed` holds, per op type, the latency of the int8
 * model with every layer of that type in float (timed against the same float model, scaled to its
 * `float_ms`). A kernel's time inside the float model is not its time inside a mixed one (the float
 * model runs fused NCHWc kernels; a float island between int8 layers runs alone, with reorders and
 * converts), so each layer's profiled difference is scaled by its op type's timed difference over
 * the profiled one (within 1/4 to 4x); where the two disagree in sign or the profile saw almost
 * nothing, the timed difference is shared evenly instead.
 */
export function calibrateByOpType(model: LatencyModel, timed: Readonly<Record<string, number>>): LatencyModel {
  const layers = structuredClone(model.layers);
  const op_types: NonNullable<LatencyModel['op_types']> = {};
  for (const [op, names] of layersByOpType(model)) {
    const ms = timed[op];
    if (ms === undefined) continue;
    const all = new Set(names);
    const each = names.map((n) => floatCost(model, n, all));
    const profiled = each.reduce((a, b) => a + b, 0);
    const actual = ms - model.int8_ms;
    const scalable = Math.sign(profiled) === Math.sign(actual) && Math.abs(profiled) > 0.1 * Math.abs(actual);
    const factor = scalable ? Math.min(4, Math.max(0.25, actual / profiled)) : 0;
    for (const [i, name] of names.entries()) layers[name].timed_delta_ms = scalable ? each[i] * factor : actual / names.length;
    op_types[op] = { layers: names.length, timed_ms: ms, profiled_delta_ms: profiled };
  }
  return { ...model, layers, op_types };
}
