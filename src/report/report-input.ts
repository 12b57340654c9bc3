// What an HTML report shows, and how it becomes chart data. `shrink bench` fills `bench` (and
// `evals` when it compares the models too), `shrink eval` fills `eval` (its --json object,
// unchanged), and a recipe run can fill both. The charts are prepared here, as plain rows, so the
// script inside the page only draws them and the choices (which layers, which units, what to sort
// by, which layer of a quantized model is which layer of the original) are tested in Node.
import type { BenchReport } from '../eval/benchmark.js';
import { type EvalReport, type JsonNumber, type LayerReport, numberFromJson, SQNR_CAP_DB } from '../eval/eval-report.js';
import type { RunEnvironment } from '../pipeline/report-envelope.js';
import { joinLayers, type ReportLayer } from './layer-join.js';

export type { ReportLayer } from './layer-join.js';

/** A model in the report; `layers` (weight bytes per node) gives the per-layer and per-op-type size charts. */
export interface ReportModel {
  name: string;
  /** Size on disk. */
  bytes: number;
  parameters?: number;
  layers?: ReportLayer[];
}

export interface ReportInput {
  title: string;
  /** The reference first (the original, or bench's first model), then the candidates. */
  models: ReportModel[];
  bench?: BenchReport;
  /** One candidate (models[1]) against the original (models[0]): `shrink eval --json`'s object. */
  eval?: EvalReport;
  /** Several candidates, each against models[0], by model name (`shrink bench --compare`). */
  evals?: { model: string; report: EvalReport }[];
  /** A search's candidates (`shrink auto`), measured or read from its cache: the Pareto front chart and table. */
  search?: ReportSearch;
  /** When the report was made (ISO text); defaults to now at rendering. */
  created?: string;
  /** Where the figures were measured (versions, CPU), as in every --json envelope. */
  environment?: RunEnvironment;
}

/** Every candidate of a search, as `shrink auto` measured it against the input. */
export interface ReportSearch {
  /** What `quality` is (higher is better): e.g. 'text-mask IoU', 'accuracy drop, points (negated)', 'lowest cosine'. */
  quality: string;
  candidates: {
    name: string;
    quality?: number;
    /** Size against the input's. */
    size_ratio: number;
    /** Input latency / candidate latency, as the search timed them. */
    speedup?: number;
    feasible: boolean;
    pareto: boolean;
    chosen: boolean;
    cached?: boolean;
    why_not?: string;
  }[];
}

/** One chart: a kind the page script knows how to draw, its rows, and words around it. */
export interface ChartSpec {
  id: string;
  kind: 'size' | 'latency' | 'throughput' | 'memory' | 'fidelity' | 'accuracy' | 'tradeoff' | 'front' | 'size-by-op' | 'layer-error' | 'layer-sqnr' | 'layer-bytes';
  title: string;
  caption: string;
  rows: Record<string, string | number>[];
  /** Words the page script puts on axes (the measure a chart plots when it can plot several). */
  axes?: Record<string, string>;
}

/** At most this many layers per chart: beyond ~30 bars a chart stops being readable. */
export const MAX_LAYER_BARS = 30;

const MIB = 1024 * 1024;

