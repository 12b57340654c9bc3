// Child process of bench/train-speed.ts: shrink's training steps on request, in a process of its
// own so that its peak resident memory is the training's alone. The same protocol as
// `train_reference.py serve`: a line `steps K` on stdin runs K steps and prints their times as one
// JSON line, `memory` prints the peak resident memory, `quit` (or the end of stdin) ends.
// Usage: train-speed-child.ts MODEL.onnx SETUP.npz THREADS [BATCH]
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';
import { npyToTensor } from '../../src/eval/npy.js';
import { readNpz } from '../../src/eval/npz.js';
import { loadModel } from '../../src/node/model-files.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { Trainer } from '../../src/train/trainer.js';

const [modelFile, setupFile, threadsArg, batchArg] = process.argv.slice(2);
const threads = Number(threadsArg);
const batch = Number(batchArg ?? 64);
const setup = await readNpz(fs.readFileSync(setupFile), setupFile);
const x = setup.get('train_x');
const y = setup.get('train_y');
if (x === undefined || y === undefined) throw new Error(`${setupFile}: needs train_x and train_y`);
const images = npyToTensor(x, 'train_x').data() as Float32Array;
const labels = npyToTensor(y, 'train_y').data() as BigInt64Array;
const per = images.length / labels.length;
// The batches PyTorch's side cycles over: consecutive rows, built before any step is timed.
const batches: Record<string, Tensor>[] = [];
for (let start = 0; start + batch <= labels.length; start += batch) {
  batches.push({
    input: Tensor.fromArray('input', DataType.FLOAT, [batch, ...x.dims.slice(1)], images.slice(start * per, (start + batch) * per)),
    'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [batch], labels.slice(start, start + batch)),
  });
}
const trainer = await Trainer.create(nodeOrt, loadModel(modelFile), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9 } }, { threads });
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
say({ ready: true, threads });
let step = 0;
for await (const line of readline.createInterface({ input: process.stdin })) {
  const words = line.trim().split(/\s+/);
  if (words[0] === 'quit') break;
  if (words[0] === 'memory') {
    say({ peak_rss_mib: process.resourceUsage().maxRSS / 1024 });
    continue;
  }
  const ms: number[] = [];
  let loss = 0;
  for (let i = 0; i < Number(words[1]); i++) {
    const feeds = batches[step++ % batches.length];
    const started = performance.now();
    loss = await trainer.step(feeds, 0.01);
    ms.push(performance.now() - started);
  }
  say({ ms, loss });
}
await trainer.release();
