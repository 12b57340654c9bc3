// What a quantization pass tells the report beyond its counters: each weight it rewrote (types,
// bytes, error) and each node it converted or left alone, with the reason. Passes return these
// as `details` next to the usual PassReport fields; the quantize report (report.ts) reads them.
import type { PassReport } from '../../pipeline/pass.js';

export interface QuantizedTensor {
  /** The constant's name (an initializer or a Constant node's output). */
  name: string;
  /** The graph holding it ('main' graph or an If/Loop body by name). */
  graph: string;
  /** Element type names before and after, e.g. float32 -> float16. */
  from: string;
  to: string;
  elements: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Signal-to-quantization-noise ratio of the stored weight in dB (Infinity when exact). */
  sqnrDb: number;
  /** Values beyond the target's range (clamped or made infinite). */
  overflow: number;
  /** Nonzero values that became zero. */
  underflow: number;
  /** Why the tensor was left as it was, when `to` equals `from`. */
  note?: string;
}

export interface NodeDecision {
  node: string;
  op: string;
  graph: string;
  /** The precision the node computes in after the pass (float16, float32, int4, ...). */
  precision: string;
  quantized: boolean;
  /** Why a node was not quantized. */
  reason?: string;
}

export interface QuantizeDetails {
  tensors: QuantizedTensor[];
  nodes: NodeDecision[];
}

/** A pass result that carries details for the quantize report. */
export type DetailedPassResult = Omit<PassReport, 'pass' | 'ms'> & {
  details?: QuantizeDetails;
};

export { sqnrDb } from '../../kernels/sqnr.js';