/** The charts a report holds, in page order: size, latency and fidelity first, then per-layer detail. */
export function reportCharts(input: ReportInput): ChartSpec[] {
  const charts: ChartSpec[] = [];
  charts.push({
    id: 'size',
    kind: 'size',
    title: 'Size',
    caption: 'File size on disk, MiB',
    rows: input.models.map((m) => ({ model: m.name, mib: m.bytes / MIB })),
  });
  const bench = input.bench;
  if (bench !== undefined) {
    charts.push({
      id: 'latency',
      kind: 'latency',
      title: 'Latency',
      caption: `Every timed run, ms (box: quartiles; tick: median); ${bench.runs} runs per model, interleaved, ${bench.backend}, batch ${bench.batch}`,
      rows: bench.models.flatMap((m) => m.runs_ms.map((ms, run) => ({ model: m.name, ms, run }))),
    });
    charts.push({
      id: 'throughput',
      kind: 'throughput',
      title: 'Throughput',
      caption: 'Samples per second (batch × 1000 / mean latency); label: ratio to the first model',
      rows: bench.models.map((m) => ({ model: m.name, value: m.throughput, ratio: m.ratios.throughput })),
    });
    if (bench.models.every((m) => m.memory !== undefined)) {
      charts.push({
        id: 'memory',
        kind: 'memory',
        title: 'Peak memory',
        caption: 'Resident memory a process added by loading and running the model (peak minus a one-node baseline), MiB',
        rows: bench.models.map((m) => ({ model: m.name, mib: m.memory!.model_rss_bytes / MIB })),
      });
    }
  }
  const evaluation = input.eval;
  if (evaluation !== undefined) {
    charts.push({
      id: 'fidelity',
      kind: 'fidelity',
      title: 'Fidelity',
      caption: `SQNR per output, dB (higher is closer to the original; identical outputs drawn at ${SQNR_CAP_DB} dB); label: cosine; ${evaluation.samples} samples`,
      rows: Object.entries(evaluation.outputs).map(([output, o]) => ({
        output,
        sqnr_db: capped(o.sqnr_db),
        cosine: numberFromJson(o.cosine),
      })),
    });
    if (evaluation.accuracy !== undefined) {
      const a = evaluation.accuracy;
      charts.push({
        id: 'accuracy',
        kind: 'accuracy',
        title: 'Accuracy',
        caption: `Share of ${a.total} labels predicted correctly (${a.labels})`,
        rows: [
          { model: 'original', accuracy: a.original },
          { model: 'candidate', accuracy: a.candidate },
        ],
      });
    }
  }
  const tradeoff = tradeoffChart(input);
  if (tradeoff !== undefined) charts.push(tradeoff);
  const front = frontChart(input.search);
  if (front !== undefined) charts.push(front);
  const byOp = sizeByOpChart(input.models);
  if (byOp !== undefined) charts.push(byOp);
  if (evaluation?.layers !== undefined && evaluation.layers.length > 0) charts.push(layerErrorChart(evaluation.layers));
  const along = layerSqnrChart(candidateEvals(input));
  if (along !== undefined) charts.push(along);
  const layerBytes = layerBytesRows(input.models);
  if (layerBytes.length > 0) {
    const shown = new Set(layerBytes.map((r) => r.layer)).size;
    charts.push({
      id: 'layer-bytes',
      kind: 'layer-bytes',
      title: 'Weight bytes per layer',
      caption:
        `Bytes of the weights each layer reads, KiB: the ${shown} largest layers${input.models.length > 1 ? ', per model' : ''}` +
        (input.models.length > 1 ? `; quantized weights (renamed, or behind DequantizeLinear) count under the layer of ${input.models[0]!.name} they replace` : ''),
      rows: layerBytes,
    });
  }
  return charts;
}

/** Infinite SQNR (identical values) drawn at the cap, so a bar still shows. */
function capped(value: JsonNumber): number {
  const n = numberFromJson(value);
  return Number.isFinite(n) ? n : n > 0 ? SQNR_CAP_DB : Number.NaN;
}

/** Each candidate's comparison with models[0], by model name: `evals`, or `eval` for models[1]. */
function candidateEvals(input: ReportInput): { model: string; report: EvalReport }[] {
  if (input.evals !== undefined) return input.evals;
  if (input.eval !== undefined && input.models.length >= 2) return [{ model: input.models[1]!.name, report: input.eval }];
  return [];
}

/**
 * Quality against size and latency, one dot per model. Quality is accuracy when every candidate
 * was scored against labels (the reference at its own accuracy), else the SQNR of the candidate's
 * worst output (the reference is exact and left out). Without comparisons: latency against size.
 */
function tradeoffChart(input: ReportInput): ChartSpec | undefined {
  if (input.models.length < 2) return undefined;
  const evals = candidateEvals(input);
  const latency = new Map((input.bench?.models ?? []).map((m) => [m.name, m.latency_ms.median]));
  if (evals.length === 0 && latency.size < 2) return undefined;
  const byModel = new Map(evals.map((e) => [e.model, e.report]));
  const accuracy = evals.length > 0 && evals.every((e) => e.report.accuracy !== undefined);
  const rows: Record<string, string | number>[] = [];
  for (const [i, model] of input.models.entries()) {
    const row: Record<string, string | number> = { model: model.name, mib: model.bytes / MIB };
    const ms = latency.get(model.name);
    if (ms !== undefined) row.ms = ms;
    const report = i === 0 ? undefined : byModel.get(model.name);
    if (accuracy) {
      const a = report?.accuracy ?? (i === 0 ? evals[0]!.report.accuracy : undefined);
      if (a !== undefined) row.quality = report === undefined ? a.original : a.candidate;
    } else if (report !== undefined) {
      const worst = Math.min(...Object.values(report.outputs).map((o) => capped(o.sqnr_db)));
      if (Number.isFinite(worst)) row.quality = worst;
      row.cosine = Math.min(...Object.values(report.outputs).map((o) => numberFromJson(o.cosine)));
    }
    rows.push(row);
  }
  // A panel with one dot says nothing: quality needs two rated models, latency two timed ones.
  const rated = rows.filter((r) => r.quality !== undefined).length >= 2;
  if (!rated) {
    for (const r of rows) {
      delete r.quality;
      delete r.cosine;
    }
  }
  const timed = rows.filter((r) => r.ms !== undefined).length >= 2;
  if (!rated && !timed) return undefined;
  const quality = accuracy ? 'accuracy' : 'worst-output SQNR, dB';
  const what = rated ? `${accuracy ? 'Accuracy' : 'Worst-output SQNR'} against size${timed ? ' and median latency' : ''}` : 'Median latency against size';
  const against = accuracy || !rated ? '' : ` (SQNR of each candidate against ${input.models[0]!.name}, which is exact and not drawn)`;
  const bench = timed ? `; latency: ${input.bench!.runs} interleaved runs per model, ${input.bench!.backend}` : '';
  return {
    id: 'tradeoff',
    kind: 'tradeoff',
    title: 'Trade-off',
    caption: `${what}, one dot per model${against}${bench}`,
    rows,
    axes: { quality },
  };
}

