// Per-layer sensitivity of a static int8 model: for every quantized layer, the error it makes by
// itself when it reads the original's activations (compareModels' isolated SQNR: its own weights
// and the quantization of what it reads, upstream error removed). Measured once per model, data and
// method and cached by the caller (`shrink auto`), it ranks which layers to keep in float.
import { compareModels } from '../eval/compare.js';
import { numberFromJson } from '../eval/eval-report.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { isQuantized } from './fp32-search.js';

export interface LayerSensitivity {
  /** The layer's node name in the quantized model (the name `exclude` takes). */
  node: string;
  op: string;
  /** Its isolated output SQNR, dB (Infinity: no error of its own). */
  isolated_sqnr_db: number;
}

/** Isolated error of every quantized layer of `quantized` against `original` on `samples`, worst first. */
export async function measureLayerSensitivity(ort: OrtModule, original: Model, quantized: Model, samples: SampleSource, options: { limit?: number; threads?: number } = {}): Promise<LayerSensitivity[]> {
  const report = await compareModels(ort, original, quantized, samples, { perLayer: true, isolateLayers: true, limit: options.limit, threads: options.threads });
  const graph = quantized.graph;
  const worst = new Map<string, LayerSensitivity>();
  for (const layer of report.layers ?? []) {
    const producer = graph.producer(layer.candidate_value ?? layer.value);
    if (producer === undefined || producer.name === '' || !isQuantized(producer, quantized)) continue;
    const isolated = layer.isolated_sqnr_db === null ? numberFromJson(layer.sqnr_db) : numberFromJson(layer.isolated_sqnr_db);
    if (Number.isNaN(isolated)) continue;
    const known = worst.get(producer.name);
    if (known === undefined || isolated < known.isolated_sqnr_db) worst.set(producer.name, { node: producer.name, op: producer.opType, isolated_sqnr_db: isolated });
  }
  return [...worst.values()].sort((a, b) => a.isolated_sqnr_db - b.isolated_sqnr_db);
}

/** Relative noise power of a layer's own error (0 when it makes none). */
export const noisePower = (s: LayerSensitivity): number => (Number.isFinite(s.isolated_sqnr_db) ? 10 ** (-s.isolated_sqnr_db / 10) : 0);
