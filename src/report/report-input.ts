// What an HTML report shows, and how it becomes chart data. `shrink bench` fills `bench`,
// `shrink eval` fills `eval` (its --json object, unchanged), and a recipe run can fill both. The
// charts are prepared here, as plain rows, so the script inside the page only draws them and the
// choices (which layers, which units, what to sort by) are tested in Node.
import type { BenchReport } from '../eval/benchmark.js';
import { type EvalReport, type JsonNumber, numberFromJson, SQNR_CAP_DB } from '../eval/eval-report.js';
import type { RunEnvironment } from '../pipeline/report-envelope.js';

/** A model in the report; `layers` (weight bytes per node, as inspect lists them) gives the per-layer bytes chart. */
export interface ReportModel {
  name: string;
  /** Size on disk. */
  bytes: number;
  parameters?: number;
  layers?: { name: string; opType?: string; bytes: number }[];
}

export interface ReportInput {
  title: string;
  models: ReportModel[];
  bench?: BenchReport;
  eval?: EvalReport;
  /** When the report was made (ISO text); defaults to now at rendering. */
  created?: string;
  /** Where the figures were measured (versions, CPU), as in every --json envelope. */
  environment?: RunEnvironment;
}

/** One chart: a kind the page script knows how to draw, its rows, and words around it. */
export interface ChartSpec {
  id: string;
  kind: 'size' | 'latency' | 'throughput' | 'memory' | 'fidelity' | 'accuracy' | 'layer-error' | 'layer-bytes';
  title: string;
  caption: string;
  rows: Record<string, string | number>[];
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
    if (evaluation.layers !== undefined && evaluation.layers.length > 0) {
      const ranked = evaluation.layers.filter((l) => l.drop_db !== null).slice(0, MAX_LAYER_BARS);
      charts.push({
        id: 'layer-error',
        kind: 'layer-error',
        title: 'Error added per layer',
        caption: `SQNR drop across each layer, dB (its inputs' SQNR minus its output's): the ${ranked.length} worst of ${evaluation.layers.length} compared values`,
        rows: ranked.map((l) => ({ layer: `${l.node} (${l.op})`, drop_db: l.drop_db!, sqnr_db: capped(l.sqnr_db) })),
      });
    }
  }
  const layerBytes = layerBytesRows(input.models);
  if (layerBytes.length > 0) {
    const shown = new Set(layerBytes.map((r) => r.layer)).size;
    charts.push({
      id: 'layer-bytes',
      kind: 'layer-bytes',
      title: 'Weight bytes per layer',
      caption: `Bytes of the weights each node reads, KiB: the ${shown} largest layers${input.models.length > 1 ? ', per model' : ''}`,
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

/**
 * Rows {layer, model, kib} for the largest layers: ranked by their largest size in any model, so
 * a layer that one model shrank still appears next to its original.
 */
function layerBytesRows(models: readonly ReportModel[]): { layer: string; model: string; kib: number }[] {
  const largest = new Map<string, number>();
  for (const model of models) {
    for (const layer of model.layers ?? []) largest.set(layer.name, Math.max(largest.get(layer.name) ?? 0, layer.bytes));
  }
  const top = new Set(
    [...largest.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, MAX_LAYER_BARS)
      .map(([name]) => name),
  );
  return models.flatMap((model) =>
    (model.layers ?? []).filter((l) => top.has(l.name)).map((l) => ({ layer: l.name, model: model.name, kib: l.bytes / 1024 })),
  );
}
