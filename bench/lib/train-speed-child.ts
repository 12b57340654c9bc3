// Child process of bench/train.ts: times training steps of one model in shrink in a process of its
// own, so its peak resident memory is the training's alone. Prints one JSON line.
// Usage: train-speed-child.ts MODEL.onnx SETUP.npz '{"steps":30,"warmup":5,"batch":64}'
import * as fs from 'node:fs';
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';
import { npyToTensor } from '../../src/eval/npy.js';
import { readNpz } from '../../src/eval/npz.js';
import { loadModel } from '../../src/node/model-files.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { Trainer } from '../../src/train/trainer.js';
import { median } from './stats.js';

const [modelFile, setupFile, settings] = process.argv.slice(2);
const { steps, warmup, batch } = JSON.parse(settings) as { steps: number; warmup: number; batch: number };
const setup = await readNpz(fs.readFileSync(setupFile), setupFile);
const x = setup.get('train_x');
const y = setup.get('train_y');
if (x === undefined || y === undefined) throw new Error(`${setupFile}: needs train_x and train_y`);
const images = npyToTensor(x, 'train_x').data() as Float32Array;
const labels = npyToTensor(y, 'train_y').data() as BigInt64Array;
const count = labels.length;
const trainer = await Trainer.create(nodeOrt, loadModel(modelFile), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9 } }, { threads: 1 });
const per = images.length / count;
const times: number[] = [];
for (let s = 0; s < warmup + steps; s++) {
  const rows = Array.from({ length: batch }, (_, i) => (s * batch + i) % count);
  const input = new Float32Array(batch * per);
  rows.forEach((r, i) => input.set(images.subarray(r * per, (r + 1) * per), i * per));
  const feeds = {
    input: Tensor.fromArray('input', DataType.FLOAT, [batch, ...x.dims.slice(1)], input),
    'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [batch], BigInt64Array.from(rows, (r) => labels[r])),
  };
  const started = performance.now();
  await trainer.step(feeds, 0.01);
  if (s >= warmup) times.push(performance.now() - started);
}
await trainer.release();
process.stdout.write(`${JSON.stringify({ median_ms: median(times), peak_rss_mib: process.resourceUsage().maxRSS / 1024 })}\n`);
