// Per-layer error: which layer of the candidate breaks the model. Intermediate values of the two
// models are matched by name (through the renames passes record), exposed as extra outputs of
// both sessions, and compared sample by sample with the same streaming metrics as the outputs.
// Two views of each value: its accumulated error (SQNR against the original, what onnxruntime's
// qdq_loss_debug and NNCF's per-layer NMSE give Python users), and the error the layer makes in
// isolation, reading the original's activations (layer-isolation.ts). Layers are ranked by the
// isolated error: raw SQNR would blame every layer downstream of the broken one just as much, and
// the SQNR drop across a layer (input minus output) is infinite for every layer that reads exact
// inputs, which put the first layer on top of every model.
import { dataTypeInfo, dataTypeName } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { isStandardDomain } from '../ir/constants.js';
import type { Tensor } from '../ir/tensor.js';
import { nodeOrder, nodeReads } from '../ir/toposort.js';
import { type LayerReport, SQNR_CAP_DB, jsonNumber, numberFromJson } from './eval-report.js';
import { canFeed, type LayerCut } from './layer-isolation.js';
import { type MetricAccumulator, createMetricAccumulator } from './metrics.js';

export interface PerLayerOptions {
  /**
   * Original value name -> candidate value name, for values a pass renamed (quantization, fusion).
   * Names not listed are looked up unchanged.
   */
  renames?: Readonly<Record<string, string>>;
}

/** One intermediate value present in both models. */
export interface LayerPair {
  value: string;
  candidateValue: string;
  node: Node;
  order: number;
}

/** What to expose in each session, and what cannot be compared. */
export interface LayerPlan {
  pairs: LayerPair[];
  /** Extra outputs for the original's session and the candidate's, in pair order. */
  originalOutputs: string[];
  candidateOutputs: string[];
  notes: string[];
}

/** How many unmatched names a note spells out before it just counts. */
const NAMES_IN_NOTE = 5;

/**
 * Matches the original's main-graph node outputs with the candidate's. Constants are weights, not
 * layers, and are left out; values inside If/Loop/Scan bodies cannot be graph outputs in
 * onnxruntime, so they are counted in a note instead.
 */
export function planLayers(original: Model, candidate: Model, options: PerLayerOptions = {}): LayerPlan {
  const renames = options.renames ?? {};
  const candidateValues = new Set<string>();
  for (const node of candidate.graph.nodes) for (const out of node.outputs) if (out !== '') candidateValues.add(out);
  const inCandidateSubgraphs = subgraphValues(candidate.graph);
  const { order } = nodeOrder(original.graph);
  const pairs: LayerPair[] = [];
  const unmatched: string[] = [];
  const renamedIntoSubgraph: string[] = [];
  for (const [position, node] of order.entries()) {
    if (isConstantNode(node)) continue;
    for (const value of node.outputs) {
      if (value === '') continue;
      const candidateValue = renames[value] ?? value;
      if (candidateValues.has(candidateValue)) pairs.push({ value, candidateValue, node, order: position });
      else if (inCandidateSubgraphs.has(candidateValue)) renamedIntoSubgraph.push(value);
      else unmatched.push(value);
    }
  }
  const notes: string[] = [];
  const nested = subgraphValues(original.graph).size;
  if (nested > 0) {
    notes.push(`${nested} value${plural(nested)} inside If/Loop/Scan bodies not compared: onnxruntime can expose only main-graph values as outputs`);
  }
  if (renamedIntoSubgraph.length > 0) {
    notes.push(`${renamedIntoSubgraph.length} value${plural(renamedIntoSubgraph.length)} ${renamedIntoSubgraph.length === 1 ? 'sits' : 'sit'} inside a subgraph of the candidate and were not compared (${listNames(renamedIntoSubgraph)})`);
  }
  if (unmatched.length > 0) {
    notes.push(
      `${unmatched.length} value${plural(unmatched.length)} of the original ${unmatched.length === 1 ? 'has' : 'have'} no counterpart in the candidate (removed, or renamed without a record in renames): ${listNames(unmatched)}`,
    );
  }
  return {
    pairs,
    originalOutputs: pairs.map((p) => p.value),
    candidateOutputs: pairs.map((p) => p.candidateValue),
    notes,
  };
}

/** Tensors of one run, looked up by value name. */
export type ValueLookup = (name: string) => Tensor | undefined;

export interface LayerAccumulator {
  /**
   * Adds one run (a sample or a batch) of both models; `isolated` looks up the cut candidate's
   * own result by candidate value name (see layer-isolation.ts), when it ran.
   */
  add(original: ValueLookup, candidate: ValueLookup, isolated?: ValueLookup): void;
  /** Forgets the isolated measurements (when the cut candidate stopped running part way). */
  dropIsolated(): void;
  /** Layers ranked by the error they make in isolation, and notes on what was skipped. */
  result(): { layers: LayerReport[]; notes: string[] };
}

