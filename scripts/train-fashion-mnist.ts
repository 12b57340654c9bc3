// Trains the small Fashion-MNIST classifier committed at models/fashion-mnist/mlp.onnx, the
// labelled-data model for accuracy tests (evaluation, quantization). Plain TypeScript, no ML
// framework: an MLP 784-256-128-10 with ReLU, softmax cross-entropy, SGD with momentum. The
// result is exported with shrink's own IR and checked in onnxruntime-node before it is saved.
//
//   node --import tsx scripts/train-fashion-mnist.ts [--epochs 8] [--out models/fashion-mnist/mlp.onnx]
//
// Data: Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*-ubyte.gz).
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { attr } from '../src/ir/attribute.js';
import { makeValueInfo } from '../src/ir/value-info.js';
import { parseIdx } from '../src/eval/idx.js';
import { saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { mulberry32 } from '../src/kernels/random.js';

const DATA = '/usr/share/datasets/fashion-mnist';
const { values } = parseArgs({ options: { epochs: { type: 'string', default: '8' }, out: { type: 'string', default: 'models/fashion-mnist/mlp.onnx' } } });
const EPOCHS = Number(values.epochs);
const SIZES = [784, 256, 128, 10];
const BATCH = 64;
const LR = 0.05;
const MOMENTUM = 0.9;

function load(kind: 'train' | 't10k') {
  const file = (name: string) => `${DATA}/${kind}-${name}-ubyte.gz`;
  const images = parseIdx(gunzipSync(readFileSync(file('images-idx3'))), file('images-idx3'));
  const labels = parseIdx(gunzipSync(readFileSync(file('labels-idx1'))), file('labels-idx1'));
  const x = new Float32Array(images.data.length);
  for (let i = 0; i < x.length; i++) x[i] = images.data[i] / 255;
  return { x, y: labels.data, count: labels.dims[0] };
}


interface Layer {
  w: Float32Array; // [out, in], the Gemm transB=1 layout
  b: Float32Array;
  vw: Float32Array;
  vb: Float32Array;
  inputs: number;
  outputs: number;
}

function makeLayers(random: () => number): Layer[] {
  return SIZES.slice(1).map((outputs, i) => {
    const inputs = SIZES[i];
    const bound = Math.sqrt(6 / inputs); // He-uniform for ReLU
    const w = Float32Array.from({ length: outputs * inputs }, () => (random() * 2 - 1) * bound);
    return { w, b: new Float32Array(outputs), vw: new Float32Array(w.length), vb: new Float32Array(outputs), inputs, outputs };
  });
}

/** out[m,n] = a[m,k] . w[n,k]^T + b[n] */
function affine(a: Float32Array, m: number, layer: Layer): Float32Array {
  const { w, b, inputs: k, outputs: n } = layer;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = b[j];
      const ai = i * k;
      const wj = j * k;
      for (let t = 0; t < k; t++) sum += a[ai + t] * w[wj + t];
      out[i * n + j] = sum;
    }
  }
  return out;
}

function relu(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) if (a[i] < 0) a[i] = 0;
  return a;
}

function forward(layers: Layer[], x: Float32Array, m: number): Float32Array[] {
  const acts = [x];
  layers.forEach((layer, i) => {
    const z = affine(acts[acts.length - 1], m, layer);
    acts.push(i < layers.length - 1 ? relu(z) : z);
  });
  return acts;
}

function trainStep(layers: Layer[], x: Float32Array, y: Uint8Array, m: number, lr: number): number {
  const acts = forward(layers, x, m);
  const logits = acts[acts.length - 1];
  const classes = SIZES[SIZES.length - 1];
  let delta = new Float32Array(m * classes);
  let loss = 0;
  for (let i = 0; i < m; i++) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[i * classes + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[i * classes + c] - max);
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logits[i * classes + c] - max) / sum;
      delta[i * classes + c] = (p - (c === y[i] ? 1 : 0)) / m;
    }
    loss -= logits[i * classes + y[i]] - max - Math.log(sum);
  }
  for (let l = layers.length - 1; l >= 0; l--) {
    const layer = layers[l];
    const input = acts[l];
    const { inputs: k, outputs: n } = layer;
    const gw = new Float32Array(n * k);
    const gb = new Float32Array(n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const d = delta[i * n + j];
        if (d === 0) continue;
        gb[j] += d;
        const row = j * k;
        const ai = i * k;
        for (let t = 0; t < k; t++) gw[row + t] += d * input[ai + t];
      }
    }
    if (l > 0) {
      const next = new Float32Array(m * k);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          const d = delta[i * n + j];
          if (d === 0) continue;
          const row = j * k;
          const oi = i * k;
          for (let t = 0; t < k; t++) next[oi + t] += d * layer.w[row + t];
        }
      }
      for (let t = 0; t < next.length; t++) if (input[t] <= 0) next[t] = 0;
      delta = next;
    }
    for (let t = 0; t < gw.length; t++) {
      layer.vw[t] = MOMENTUM * layer.vw[t] - lr * gw[t];
      layer.w[t] += layer.vw[t];
    }
    for (let j = 0; j < n; j++) {
      layer.vb[j] = MOMENTUM * layer.vb[j] - lr * gb[j];
      layer.b[j] += layer.vb[j];
    }
  }
  return loss / m;
}

