// Mixed precision found by the per-layer report: quantize, compare layer by layer with the
// original, find where the error starts (the first layer, in network order, whose output SQNR falls
// below a tolerance) and keep that layer and every quantized node before it in float32; repeat
// until no layer is below the tolerance, the output reaches a target, or the rounds run out.
// Keeping the front of the network, not just the worst-ranked layers, is the point: in
// MobileNet-like models (PP-OCRv4 det) a layer's error is mostly its inputs' 8-bit noise amplified,
// so keeping only that layer float changes nothing, while keeping everything up to it does.
import type { SampleSource } from '../eval/samples.js';
import { compareModels } from '../eval/compare.js';
import { numberFromJson } from '../eval/eval-report.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { nodeOrder } from '../ir/toposort.js';
import type { Progress } from './progress.js';
import type { OrtModule } from '../runtime/ort-types.js';

export interface Fp32SearchOptions {
  /** Quantizes a fresh copy of the model, leaving the nodes `keep` names in float32. */
  quantize(keep: ReadonlySet<string>): Promise<Model>;
  /** Samples to compare on (re-iterable). */
  samples: SampleSource;
  /** Per-layer output SQNR below which error counts as started (dB). */
  toleranceDb: number;
  /** Stop once the lowest output SQNR reaches this (dB). */
  targetDb?: number;
  /** At most this many quantize-and-compare rounds (default 8). */
  maxRounds?: number;
  threads?: number;
  progress?: Progress;
}

export interface Fp32SearchRound {
  /** Nodes kept in float32 in this round. */
  kept: number;
  /** Lowest SQNR over the model outputs. */
  outputSqnrDb: number;
  outputCosine: number;
  /** Where error started this round, if anywhere. */
  boundary?: { value: string; op: string; sqnrDb: number };
}

export interface Fp32SearchResult {
  /** The quantized model of the best round (highest output SQNR). */
  model: Model;
  /** Node names kept in float32 in that round. */
  kept: string[];
  rounds: Fp32SearchRound[];
}

export async function searchFp32Layers(ort: OrtModule, original: Model, options: Fp32SearchOptions): Promise<Fp32SearchResult> {
  const keep = new Set<string>();
  const rounds: Fp32SearchRound[] = [];
  let best: { model: Model; kept: string[]; sqnr: number } | undefined;
  const maxRounds = options.maxRounds ?? 8;
  for (let round = 0; round < maxRounds; round++) {
    const model = await options.quantize(keep);
    // The search reads accumulated SQNR in network order, not the ranking: no isolated run needed.
    const report = await compareModels(ort, original, model, options.samples, { perLayer: true, isolateLayers: false, threads: options.threads, progress: options.progress });
    const outputs = Object.values(report.outputs);
    const sqnr = Math.min(...outputs.map((o) => numberFromJson(o.sqnr_db)));
    const cosine = Math.min(...outputs.map((o) => numberFromJson(o.cosine)));
    const layers = [...(report.layers ?? [])].sort((a, b) => a.order - b.order);
    const start = layers.find((l) => numberFromJson(l.sqnr_db) < options.toleranceDb);
    rounds.push({
      kept: keep.size,
      outputSqnrDb: sqnr,
      outputCosine: cosine,
      ...(start === undefined ? {} : { boundary: { value: start.value, op: start.op, sqnrDb: numberFromJson(start.sqnr_db) } }),
    });
    if (best === undefined || sqnr > best.sqnr) best = { model, kept: [...keep], sqnr };
    if (start === undefined || (options.targetDb !== undefined && sqnr >= options.targetDb)) break;
    const added = keepThrough(model, start.candidate_value ?? start.value, keep);
    if (added === 0) break;
  }
  const chosen = best as { model: Model; kept: string[] };
  return { model: chosen.model, kept: chosen.kept, rounds };
}

/** Adds every quantized node of `model` up to the producer of `value` (network order) to `keep`. */
function keepThrough(model: Model, value: string, keep: Set<string>): number {
  const graph = model.graph;
  const order = nodeOrder(graph).order;
  const boundary = graph.producer(value);
  const stop = boundary === undefined ? -1 : order.indexOf(boundary);
  const before = keep.size;
  for (const node of order.slice(0, stop + 1)) if (isQuantized(node, model) && node.name !== '') keep.add(node.name);
  return keep.size - before;
}

/** A node that reads a dequantized value (an activation or a weight) and is not itself a Q/DQ. */
export function isQuantized(node: Node, model: Model): boolean {
  if (node.opType === 'QuantizeLinear' || node.opType === 'DequantizeLinear') return false;
  return node.inputs.some((v) => model.graph.producer(v)?.opType === 'DequantizeLinear');
}