/** A search's candidates: quality against size and against speed-up, the Pareto front marked. */
function frontChart(search: ReportSearch | undefined): ChartSpec | undefined {
  const measured = (search?.candidates ?? []).filter((c) => c.quality !== undefined && Number.isFinite(c.quality) && c.size_ratio > 0);
  if (search === undefined || measured.length === 0) return undefined;
  const status = (c: ReportSearch['candidates'][number]) => (c.chosen ? 'chosen' : c.pareto ? 'Pareto front' : c.feasible ? 'within budget' : 'outside budget');
  return {
    id: 'front',
    kind: 'front',
    title: 'Search: every candidate',
    caption: `${search.quality} against size (share of the input's file) and speed-up (input latency / candidate latency, as the search timed them), one dot per candidate; the Pareto front: within budget, and no other candidate within budget is at least as good in all three and better in one`,
    rows: measured.map((c) => ({ candidate: c.name, quality: c.quality as number, size: c.size_ratio, ...(c.speedup === undefined ? {} : { speedup: c.speedup }), status: status(c) })),
    axes: { quality: search.quality },
  };
}

/** At most this many op types in the size-by-op chart; the rest are summed as "other". */
export const MAX_OP_TYPES = 12;

/**
 * Weight bytes by op type and element type, per model: each tensor counted once, under the op
 * type of the reference layer it belongs to (a MatMulNBits of an int4 model counts as MatMul).
 */
function sizeByOpChart(models: readonly ReportModel[]): ChartSpec | undefined {
  if (!models.some((m) => (m.layers ?? []).length > 0)) return undefined;
  const reference = models[0]?.layers ?? [];
  const totals = new Map<string, { model: string; op: string; dtype: string; bytes: number }>();
  for (const model of models) {
    const seen = new Set<string>();
    for (const { op, row } of joinLayers(reference, model.layers ?? [])) {
      const parts = row.weights ?? [{ name: `${row.name}\u0000`, dtype: 'unknown', bytes: row.bytes }];
      for (const w of parts) {
        if (seen.has(w.name)) continue;
        seen.add(w.name);
        const key = `${model.name}\u0000${op}\u0000${w.dtype}`;
        const entry = totals.get(key) ?? { model: model.name, op: op || '?', dtype: w.dtype, bytes: 0 };
        entry.bytes += w.bytes;
        totals.set(key, entry);
      }
    }
  }
  const largest = new Map<string, number>();
  const perModelOp = new Map<string, number>();
  for (const e of totals.values()) perModelOp.set(`${e.model}\u0000${e.op}`, (perModelOp.get(`${e.model}\u0000${e.op}`) ?? 0) + e.bytes);
  for (const [key, bytes] of perModelOp) {
    const op = key.split('\u0000')[1]!;
    largest.set(op, Math.max(largest.get(op) ?? 0, bytes));
  }
  const ops = [...largest.entries()].sort((a, b) => b[1] - a[1]).map(([op]) => op);
  const shown = new Set(ops.slice(0, ops.length > MAX_OP_TYPES ? MAX_OP_TYPES - 1 : MAX_OP_TYPES));
  const rows = new Map<string, { model: string; op: string; dtype: string; kib: number }>();
  for (const e of totals.values()) {
    const op = shown.has(e.op) ? e.op : 'other';
    const key = `${e.model}\u0000${op}\u0000${e.dtype}`;
    const row = rows.get(key) ?? { model: e.model, op, dtype: e.dtype, kib: 0 };
    row.kib += e.bytes / 1024;
    rows.set(key, row);
  }
  return {
    id: 'size-by-op',
    kind: 'size-by-op',
    title: 'Weight size by op type and dtype',
    caption: `Bytes of the constant tensors each op type reads, KiB, by element type${models.length > 1 ? ', per model' : ''}; a tensor read by several nodes counts once; quantized layers count under the original op type`,
    rows: [...rows.values()],
  };
}

