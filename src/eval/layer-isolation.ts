// Per-layer error in isolation: the error a layer of the candidate makes by itself, when it reads
// exactly the original's activations. The candidate is cut at every compared value: the producer's
// output gets a new name (and is exposed as an output), and the value itself becomes a graph input
// fed with the original's tensor, so every reader (subgraphs included) sees the original's
// activation. One run of the cut model then gives, for every compared value, the error of the
// candidate's ops between the cuts before it and this one: its own quantized weights and the
// quantization of the activations it reads. Accumulated error (what reached the layer from
// upstream, amplified or not) stays out, which is what ranking by "error added" needs; comparing
// accumulated SQNRs instead gives layers reading exact inputs an infinite drop.
import { DataType, dataTypeInfo } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { makeValueInfo } from '../ir/value-info.js';
import { float32ToBfloat16, float32ToFloat16 } from '../kernels/float16.js';

/** A compared value to cut: its names in both models and the element type the candidate computes. */
export interface LayerCut {
  value: string;
  candidateValue: string;
  dataType: DataType;
}

export interface IsolatedCandidate {
  model: Model;
  /** Candidate value -> the name the candidate's own result carries in the cut model. */
  computed: Map<string, string>;
  /** The cuts, in the order given: feed each `candidateValue` with the original's `value`. */
  cuts: LayerCut[];
}

/**
 * A copy of `candidate` with each cut value turned into a graph input. Values the candidate does
 * not compute in its main graph are left alone. `candidate` is not changed.
 */
export function isolateCandidate(candidate: Model, cuts: readonly LayerCut[]): IsolatedCandidate {
  const model = candidate.clone();
  const graph = model.graph;
  const computed = new Map<string, string>();
  const kept: LayerCut[] = [];
  for (const cut of cuts) {
    const producer = graph.producer(cut.candidateValue);
    if (producer === undefined || computed.has(cut.candidateValue)) continue;
    const own = graph.uniqueName(`${cut.candidateValue}::isolated`);
    producer.outputs = producer.outputs.map((o) => (o === cut.candidateValue ? own : o));
    // A declared type now describes the candidate's own result; a graph output keeps reading it too.
    for (const info of graph.valueInfo) if (info.name === cut.candidateValue) info.name = own;
    for (const out of graph.outputs) if (out.name === cut.candidateValue) out.name = own;
    graph.inputs.push(makeValueInfo(cut.candidateValue, { elemType: cut.dataType, shape: undefined }));
    graph.changed();
    computed.set(cut.candidateValue, own);
    kept.push(cut);
  }
  return { model, computed, cuts: kept };
}

/**
 * Whether the original's value can stand in for the candidate's: same dims, and the same element
 * type or a float32 value the candidate holds in float16/bfloat16 (fed rounded, as the candidate
 * would have computed it).
 */
export function canFeed(original: Tensor, candidate: Tensor): boolean {
  if (original.dims.length !== candidate.dims.length || original.dims.some((d, i) => d !== candidate.dims[i])) return false;
  if (original.dataType === candidate.dataType) return dataTypeInfo(original.dataType).array !== undefined;
  return original.dataType === DataType.FLOAT && (candidate.dataType === DataType.FLOAT16 || candidate.dataType === DataType.BFLOAT16);
}

/** The original's tensor as the candidate's input of `dataType` (see canFeed). */
export function feedAs(original: Tensor, dataType: DataType, name: string): Tensor {
  if (original.dataType === dataType) return original;
  const values = original.data() as Float32Array;
  const bits = dataType === DataType.FLOAT16 ? float32ToFloat16(values).bits : float32ToBfloat16(values).bits;
  return Tensor.fromArray(name, dataType, original.dims, bits);
}