function accuracy(layers: Layer[], data: ReturnType<typeof load>): number {
  let correct = 0;
  const chunk = 1000;
  for (let start = 0; start < data.count; start += chunk) {
    const m = Math.min(chunk, data.count - start);
    const acts = forward(layers, data.x.subarray(start * 784, (start + m) * 784), m);
    correct += countCorrect(acts[acts.length - 1], data.y.subarray(start, start + m), m);
  }
  return correct / data.count;
}

function countCorrect(logits: Float32Array, labels: Uint8Array, m: number): number {
  let correct = 0;
  for (let i = 0; i < m; i++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
    if (best === labels[i]) correct++;
  }
  return correct;
}

function exportModel(layers: Layer[]): Model {
  const graph = new Graph('fashion_mnist_mlp');
  graph.inputs.push(makeValueInfo('image', { elemType: DataType.FLOAT, shape: ['N', 1, 28, 28] }));
  graph.outputs.push(makeValueInfo('logits', { elemType: DataType.FLOAT, shape: ['N', 10] }));
  graph.addNode({ opType: 'Flatten', name: 'flatten', inputs: ['image'], outputs: ['flat'], attributes: [attr.int('axis', 1)] });
  let current = 'flat';
  layers.forEach((layer, i) => {
    const w = graph.addInitializer(Tensor.fromArray(`fc${i + 1}.weight`, DataType.FLOAT, [layer.outputs, layer.inputs], layer.w));
    const b = graph.addInitializer(Tensor.fromArray(`fc${i + 1}.bias`, DataType.FLOAT, [layer.outputs], layer.b));
    const last = i === layers.length - 1;
    const out = last ? 'logits' : `fc${i + 1}`;
    graph.addNode({ opType: 'Gemm', name: `fc${i + 1}`, inputs: [current, w.name, b.name], outputs: [out], attributes: [attr.int('transB', 1)] });
    if (!last) {
      graph.addNode({ opType: 'Relu', name: `relu${i + 1}`, inputs: [out], outputs: [`relu${i + 1}`] });
      current = `relu${i + 1}`;
    }
  });
  const model = new Model(graph, { irVersion: 8, opsetImports: [{ domain: '', version: 17 }] });
  model.producerName = 'shrink scripts/train-fashion-mnist.ts';
  model.docString = 'MLP 784-256-128-10 trained on Fashion-MNIST; input: images scaled to [0,1]; output: class logits.';
  return model;
}

const train = load('train');
const test = load('t10k');
// Seeded, so the committed model can be re-made bit for bit.
const random = mulberry32(20261123);
const layers = makeLayers(random);
const order = Uint32Array.from({ length: train.count }, (_, i) => i);
const batchX = new Float32Array(BATCH * 784);
const batchY = new Uint8Array(BATCH);
for (let epoch = 0; epoch < EPOCHS; epoch++) {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const lr = LR * 0.5 * (1 + Math.cos((Math.PI * epoch) / EPOCHS));
  let loss = 0;
  let steps = 0;
  for (let start = 0; start + BATCH <= train.count; start += BATCH) {
    for (let b = 0; b < BATCH; b++) {
      const idx = order[start + b];
      batchX.set(train.x.subarray(idx * 784, (idx + 1) * 784), b * 784);
      batchY[b] = train.y[idx];
    }
    loss += trainStep(layers, batchX, batchY, BATCH, lr);
    steps++;
  }
  console.log(`epoch ${epoch + 1}/${EPOCHS}: loss ${(loss / steps).toFixed(4)}, test accuracy ${(accuracy(layers, test) * 100).toFixed(2)}%`);
}

const model = exportModel(layers);
const session = await ModelSession.create(nodeOrt, model);
const image = new nodeOrt.Tensor('float32', test.x, [test.count, 1, 28, 28]);
const { logits } = await session.run({ image });
const ortAccuracy = countCorrect(logits.data as Float32Array, test.y, test.count) / test.count;
const jsAccuracy = accuracy(layers, test);
console.log(`test accuracy: ${(jsAccuracy * 100).toFixed(2)}% (training code), ${(ortAccuracy * 100).toFixed(2)}% (onnxruntime-node on the exported model)`);
if (Math.abs(ortAccuracy - jsAccuracy) > 0.001) throw new Error('exported model disagrees with the trained one');
saveModel(model, values.out);
console.log(`saved ${values.out}`);
