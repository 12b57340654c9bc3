// `shrink auto` on the Fashion-MNIST CNN (bench/lib/fashion-cnn.ts, trained here from scratch), run
// as a user runs it (the CLI in a child process): --data = 4000 training images (the first 512
// calibrate and train, the rest tune), --max-drop 0.5, --target both, latency at batch 64; the
// chosen model is then measured on the 10k test images the search never saw, and timed against the
// float32 model interleaved at batch 64 with 1 and with 2 threads. The issue's bar: at most 0.3x the
// float32 file, faster than float32, within the budget on the test set.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchmarkModels } from '../src/eval/benchmark.js';
import { writeNpy } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { classifierAccuracy } from '../src/train/classification.js';
import { fashionSets, trainFashionCnn } from './lib/fashion-cnn.js';
import { machineInfo } from './lib/machine.js';
import { round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const ROOT = path.join(import.meta.dirname, '..');
const DATA = 4000;
const BATCH = 64;

export const autoBench: Bench = {
  name: 'auto',
  async run(log): Promise<BenchOutput> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-auto-bench-'));
    try {
      const machine = machineInfo();
      const sets = fashionSets();
      const base = await trainFashionCnn(sets, log);
      const model = path.join(dir, 'cnn.onnx');
      saveModel(base.model, model);
      const images = path.join(dir, 'train-images.npy');
      const labels = path.join(dir, 'train-labels.npy');
      const pixels = Float32Array.from(sets.train.images.subarray(0, DATA * 784), (v) => v / 255);
      fs.writeFileSync(images, writeNpy({ dataType: DataType.FLOAT, dims: [DATA, 1, 28, 28], data: new Uint8Array(pixels.buffer) }));
      fs.writeFileSync(labels, writeNpy({ dataType: DataType.INT64, dims: [DATA], data: new Uint8Array(BigInt64Array.from(sets.train.labels.subarray(0, DATA), (v) => BigInt(v)).buffer) }));
      const out = path.join(dir, 'out');
      log('auto: shrink auto on the CNN');
      const started = performance.now();
      const child = spawnSync(process.execPath, [path.join(ROOT, 'bin/shrink.js'), 'auto', model, '-o', out, '--data', images, '--labels', labels, '--max-drop', '0.5', '--batch', String(BATCH), '--json', '--no-progress'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 });
      if (child.status !== 0) throw new Error(`shrink auto failed: ${child.stderr}`);
      const seconds = (performance.now() - started) / 1000;
      const report = JSON.parse(child.stdout);
      const chosen = loadModel(path.join(out, 'model.onnx'));
      const accuracy = await classifierAccuracy(nodeOrt, chosen, sets.test, { threads: 2 });
      const speed = [];
      for (const threads of [1, 2]) {
        const timing = await benchmarkModels(
          nodeOrt,
          [
            { name: 'float32', source: model, model: base.model, size: fs.statSync(model).size },
            { name: report.chosen, source: path.join(out, 'model.onnx'), model: chosen, size: fs.statSync(path.join(out, 'model.onnx')).size },
          ],
          { batch: BATCH, runs: 60, warmup: 5, threads },
        );
        speed.push({ threads, float32_ms: round(timing.models[0].latency_ms.median), chosen_ms: round(timing.models[1].latency_ms.median), speedup: round(timing.models[0].latency_ms.median / timing.models[1].latency_ms.median) });
      }
      const drop = (base.accuracy - accuracy);
      const json = {
        machine,
        base: { accuracy: round(base.accuracy), seconds: round(base.seconds), bytes: fs.statSync(model).size },
        search: { seconds: round(seconds), chosen: report.chosen, size_ratio: round(report.size.ratio), split: report.split, candidates: report.candidates.map((c: Record<string, unknown>) => ({ name: c.name, feasible: c.feasible, size_ratio: c.size_ratio, accuracy: c.accuracy, latency: c.latency, why_not: c.why_not })) },
        test: { accuracy: round(accuracy), drop_points: round(drop) },
        speed,
      };
      const markdown = [
        '# shrink auto: the Fashion-MNIST CNN',
        '',
        `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage}.`,
        '',
        `The CNN of bench/train.ts trained from scratch (${round(base.seconds)} s): ${round(base.accuracy)}% on the 10k test images, ${json.base.bytes} bytes. \`shrink auto --max-drop 0.5 --batch ${BATCH}\` with --data = the first ${DATA} training images (${report.split.calibration} calibrate, ${report.split.tuning} tune); the test images are never seen by the search.`,
        '',
        '| candidate | within budget | accuracy on tuning (drop ± 1 s.e.) | size | speed at batch 64, 1 thread |',
        '| --- | --- | ---: | ---: | ---: |',
        ...report.candidates.map(
          (c: { name: string; feasible: boolean; size_ratio: number; accuracy?: { candidate: number; drop_points: number; error_points: number }; latency?: { speedup: number }; why_not?: string }) =>
            `| ${c.name === report.chosen ? `**${c.name}**` : c.name} | ${c.feasible ? 'yes' : `no: ${c.why_not}`} | ${c.accuracy === undefined ? '-' : `${round(c.accuracy.candidate * 100)}% (${round(c.accuracy.drop_points)} ± ${round(c.accuracy.error_points)})`} | ${round(c.size_ratio)}x | ${c.latency === undefined ? '-' : `${round(c.latency.speedup)}x`} |`,
        ),
        '',
        `**Chosen: ${report.chosen}**, ${round(report.size.ratio)}x the float32 file, found in ${round(seconds)} s (${report.candidates.length} candidates). On the 10k test images: ${round(accuracy)}% against ${round(base.accuracy)}% (${drop >= 0 ? '-' : '+'}${round(Math.abs(drop))} points).`,
        '',
        '| threads | float32 (ms, batch 64) | chosen (ms) | speed-up |',
        '| ---: | ---: | ---: | ---: |',
        ...speed.map((s) => `| ${s.threads} | ${s.float32_ms} | ${s.chosen_ms} | ${s.speedup}x |`),
        '',
      ].join('\n');
      return { json, markdown };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
