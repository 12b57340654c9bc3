// Static int8 of PP-OCRv4 det calibrated on different sets of 4 (or 8) pages (issue 15): does the
// held-out text-mask IoU hold whichever pages a user calibrates on? Each set is pages of the
// calibration kind (bench/work/det-pages: 'calib' pages 0-15 and 'train' pages 0-15, the same fonts
// and papers, other draws); every model is read on the 16 held-out pages (other fonts, texts,
// papers, seed) and on 32 tuning pages ('train' 16-47, never calibrated on). Settings by name
// (SETTINGS): the command's defaults, --dead-zones, the expected-minmax calibrator, bias
// correction's shrunk shift estimates, float prefixes (--float-prefix). Nothing here chooses anything: it measures how much the
// choice of pages moves the result; a setting is to be judged on the tuning columns.
// Rerun: `npm run bench -- det-calibration-sets` (4 pages, 7 sets, ~20 min quiet) or
// `npm run bench -- det-calibration-sets-8` (8 pages, 4 sets); DET_SETS_SETTINGS=defaults,em-shrunk
// narrows the settings, DET_SETS_SETS='calib 0-7,train 8-15' the sets.
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
/**
 * The settings by name (DET_SETS_SETTINGS picks some). 'em' is the expected-minmax calibrator
 * (ranges as 4 pages give them, in expectation over which 4: they do not widen with more pages);
 * 'shrunk' / 'soft' the bias correction shift estimates of bias-shift.ts (a channel's mean shift
 * shrunk by its standard error over the pages); 'dz' dead zones.
 */
const SETTINGS: Record<string, Partial<QuantizeSettings>> = {
  // Since session 11 the defaults keep a float prefix ('auto': the first layers holding <= 12% of the multiply-accumulates; 10 layers on det at 640x640).
  defaults: {},
  // The defaults before that: every layer int8.
  'float-prefix-0': { floatPrefix: 0 },
  'dead-zones': { deadZones: true },
  shrunk: { biasCorrectionShift: 'shrunk' },
  soft: { biasCorrectionShift: 'soft' },
  em: { calibrator: 'expected-minmax' },
  'em-shrunk': { calibrator: 'expected-minmax', biasCorrectionShift: 'shrunk' },
  'em-soft': { calibrator: 'expected-minmax', biasCorrectionShift: 'soft' },
  'em-dz': { calibrator: 'expected-minmax', deadZones: true },
  'em-shrunk-dz': { calibrator: 'expected-minmax', biasCorrectionShift: 'shrunk', deadZones: true },
  // --float-prefix N: the first N weighted layers (6: stem and first blocks at 1/2 and 1/4 resolution; 7: and the 1x1 conv after them; 9: through the first 1/8 block) and what lies before the next stay float32.
  'float-prefix-6': { floatPrefix: 6 },
  'float-prefix-7': { floatPrefix: 7 },
  'float-prefix-9': { floatPrefix: 9 },
  'float-prefix-10': { floatPrefix: 10 },
  'em-soft-dz': { calibrator: 'expected-minmax', biasCorrectionShift: 'soft', deadZones: true },
  ranges4: { rangeSamples: 4 },
  'ranges4-shrunk': { rangeSamples: 4, biasCorrectionShift: 'shrunk' },
};
const SETTING_LEGEND =
  "'defaults' the command's (since session 11 with `--float-prefix auto`: 10 layers here); 'float-prefix-0' the defaults before, every layer int8; 'dead-zones' / 'dz' adds `--dead-zones`; 'em' the expected-minmax calibrator; 'shrunk' / 'soft' bias correction's shift shrunk by its standard error over the pages (biasCorrectionShift, bias-shift.ts); 'float-prefix-N' adds `--float-prefix N`; 'ranges4' ranges (minmax) from the first 4 pages, bias correction on all (rangeSamples).";
/** Where each set of calibration pages starts: 4 pages (7 sets) or 8 (4 sets); DET_SETS_SETS picks some by name. */
const SET_STARTS: Record<4 | 8, { calib: number[]; train: number[] }> = { 4: { calib: [0, 4, 8], train: [0, 4, 8, 12] }, 8: { calib: [0, 8], train: [0, 8] } };
const TARGET = 0.95;

export interface Reading {
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

/** The bench on sets of `size` pages: det-calibration-sets (4 pages) or det-calibration-sets-8. */
function detCalibrationSets(size: 4 | 8): Bench {
  return { name: size === 4 ? 'det-calibration-sets' : `det-calibration-sets-${size}`, run: (log) => runSets(size, log) };
}

export const detCalibrationSetsBench = detCalibrationSets(4);
export const detCalibrationSets8Bench = detCalibrationSets(8);

async function runSets(size: 4 | 8, log: (line: string) => void): Promise<BenchOutput> {
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
  const onlySets = process.env.DET_SETS_SETS?.split(',');
  const sets: [string, Tensor[]][] = [
    ...SET_STARTS[size].calib.map((at): [string, Tensor[]] => [`calib ${at}-${at + size - 1}`, calib.slice(at, at + size)]),
    ...SET_STARTS[size].train.map((at): [string, Tensor[]] => [`train ${at}-${at + size - 1}`, train.slice(at, at + size)]),
  ].filter(([name]) => onlySets === undefined || onlySets.includes(name));
  const only = process.env.DET_SETS_SETTINGS?.split(',');
  for (const name of only ?? []) if (SETTINGS[name] === undefined) throw new Error(`DET_SETS_SETTINGS: unknown '${name}' (known: ${Object.keys(SETTINGS).join(', ')})`);
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
  return detCalibrationSetsReport(machine, size, readings);
}

/** The tables from the readings (exported so that runs split over processes can be merged). */
export function detCalibrationSetsReport(machine: ReturnType<typeof machineInfo>, size: number, readings: Reading[]): BenchOutput {
  const summary = [...new Set(readings.map((r) => r.setting))].map((setting) => {
    const rows = readings.filter((r) => r.setting === setting);
    const held = rows.map((r) => r.heldOut.mean);
    const tune = rows.map((r) => r.tuning.mean);
    const mean = (v: number[]) => Number((v.reduce((a, b) => a + b, 0) / v.length).toFixed(4));
    return { setting, sets: rows.length, heldOut: { min: Math.min(...held), mean: mean(held), max: Math.max(...held) }, tuning: { min: Math.min(...tune), mean: mean(tune), max: Math.max(...tune) }, setsReachingTarget: held.filter((v) => v >= TARGET).length };
  });
  const markdown = [
    `# PP-OCRv4 det static int8: held-out text-mask IoU by which ${size} pages calibrate it`,
    '',
    `Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime}, ${machine.date}, load average ${machine.loadAverage} at the start.`,
    '',
    `Each row: \`shrink quantize --method static-int8\` (the pipeline step the command calls; per-channel weights, minmax, bias correction 'auto') calibrated on ${size} pages of ${DET_PAGES} of the calibration kind ('calib' or 'train', same fonts and papers, other draws), then text masks (probability > 0.3) against float32's on the 16 held-out pages (other fonts, texts, papers and seed) and on 32 tuning pages ('train' 16-47, never calibrated on). Settings: ${SETTING_LEGEND} Nothing is chosen here; the target of issue 15 is held-out IoU >= ${TARGET}, and a setting is judged on the tuning pages only.`,
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
  return { json: { machine, target: TARGET, pagesPerSet: size, readings, summary }, markdown };
}
