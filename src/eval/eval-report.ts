// The result of comparing a candidate model with its original (`shrink eval`, `compareModels`).
// This object is what `shrink eval --json` prints, unchanged, so the HTML report, `shrink bench`
// and scripts in any language read one schema. Keys are snake_case, and every number is
// JSON-safe: an infinity is written as the string "inf" (or "-inf"), which Python's float() and
// JavaScript's Number() both read back, and a value that is undefined (NaN) is null.

/** A metric value in the report: a finite number, "inf"/"-inf" for infinities, null for NaN. */
export type JsonNumber = number | 'inf' | '-inf' | null;

/** Fidelity of one model output, candidate against original, over all samples. */
export interface OutputReport {
  /** Elements compared (all samples together). */
  elements: number;
  /** Cosine similarity of the flattened outputs; 1 when identical. */
  cosine: JsonNumber;
  /** Signal-to-quantization-noise ratio in dB; "inf" when the outputs are identical. */
  sqnr_db: JsonNumber;
  max_abs: JsonNumber;
  mean_abs: JsonNumber;
  /** ||a - b|| / ||a|| (L2); 0 when identical. */
  relative: JsonNumber;
  /** Elements where one side is NaN or infinite and the other differs. */
  non_finite: number;
  /** Classifier-like outputs only (class scores on the last axis): share of rows whose arg-max agrees. */
  top1_agreement?: number;
  /** Mean share of the original's top-k classes found in the candidate's top k. */
  topk_overlap?: number;
  k?: number;
  /** Rows compared for top-1/top-k. */
  rows?: number;
  /** Set when the candidate calls this output by another name (through `renames`). */
  candidate_name?: string;
}

/** Task accuracy of both models against labels. */
export interface AccuracyReport {
  /** Share of correct predictions, 0..1. */
  original: number;
  candidate: number;
  correct_original: number;
  correct_candidate: number;
  /** Predictions counted (labels used). */
  total: number;
  /** The output read as class scores (arg-max of the last axis) or class ids. */
  output: string;
  /** Where the labels came from. */
  labels: string;
}

/** A user metric averaged over samples. */
export interface CustomMetricReport {
  name: string;
  mean: JsonNumber;
  min: JsonNumber;
  max: JsonNumber;
  samples: number;
}

/**
 * Error of one intermediate value (a node output of the original's main graph) in the candidate.
 * `layers` in the report is ranked by `isolated_sqnr_db`, lowest first: the layer that makes the
 * most error of its own comes first, however much error reached it from upstream. Layers not
 * measured in isolation follow, by `drop_db`.
 */
export interface LayerReport {
  /** The value's name in the original. */
  value: string;
  /** Its name in the candidate, when a pass renamed it. */
  candidate_value?: string;
  /** The node computing it in the original, and its op type. */
  node: string;
  op: string;
  /** Position of that node in the original's topological order (for plots in network order). */
  order: number;
  elements: number;
  cosine: JsonNumber;
  sqnr_db: JsonNumber;
  max_abs: JsonNumber;
  mean_abs: JsonNumber;
  relative: JsonNumber;
  /**
   * The lowest SQNR among the node's inputs: graph inputs and constants count as exact (infinite);
   * inputs that were not measured are left out. null when no input was measured.
   */
  input_sqnr_db: JsonNumber;
  /**
   * input SQNR minus output SQNR, with infinite SQNR counted as SQNR_CAP_DB: the error this layer
   * adds. Always finite; null when the input SQNR is unknown.
   */
  drop_db: number | null;
  /**
   * SQNR of the value when the candidate computes it from the original's activations (its inputs
   * fed from the original, upstream error removed): the error this layer makes by itself, its
   * quantized weights and the quantization of what it reads. "inf" when it makes none; null when
   * the value could not be isolated (its producer sits in a subgraph, its type or dims changed).
   */
  isolated_sqnr_db: JsonNumber;
}

export interface EvalReport {
  /** The two models, as the caller named them (the CLI gives the file paths). */
  models?: { original: string; candidate: string };
  /** Samples run through both models. */
  samples: number;
  /** What the samples were ("images.npy (npy, 10000 samples)"). */
  data: string;
  /** Things to know before trusting the numbers: random inputs, ignored options, unused labels. */
  warnings: string[];
  /** Per output, by the original's output name. */
  outputs: Record<string, OutputReport>;
  accuracy?: AccuracyReport;
  custom?: CustomMetricReport;
  /** With per-layer comparison: every compared value, ranked by `isolated_sqnr_db` (then `drop_db`). */
  layers?: LayerReport[];
  /** What per-layer comparison left out and why (values in subgraphs, unmatched names, integer values). */
  layer_notes?: string[];
}

/**
 * Infinite SQNR counts as this many dB when drops are computed: above float32's own resolution
 * (about 146 dB for a 24-bit significand), so an exact layer always outranks a rounded one.
 */
export const SQNR_CAP_DB = 150;

/** A number as the report stores it. */
export function jsonNumber(value: number): JsonNumber {
  if (Number.isNaN(value)) return null;
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  return value;
}

/** A report number back as a JS number (null gives NaN). */
export function numberFromJson(value: JsonNumber): number {
  if (value === null) return Number.NaN;
  if (value === 'inf') return Infinity;
  if (value === '-inf') return -Infinity;
  return value;
}