/**
 * The values the candidate can be cut at (layer-isolation.ts), from one run of both models: those
 * both models computed with the same dims, in a type the original's tensor can be fed as.
 */
export function layerCuts(plan: LayerPlan, original: ValueLookup, candidate: ValueLookup): LayerCut[] {
  const cuts: LayerCut[] = [];
  for (const pair of plan.pairs) {
    const a = original(pair.value);
    const b = candidate(pair.candidateValue);
    if (a !== undefined && b !== undefined && canFeed(a, b)) cuts.push({ value: pair.value, candidateValue: pair.candidateValue, dataType: b.dataType });
  }
  return cuts;
}

interface PairState {
  pair: LayerPair;
  metrics: MetricAccumulator;
  /** Why the pair is not compared (changed type or dims); set once, then the pair is ignored. */
  skipped?: string;
  /**
   * Integer and boolean values (shapes, indices, masks) get no metrics, only a check that both
   * models agree on every element: when they do, nodes reading them see exact inputs.
   */
  integer?: { identical: boolean };
  /** The layer's error reading the original's activations (runs where the cut candidate ran). */
  isolated?: MetricAccumulator;
}

export function createLayerAccumulator(original: Graph, plan: LayerPlan): LayerAccumulator {
  const states: PairState[] = plan.pairs.map((pair) => ({ pair, metrics: createMetricAccumulator({ classifier: false }) }));
  return {
    add(originalValues, candidateValues, isolatedValues) {
      for (const state of states) {
        if (state.skipped !== undefined) continue;
        const a = originalValues(state.pair.value);
        const b = candidateValues(state.pair.candidateValue);
        if (a === undefined || b === undefined) {
          state.skipped = `'${state.pair.value}': onnxruntime returned no value`;
          continue;
        }
        if (!dataTypeInfo(a.dataType).isFloat) {
          const same = a.dataType === b.dataType && sameDims(a, b) && sameBytes(a, b);
          state.integer = { identical: (state.integer?.identical ?? true) && same };
          continue;
        }
        if (!dataTypeInfo(b.dataType).isFloat) {
          state.skipped = `'${state.pair.value}' is ${dataTypeName(b.dataType)} in the candidate, ${dataTypeName(a.dataType)} in the original`;
          continue;
        }
        if (!sameDims(a, b)) {
          state.skipped = `'${state.pair.value}' has dims [${b.dims.join(',')}] in the candidate, [${a.dims.join(',')}] in the original`;
          continue;
        }
        state.metrics.add(a, b);
        const own = isolatedValues?.(state.pair.candidateValue);
        if (own !== undefined && sameDims(a, own) && dataTypeInfo(own.dataType).isFloat) {
          state.isolated ??= createMetricAccumulator({ classifier: false });
          state.isolated.add(a, own);
        }
      }
    },
    dropIsolated() {
      for (const state of states) state.isolated = undefined;
    },
    result() {
      const measured = new Map<string, number>();
      const compared = states.filter((s) => s.skipped === undefined && s.integer === undefined);
      for (const s of compared) measured.set(s.pair.value, s.metrics.result().sqnrDb);
      const integers = states.filter((s) => s.skipped === undefined && s.integer !== undefined);
      for (const s of integers) if (s.integer?.identical) measured.set(s.pair.value, Infinity);
      const layers = compared.map((s) => layerReport(s, original, measured));
      layers.sort(byIsolatedError);
      const notes = [...plan.notes];
      if (integers.length > 0) {
        const differ = integers.filter((s) => !s.integer?.identical).map((s) => s.pair.value);
        notes.push(
          `${integers.length} integer or boolean value${plural(integers.length)} (shapes, indices, masks) not ranked; ` +
            (differ.length === 0 ? 'all are identical in both models' : `${differ.length} differ: ${listNames(differ)}`),
        );
      }
      const other = states.filter((s) => s.skipped !== undefined).map((s) => s.skipped as string);
      if (other.length > 0) notes.push(`${other.length} value${plural(other.length)} not compared: ${other.slice(0, NAMES_IN_NOTE).join('; ')}${other.length > NAMES_IN_NOTE ? '; ...' : ''}`);
      return { layers, notes };
    },
  };
}

