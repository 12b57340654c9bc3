// Child process of bench/train-speed.ts: shrink's training steps on request, in a process of its
// own so that its peak resident memory is the training's alone. The same protocol as
// `train_reference.py serve`: a line `steps N` on stdin runs N steps and prints their times as one
// JSON line, `memory` prints the peak resident memory, `quit` (or the end of stdin) ends. Steps run
// as Trainer.fit runs them: PER_RUN steps per onnxruntime run (Trainer.steps); each run gives one
// time, its duration divided by PER_RUN.
// Usage: train-speed-child.ts MODEL.onnx SETUP.npz THREADS BATCH PER_RUN [SPINNING: on|off]
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';
import { npyToTensor } from '../../src/eval/npy.js';
import { readNpz } from '../../src/eval/npz.js';
import { loadModel } from '../../src/node/model-files.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { Trainer } from '../../src/train/trainer.js';

const [modelFile, setupFile, threadsArg, batchArg, perRunArg, spinningArg] = process.argv.slice(2);
const threads = Number(threadsArg);
const batch = Number(batchArg);
const perRun = Number(perRunArg);
const setup = await readNpz(fs.readFileSync(setupFile), setupFile);
const x = setup.get('train_x');
const y = setup.get('train_y');
if (x === undefined || y === undefined) throw new Error(`${setupFile}: needs train_x and train_y`);
const images = npyToTensor(x, 'train_x').data() as Float32Array;
const labels = npyToTensor(y, 'train_y').data() as BigInt64Array;
const per = images.length / labels.length;
// The batches PyTorch's side cycles over (consecutive rows), PER_RUN of them stacked per run.
const runs: Record<string, Tensor>[] = [];
for (let start = 0; start + batch * perRun <= labels.length; start += batch * perRun) {
  runs.push({
    input: Tensor.fromArray('input', DataType.FLOAT, [batch * perRun, ...x.dims.slice(1)], images.slice(start * per, (start + batch * perRun) * per)),
    'train/labels': Tensor.fromArray('train/labels', DataType.INT64, [batch * perRun], labels.slice(start, start + batch * perRun)),
  });
}
if (runs.length === 0) throw new Error(`${setupFile}: fewer than ${batch * perRun} samples`);
const trainer = await Trainer.create(nodeOrt, loadModel(modelFile), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: 0.9 } }, { threads, stepsPerRun: perRun, spinning: spinningArg === undefined ? undefined : spinningArg === 'on' });
const rates = new Array<number>(perRun).fill(0.01);
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
say({ ready: true, threads });
let run = 0;
for await (const line of readline.createInterface({ input: process.stdin })) {
  const words = line.trim().split(/\s+/);
  if (words[0] === 'quit') break;
  if (words[0] === 'memory') {
    say({ peak_rss_mib: process.resourceUsage().maxRSS / 1024 });
    continue;
  }
  const ms: number[] = [];
  let loss = 0;
  for (let i = 0; i < Number(words[1]) / perRun; i++) {
    const started = performance.now();
    const losses = await trainer.steps(runs[run++ % runs.length], rates);
    ms.push((performance.now() - started) / perRun);
    loss = losses[losses.length - 1];
  }
  say({ ms, loss });
}
await trainer.release();
