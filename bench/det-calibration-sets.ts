// Static int8 of PP-OCRv4 det calibrated on different sets of 4 pages (issue 15): does the held-out
// text-mask IoU hold whichever pages a user calibrates on? Each set is 4 pages of the calibration
// kind (bench/work/det-pages: 'calib' pages 0-11 and 'train' pages 0-15, the same fonts and papers,
// other draws); every model is read on the 16 held-out pages (other fonts, texts, papers, seed) and
// on 32 tuning pages ('train' 16-47, never calibrated on). Settings: the command's defaults, and
// --dead-zones. Nothing here chooses anything: it measures how much the choice of 4 pages moves
// the result. Rerun: `npm run bench -- det-calibration-sets` (~20 min quiet; DET_SETS_SETTINGS=
// defaults,dead-zones narrows the settings).
import * as os from 'node:os';
import { join } from 'node:path';
import { textMaskIou } from '../src/eval/ocr-det.js';
import type { Tensor } from '../src/ir/tensor.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { QuantizeSettings } from '../src/methods/quantize/registry.js';
import { quantize } from '../src/pipeline/quantize.js';
import { DET_PAGES, detMaps, detSamples, ensureDetPages, ensureDetTrainPages, loadDetPages } from './lib/det-pages.js';
import { OCR } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const DET_FILE = join(OCR, 'ch_PP-OCRv4_det_infer.onnx');
/** The maps are read as a user runs the model: graph optimization 'all'. */
const MAP_SESSION = { threads: 2, graphOptimization: 'all' as const };
const SETTINGS: Record<string, Partial<QuantizeSettings>> = { defaults: {}, 'dead-zones': { deadZones: true } };
const TARGET = 0.95;

interface Reading {
  set: string;
  setting: string;
  heldOut: { mean: number; lowest: number };
  tuning: { mean: number; lowest: number };
  seconds: number;
  load: number;
}

function ious(reference: readonly Float32Array[], maps: readonly Float32Array[]): { mean: number; lowest: number } {
  const v = maps.map((m, i) => textMaskIou(reference[i], m));
  return { mean: Number((v.reduce((a, b) => a + b, 0) / v.length).toFixed(4)), lowest: Number(Math.min(...v).toFixed(4)) };
}

export const detCalibrationSetsBench: Bench = {
  name: 'det-calibration-sets',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    ensureDetPages(DET_PAGES, log);
    ensureDetTrainPages(48, DET_PAGES, log);
    const float = loadModel(DET_FILE);
    const fp32 = writeModel(float);
    const calib = await loadDetPages('calib');
    const train = await loadDetPages('train');
    const held = await loadDetPages('heldout');
    const tuning = train.slice(16, 48);
    const refHeld = await detMaps(nodeOrt, fp32, held, MAP_SESSION);
    const refTuning = await detMaps(nodeOrt, fp32, tuning, MAP_SESSION);
    const sets: [string, Tensor[]][] = [
      ...[0, 4, 8].map((at): [string, Tensor[]] => [`calib ${at}-${at + 3}`, calib.slice(at, at + 4)]),
      ...[0, 4, 8, 12].map((at): [string, Tensor[]] => [`train ${at}-${at + 3}`, train.slice(at, at + 4)]),
    ];
    const only = process.env.DET_SETS_SETTINGS?.split(',');
    const readings: Reading[] = [];
    for (const [setting, overrides] of Object.entries(SETTINGS)) {
      if (only !== undefined && !only.includes(setting)) continue;
      for (const [set, pages] of sets) {
        const started = performance.now();
        const { model } = await quantize(float, { method: 'static-int8', calibration: detSamples(pages, `${set} pages`), ...overrides }, { ort: nodeOrt, threads: 2 });
        const bytes = writeModel(model);
        const reading = {
          set,
          setting,
          heldOut: ious(refHeld, await detMaps(nodeOrt, bytes, held, MAP_SESSION)),
          tuning: ious(refTuning, await detMaps(nodeOrt, bytes, tuning, MAP_SESSION)),
          seconds: round((performance.now() - started) / 1000),
          load: round(os.loadavg()[0]),
        };
        readings.push(reading);
        log(`${setting}, ${set}: held-out IoU ${reading.heldOut.mean} (lowest ${reading.heldOut.lowest}), tuning ${reading.tuning.mean} (lowest ${reading.tuning.lowest}), ${reading.seconds} s, load ${reading.load}`);
      }
    }
    const summary = [...new Set(readings.map((r) => r.setting))].map((setting) => {
      const rows = readings.filter((r) => r.setting === setting);
      const held = rows.map((r) => r.heldOut.mean);
      const tune = rows.map((r) => r.tuning.mean);
      const mean = (v: number[]) => Number((v.reduce((a, b) => a + b, 0) / v.length).toFixed(4));
      return { setting, sets: rows.length, heldOut: { min: Math.min(...held), mean: mean(held), max: Math.max(...held) }, tuning: { min: Math.min(...tune), mean: mean(tune), max: Math.max(...tune) }, setsReachingTarget: held.filter((v) => v >= TARGET).length };
    });
    const markdown = [
      '# PP-OCRv4 det static int8: held-out text-mask IoU by which 4 pages calibrate it',
      '',
      `Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime}, ${machine.date}, load average ${machine.loadAverage} at the start.`,
      '',
      `Each row: \`shrink quantize --method static-int8\` (the pipeline step the command calls; per-channel weights, minmax, bias correction 'auto') calibrated on 4 pages of ${DET_PAGES} of the calibration kind ('calib' or 'train', same fonts and papers, other draws), then text masks (probability > 0.3) against float32's on the 16 held-out pages (other fonts, texts, papers and seed) and on 32 tuning pages ('train' 16-47, never calibrated on). 'dead-zones' adds \`--dead-zones\`. Nothing is chosen here; the target of issue 15 is held-out IoU >= ${TARGET}.`,
      '',
      '| setting | calibration pages | held-out IoU, mean | lowest page | tuning IoU, mean | lowest page | seconds | load |',
      '|---|---|---:|---:|---:|---:|---:|---:|',
      ...readings.map((r) => `| ${r.setting} | ${r.set} | ${r.heldOut.mean} | ${r.heldOut.lowest} | ${r.tuning.mean} | ${r.tuning.lowest} | ${r.seconds} | ${r.load} |`),
      '',
      '| setting | sets | held-out IoU min / mean / max | sets >= 0.95 held out | tuning IoU min / mean / max |',
      '|---|---:|---|---:|---|',
      ...summary.map((s) => `| ${s.setting} | ${s.sets} | ${s.heldOut.min} / ${s.heldOut.mean} / ${s.heldOut.max} | ${s.setsReachingTarget} | ${s.tuning.min} / ${s.tuning.mean} / ${s.tuning.max} |`),
      '',
    ].join('\n');
    return { json: { machine, target: TARGET, readings, summary }, markdown };
  },
};
