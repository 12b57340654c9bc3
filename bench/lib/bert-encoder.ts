// A BERT-base-shaped encoder built in code, laid out as torch.onnx.export writes BERT: per layer
// Q/K/V projections (MatMul + bias Add), Reshape [0,0,heads,head] + Transpose into heads, Q.K^T
// divided by sqrt(head) plus the additive padding mask (1 - mask) * -10000, Softmax, P.V, heads
// merged back, output projection, residual Add + LayerNormalization, feed-forward (ReLU) with its
// own residual and LayerNormalization. Random weights (Xavier-like uniform, seeded): a speed
// subject at real transformer sizes, where only agreement with float32 can be measured.
import { attr } from '../../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../../src/ir/builder.js';
import { DataType } from '../../src/ir/dtype.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { floats } from './feeds.js';

/** Inputs: `x` float32 [batch, tokens, hidden] (embedded tokens), `attention_mask` int64 [batch, tokens]. */
export function bertEncoder(layers: number, hidden: number, heads: number, inner: number, seed = 21): Model {
  const b = new GraphBuilder();
  let x = b.input('x', DataType.FLOAT, ['batch', 'tokens', hidden]);
  const mask = b.input('attention_mask', DataType.INT64, ['batch', 'tokens']);
  let k = seed;
  const i64 = (values: number[]) => b.tensor(Tensor.fromArray(`const${k++}`, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  const f32 = (value: number) => b.tensor(Tensor.fromArray(`const${k++}`, DataType.FLOAT, [], new Float32Array([value])));
  const extended = b.node('Unsqueeze', [b.node('Unsqueeze', [mask, i64([1])]), i64([2])]);
  const maskBias = b.node('Mul', [b.node('Sub', [f32(1), b.node('Cast', [extended], [attr.int('to', DataType.FLOAT)])]), f32(-10000)]);
  const linear = (input: string, n: number, m: number) => {
    const s = Math.sqrt(6 / (n + m));
    return b.node('Add', [b.node('MatMul', [input, b.tensor(floats(`w${k++}`, [n, m], k, -s, s))]), b.tensor(floats(`b${k++}`, [m], k, -0.1, 0.1))]);
  };
  const norm = (input: string) =>
    b.node('LayerNormalization', [input, b.tensor(floats(`gamma${k++}`, [hidden], k, 0.9, 1.1)), b.tensor(floats(`beta${k++}`, [hidden], k, -0.1, 0.1))], [attr.int('axis', -1), attr.float('epsilon', 1e-12)]);
  const size = hidden / heads;
  for (let layer = 0; layer < layers; layer++) {
    const split = (value: string, perm: number[]) => b.node('Transpose', [b.node('Reshape', [value, i64([0, 0, heads, size])])], [attr.ints('perm', perm)]);
    const q = split(linear(x, hidden, hidden), [0, 2, 1, 3]);
    const kT = split(linear(x, hidden, hidden), [0, 2, 3, 1]);
    const v = split(linear(x, hidden, hidden), [0, 2, 1, 3]);
    const scores = b.node('Add', [b.node('Div', [b.node('MatMul', [q, kT]), f32(Math.sqrt(size))]), maskBias]);
    const p = b.node('Softmax', [scores], [attr.int('axis', -1)]);
    const context = b.node('Reshape', [b.node('Transpose', [b.node('MatMul', [p, v])], [attr.ints('perm', [0, 2, 1, 3])]), i64([0, 0, hidden])]);
    const attended = norm(b.node('Add', [linear(context, hidden, hidden), x]));
    x = norm(b.node('Add', [linear(b.node('Relu', [linear(attended, hidden, inner)]), inner, hidden), attended]));
  }
  b.output(x, DataType.FLOAT);
  return buildModel(b.graph);
}
