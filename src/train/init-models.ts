// Untrained models built in code, initialised as PyTorch initialises nn.Linear and nn.Conv2d
// (weights and biases uniform in +-1/sqrt(fan_in)), so a run here and a run in PyTorch start from
// the same distribution. For training from scratch, tests and benchmarks.
import { attr } from '../ir/attribute.js';
import { buildModel, GraphBuilder } from '../ir/builder.js';
import { DataType } from '../ir/dtype.js';
import { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { mulberry32 } from '../kernels/random.js';

function uniform(count: number, bound: number, next: () => number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * bound;
  return out;
}

/** A fully connected layer y = x W^T + b (Gemm, transB) with PyTorch's default initialisation. */
function linear(b: GraphBuilder, x: string, inputs: number, outputs: number, name: string, next: () => number): string {
  const bound = 1 / Math.sqrt(inputs);
  const w = b.initializer(`${name}.weight`, DataType.FLOAT, [outputs, inputs], uniform(outputs * inputs, bound, next));
  const bias = b.initializer(`${name}.bias`, DataType.FLOAT, [outputs], uniform(outputs, bound, next));
  return b.node('Gemm', [x, w, bias], [attr.int('transB', 1)], { name });
}

/** MLP on flattened images: input `input` [N, ...imageDims], output `logits` [N, classes]. */
export function mlpModel(options: { imageDims: number[]; hidden: number[]; classes: number; seed?: number }): Model {
  const next = mulberry32(options.seed ?? 0);
  const b = new GraphBuilder(new Graph('mlp'));
  const input = b.input('input', DataType.FLOAT, ['N', ...options.imageDims]);
  let x = b.node('Flatten', [input], [attr.int('axis', 1)], { name: 'flatten' });
  let width = options.imageDims.reduce((a, c) => a * c, 1);
  options.hidden.forEach((h, i) => {
    x = b.node('Relu', [linear(b, x, width, h, `fc${i + 1}`, next)], [], { name: `relu${i + 1}` });
    width = h;
  });
  b.node('Identity', [linear(b, x, width, options.classes, `fc${options.hidden.length + 1}`, next)], [], { name: 'output', outputs: ['logits'] });
  b.output('logits', DataType.FLOAT, ['N', options.classes]);
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

/**
 * A small CNN for 28x28 grey images: conv(32, 3x3) - BN - ReLU - maxpool 2, conv(64, 3x3) - BN -
 * ReLU - maxpool 2, fc 128 - ReLU - fc classes. Input `input` [N, 1, 28, 28], output `logits`.
 */
export function cnnModel(options: { classes: number; channels?: [number, number]; hidden?: number; batchNorm?: boolean; seed?: number }): Model {
  const next = mulberry32(options.seed ?? 0);
  const [c1, c2] = options.channels ?? [32, 64];
  const hidden = options.hidden ?? 128;
  const b = new GraphBuilder(new Graph('cnn'));
  let x = b.input('input', DataType.FLOAT, ['N', 1, 28, 28]);
  const block = (inputChannels: number, outputChannels: number, i: number) => {
    const bound = 1 / Math.sqrt(inputChannels * 9);
    const w = b.initializer(`conv${i}.weight`, DataType.FLOAT, [outputChannels, inputChannels, 3, 3], uniform(outputChannels * inputChannels * 9, bound, next));
    const bias = b.initializer(`conv${i}.bias`, DataType.FLOAT, [outputChannels], uniform(outputChannels, bound, next));
    x = b.node('Conv', [x, w, bias], [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])], { name: `conv${i}` });
    if (options.batchNorm !== false) {
      const ones = new Float32Array(outputChannels).fill(1);
      const zeros = new Float32Array(outputChannels);
      x = b.node(
        'BatchNormalization',
        [x, b.initializer(`bn${i}.weight`, DataType.FLOAT, [outputChannels], ones), b.initializer(`bn${i}.bias`, DataType.FLOAT, [outputChannels], zeros.slice()), b.initializer(`bn${i}.running_mean`, DataType.FLOAT, [outputChannels], zeros.slice()), b.initializer(`bn${i}.running_var`, DataType.FLOAT, [outputChannels], ones.slice())],
        [attr.float('momentum', 0.9)],
        { name: `bn${i}` },
      );
    }
    x = b.node('Relu', [x], [], { name: `relu${i}` });
    x = b.node('MaxPool', [x], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])], { name: `pool${i}` });
  };
  block(1, c1, 1);
  block(c1, c2, 2);
  x = b.node('Flatten', [x], [attr.int('axis', 1)], { name: 'flatten' });
  x = b.node('Relu', [linear(b, x, c2 * 7 * 7, hidden, 'fc1', next)], [], { name: 'relu3' });
  b.node('Identity', [linear(b, x, hidden, options.classes, 'fc2', next)], [], { name: 'output', outputs: ['logits'] });
  b.output('logits', DataType.FLOAT, ['N', options.classes]);
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

/**
 * LeNet-5 with the layer sizes of Caffe's example (the model Deep Compression compressed, 431,080
 * parameters): Conv 20@5x5 (no padding), MaxPool 2, Conv 50@5x5, MaxPool 2, Gemm 800->500, ReLU,
 * Gemm 500->10; here with a ReLU after each pooling too. Input `input` [N, 1, 28, 28], output `logits`.
 */
export function lenet5Model(options: { classes: number; seed?: number }): Model {
  const next = mulberry32(options.seed ?? 0);
  const b = new GraphBuilder(new Graph('lenet5'));
  let x = b.input('input', DataType.FLOAT, ['N', 1, 28, 28]);
  for (const [i, inputs, outputs] of [
    [1, 1, 20],
    [2, 20, 50],
  ] as const) {
    const bound = 1 / Math.sqrt(inputs * 25);
    const w = b.initializer(`conv${i}.weight`, DataType.FLOAT, [outputs, inputs, 5, 5], uniform(outputs * inputs * 25, bound, next));
    const bias = b.initializer(`conv${i}.bias`, DataType.FLOAT, [outputs], uniform(outputs, bound, next));
    x = b.node('Conv', [x, w, bias], [attr.ints('kernel_shape', [5, 5])], { name: `conv${i}` });
    x = b.node('MaxPool', [x], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])], { name: `pool${i}` });
    x = b.node('Relu', [x], [], { name: `relu${i}` });
  }
  x = b.node('Flatten', [x], [attr.int('axis', 1)], { name: 'flatten' });
  x = b.node('Relu', [linear(b, x, 800, 500, 'fc1', next)], [], { name: 'relu3' });
  b.node('Identity', [linear(b, x, 500, options.classes, 'fc2', next)], [], { name: 'output', outputs: ['logits'] });
  b.output('logits', DataType.FLOAT, ['N', options.classes]);
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}
