// Distillation losses tested on their own: a graph with student logits 's' and teacher logits 't'
// of shape [rows, classes] in and the scalar loss out, and the float64 log-softmax the references use.
import { buildModel, GraphBuilder } from '../../src/ir/builder.js';
import { DataType } from '../../src/ir/dtype.js';
import { Graph } from '../../src/ir/graph.js';
import type { Model } from '../../src/ir/model.js';
import { mulberry32 } from '../../src/kernels/random.js';
import { Emitter } from '../../src/train/emitter.js';

export function lossGraph(rows: number, classes: number, build: (e: Emitter) => string): Model {
  const b = new GraphBuilder(new Graph('loss'));
  b.input('s', DataType.FLOAT, [rows, classes]);
  b.input('t', DataType.FLOAT, [rows, classes]);
  const [loss] = b.node('Identity', [build(new Emitter(b, 17, new Map(), 'loss'))], [], { outputs: ['loss'] });
  b.output(loss);
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

/** log softmax(row / temperature), in float64. */
export function logSoftmax(row: number[], temperature: number): number[] {
  const scaled = row.map((v) => v / temperature);
  const max = Math.max(...scaled);
  const log = Math.log(scaled.reduce((sum, v) => sum + Math.exp(v - max), 0)) + max;
  return scaled.map((v) => v - log);
}

/** x [N, steps, features] -> MatMul by random [features, classes] weights = logits [N, steps, classes] (a CTC head to distil; blank class 0). */
export function ctcLogitsModel(seed: number, steps: number, features: number, classes: number): Model {
  const next = mulberry32(seed);
  const b = new GraphBuilder(new Graph('ctc'));
  b.input('x', DataType.FLOAT, ['N', steps, features]);
  const w = b.initializer('w', DataType.FLOAT, [features, classes], Float32Array.from({ length: features * classes }, () => (next() * 2 - 1) * 2));
  b.node('MatMul', ['x', w], [], { outputs: ['logits'] });
  b.output('logits');
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}