function layerReport(state: PairState, graph: Graph, measured: ReadonlyMap<string, number>): LayerReport {
  const m = state.metrics.result();
  const { pair } = state;
  const input = inputSqnr(pair.node, graph, measured, new Map());
  const capped = (x: number) => (Number.isNaN(x) ? Number.NaN : Math.min(x, SQNR_CAP_DB));
  const drop = input === undefined ? Number.NaN : capped(input) - capped(m.sqnrDb);
  const report: LayerReport = {
    value: pair.value,
    node: pair.node.name,
    op: pair.node.opType,
    order: pair.order,
    elements: m.elements,
    cosine: jsonNumber(m.cosine),
    sqnr_db: jsonNumber(m.sqnrDb),
    max_abs: jsonNumber(m.maxAbs),
    mean_abs: jsonNumber(m.meanAbs),
    relative: jsonNumber(m.relative),
    input_sqnr_db: input === undefined ? null : jsonNumber(input),
    drop_db: Number.isNaN(drop) ? null : drop,
    isolated_sqnr_db: state.isolated === undefined ? null : jsonNumber(state.isolated.result().sqnrDb),
  };
  if (pair.candidateValue !== pair.value) report.candidate_value = pair.candidateValue;
  return report;
}

/**
 * The error reaching a node: its worst input, implicit ones read by its subgraphs included.
 * Graph inputs and constants count as exact (the same feeds; a changed weight is this layer's own
 * doing), and so do integer values both models agree on. An input with no counterpart in the
 * candidate (renamed or folded away by a pass) takes the worst measured value upstream of it, so
 * that a missing measurement never reads as an exact input. Undefined when no input could be
 * traced.
 */
function inputSqnr(node: Node, graph: Graph, measured: ReadonlyMap<string, number>, memo: Map<string, number | undefined>): number | undefined {
  let input: number | undefined;
  for (const name of nodeReads(node)) {
    const sqnr = valueSqnr(name, graph, measured, memo);
    if (sqnr !== undefined) input = input === undefined ? sqnr : Math.min(input, sqnr);
  }
  return input;
}

function valueSqnr(name: string, graph: Graph, measured: ReadonlyMap<string, number>, memo: Map<string, number | undefined>): number | undefined {
  const known = measured.get(name);
  if (known !== undefined) return known;
  if (isExact(graph, name)) return Infinity;
  if (memo.has(name)) return memo.get(name);
  memo.set(name, undefined); // guards against cycles through subgraph reads
  const producer = graph.producer(name);
  const sqnr = producer === undefined ? undefined : inputSqnr(producer, graph, measured, memo);
  memo.set(name, sqnr);
  return sqnr;
}

function sameDims(a: Tensor, b: Tensor): boolean {
  return a.dims.length === b.dims.length && a.dims.every((d, i) => d === b.dims[i]);
}

function sameBytes(a: Tensor, b: Tensor): boolean {
  const x = a.bytes();
  const y = b.bytes();
  if (x.byteLength !== y.byteLength) return false;
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Most error made in isolation (lowest isolated SQNR) first; layers not measured in isolation after
 * those, by drop; ties by drop, then lower SQNR, then network order.
 */
function byIsolatedError(a: LayerReport, b: LayerReport): number {
  const ia = numberFromJson(a.isolated_sqnr_db);
  const ib = numberFromJson(b.isolated_sqnr_db);
  if (Number.isNaN(ia) !== Number.isNaN(ib)) return Number.isNaN(ia) ? 1 : -1;
  if (!Number.isNaN(ia) && ia !== ib) return ia - ib;
  return byDrop(a, b);
}

/** Largest drop first; unknown drops last; ties by lower SQNR, then network order. */
function byDrop(a: LayerReport, b: LayerReport): number {
  if (a.drop_db === null || b.drop_db === null) {
    if (a.drop_db !== b.drop_db) return a.drop_db === null ? 1 : -1;
  } else if (a.drop_db !== b.drop_db) {
    return b.drop_db - a.drop_db;
  }
  const sa = sortableSqnr(a.sqnr_db);
  const sb = sortableSqnr(b.sqnr_db);
  return sa !== sb ? sa - sb : a.order - b.order;
}

function sortableSqnr(value: LayerReport['sqnr_db']): number {
  if (value === 'inf' || value === null) return Infinity;
  if (value === '-inf') return -Infinity;
  return value;
}

/** A graph input, an initializer or a Constant node's output of the main graph. */
function isExact(graph: Graph, name: string): boolean {
  if (graph.isGraphInput(name) || graph.initializer(name) !== undefined) return true;
  const producer = graph.producer(name);
  return producer !== undefined && isConstantNode(producer);
}

function isConstantNode(node: Node): boolean {
  return node.opType === 'Constant' && isStandardDomain(node.domain);
}

/** Non-constant values computed inside the subgraphs of `root`'s nodes, at any depth. */
function subgraphValues(root: Graph): Set<string> {
  const values = new Set<string>();
  root.visit((graph) => {
    if (graph === root) return;
    for (const node of graph.nodes) {
      if (isConstantNode(node)) continue;
      for (const out of node.outputs) if (out !== '') values.add(out);
    }
  });
  return values;
}

function listNames(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_IN_NOTE).map((n) => `'${n}'`).join(', ');
  return names.length > NAMES_IN_NOTE ? `${shown}, ...` : shown;
}

function plural(n: number): string {
  return n === 1 ? '' : 's';
}