/** The layers that make the most error of their own, worst first, as ranked (isolated SQNR; drop without it). */
function layerErrorChart(layers: readonly LayerReport[]): ChartSpec {
  const isolated = layers.some((l) => l.isolated_sqnr_db !== null && l.isolated_sqnr_db !== undefined);
  if (!isolated) {
    // Reports made before isolated per-layer error, or with it turned off.
    const ranked = layers.filter((l) => l.drop_db !== null).slice(0, MAX_LAYER_BARS);
    return {
      id: 'layer-error',
      kind: 'layer-error',
      title: 'Error added per layer',
      caption: `SQNR drop across each layer, dB (its inputs' SQNR minus its output's): the ${ranked.length} worst of ${layers.length} compared values`,
      rows: ranked.map((l) => ({ layer: `${l.node} (${l.op})`, db: l.drop_db!, sqnr_db: capped(l.sqnr_db) })),
      axes: { db: 'drop' },
    };
  }
  const ranked = layers.filter((l) => l.isolated_sqnr_db !== null && l.isolated_sqnr_db !== undefined).slice(0, MAX_LAYER_BARS);
  return {
    id: 'layer-error',
    kind: 'layer-error',
    title: 'Error each layer makes on its own',
    caption:
      `SQNR of each layer computed from the original's activations, dB (shorter is worse; exact layers drawn at ${SQNR_CAP_DB} dB): ` +
      `the ${ranked.length} worst of ${layers.length} compared values`,
    rows: ranked.map((l) => ({ layer: `${l.node} (${l.op})`, db: capped(l.isolated_sqnr_db), sqnr_db: capped(l.sqnr_db) })),
    axes: { db: 'isolated' },
  };
}

/**
 * Per-layer SQNR in network order, one line per candidate (its accumulated error), and for a single
 * candidate the error each layer makes alone as dots. Exact values (infinite SQNR) are left out.
 */
function layerSqnrChart(evals: readonly { model: string; report: EvalReport }[]): ChartSpec | undefined {
  const measured = evals.filter((e) => (e.report.layers ?? []).length > 0);
  if (measured.length === 0) return undefined;
  const rows: Record<string, string | number>[] = [];
  for (const { model, report } of measured) {
    const ordered = [...(report.layers ?? [])].sort((a, b) => a.order - b.order);
    for (const [position, l] of ordered.entries()) {
      const layer = `${l.node} (${l.op})`;
      const sqnr = numberFromJson(l.sqnr_db);
      if (Number.isFinite(sqnr)) rows.push({ series: measured.length === 1 ? 'SQNR' : model, position, layer, db: sqnr });
      const alone = numberFromJson(l.isolated_sqnr_db ?? null);
      if (measured.length === 1 && Number.isFinite(alone)) rows.push({ series: 'made by the layer alone', position, layer, db: alone });
    }
  }
  if (rows.length === 0) return undefined;
  const count = Math.max(...measured.map((e) => e.report.layers!.length));
  return {
    id: 'layer-sqnr',
    kind: 'layer-sqnr',
    title: 'SQNR along the network',
    caption:
      `SQNR of every compared value in network order (${count} values), dB: the error accumulated up to each layer` +
      (measured.length === 1 ? "; dots: the layer's own error, computed from the original's activations" : ', per candidate') +
      '; exact values are not drawn',
    rows,
  };
}

/**
 * Rows {layer, model, kib} for the largest layers, each model's rows under the reference's layer
 * names (layer-join.ts): ranked by their largest size in any model, so a layer that one model
 * shrank still appears next to its original.
 */
function layerBytesRows(models: readonly ReportModel[]): { layer: string; model: string; kib: number }[] {
  const reference = models[0]?.layers ?? [];
  const perModel = models.map((model) => {
    const bytes = new Map<string, number>();
    for (const { layer, row } of joinLayers(reference, model.layers ?? [])) bytes.set(layer, (bytes.get(layer) ?? 0) + row.bytes);
    return { model: model.name, bytes };
  });
  const largest = new Map<string, number>();
  for (const { bytes } of perModel) for (const [layer, n] of bytes) largest.set(layer, Math.max(largest.get(layer) ?? 0, n));
  const top = new Set(
    [...largest.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, MAX_LAYER_BARS)
      .map(([name]) => name),
  );
  return perModel.flatMap(({ model, bytes }) => [...bytes].filter(([layer]) => top.has(layer)).map(([layer, n]) => ({ layer, model, kib: n / 1024 })));
}
