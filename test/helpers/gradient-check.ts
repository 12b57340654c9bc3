// Gradient checks: the backward graph shrink emits, run in onnxruntime, against central finite
// differences of the forward graph in float64. The loss is sum(y * R) for a fixed random R, so
// every element of the op's output matters and dL/dy = R.
//
// onnxruntime has no float64 kernels for some ops (Conv, ConvTranspose, AveragePool,
// GlobalAveragePool, Erf, LeakyRelu, HardSigmoid, HardSwish). For those a case either runs in
// float32 and is `linear` in each checked input (then a step of 1 gives exact differences up to
// float32 rounding), or gives a float64 `reference` of the forward op written in the test.
import assert from 'node:assert/strict';
import { attr } from '../../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../../src/ir/builder.js';
import { DataType } from '../../src/ir/dtype.js';
import { Graph } from '../../src/ir/graph.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { mulberry32 } from '../../src/kernels/random.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { readModel, writeModel } from '../../src/onnx/model-io.js';
import { ModelSession, fromOrtTensor, toOrtTensor } from '../../src/runtime/session.js';
import { addGradients } from '../../src/train/autodiff.js';
import { runModel } from './run-model.js';

export interface InputSpec {
  dims: number[];
  /** Values (default: seeded uniform in [low, high)). */
  data?: number[];
  low?: number;
  high?: number;
  /** Integer inputs (indices): int64, never differentiated. */
  int64?: boolean;
}

export interface GradientCase {
  /** Declares the inputs (use `dtype` for float ones) and forward nodes; returns the output checked. */
  build(b: GraphBuilder, dtype: DataType): string;
  inputs: Record<string, InputSpec>;
  /** Inputs to differentiate with respect to. */
  wrt: string[];
  /** 'double' (default) where onnxruntime has float64 kernels for every forward op. */
  dtype?: 'double' | 'float';
  opset?: number;
  /** float64 forward of the case (inputs by name, output row-major), for float-only ops. */
  reference?: (inputs: Record<string, Float64Array>) => Float64Array;
  /** The output is linear in each wrt input: differences with step 1 in the run's dtype are exact. */
  linear?: boolean;
  /** Largest allowed ||analytic - numeric|| / ||numeric|| per input (default 1e-4). */
  tolerance?: number;
  seed?: number;
}

export interface GradientCheckResult {
  /** Relative error per wrt input. */
  errors: Record<string, number>;
}

/** Runs the check and asserts every input's relative error is below the tolerance. */
export async function checkGradient(c: GradientCase): Promise<GradientCheckResult> {
  const dtype = c.dtype === 'float' ? DataType.FLOAT : DataType.DOUBLE;
  const opset = c.opset ?? 17;
  const next = mulberry32(c.seed ?? 1);
  const values: Record<string, Float64Array> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    const count = spec.dims.reduce((a, b) => a * b, 1);
    const low = spec.low ?? -1;
    const high = spec.high ?? 1;
    values[name] = spec.data !== undefined ? Float64Array.from(spec.data) : Float64Array.from({ length: count }, () => low + (high - low) * next());
  }
  const feedsOf = (vals: Record<string, Float64Array>) =>
    Object.entries(c.inputs).map(([name, spec]) => {
      const data = vals[name];
      if (spec.int64 === true) return Tensor.fromArray(name, DataType.INT64, spec.dims, BigInt64Array.from(data, (v) => BigInt(Math.round(v))));
      return Tensor.fromArray(name, dtype, spec.dims, dtype === DataType.DOUBLE ? Float64Array.from(data) : Float32Array.from(data));
    });

  // The forward output's shape, then a fixed weighting R of that shape.
  const forward = forwardModel(c, dtype, opset);
  const y = (await runModel(forward, feedsOf(values)))[0];
  const weights = Float64Array.from({ length: y.elementCount }, () => next() * 2 - 1);
  const lossModel = withLoss(c, dtype, opset, y.dims, weights);

  const training = readModel(writeModel(lossModel));
  const { gradients } = addGradients(training, { loss: 'loss', wrt: c.wrt });
  training.graph.outputs = [];
  // Identity per output: two inputs may share one gradient value (Add of equal shapes).
  for (const [k, name] of c.wrt.entries()) {
    training.graph.addNode({ opType: 'Identity', inputs: [gradients.get(name) as string], outputs: [`checked_gradient_${k}`], name: `checked_gradient_${k}` });
    training.graph.addOutput(`checked_gradient_${k}`);
  }
  training.graph.changed();
  const analytic = (await runModel(training, feedsOf(values))).map((t) => Float64Array.from(t.data() as ArrayLike<number>));

  const session = await ModelSession.create(nodeOrt, lossModel, { threads: 1 });
  const lossAt = async (vals: Record<string, Float64Array>): Promise<number> => {
    if (c.reference !== undefined) {
      const out = c.reference(vals);
      assert.equal(out.length, weights.length, 'reference output size');
      let sum = 0;
      for (let i = 0; i < out.length; i++) sum += out[i] * weights[i];
      return sum;
    }
    const result = await session.run(Object.fromEntries(feedsOf(vals).map((t) => [t.name, toOrtTensor(nodeOrt, t)])));
    return Number((fromOrtTensor(result.loss, 'loss').data() as ArrayLike<number>)[0]);
  };
  const step = c.linear === true ? 1 : dtype === DataType.DOUBLE || c.reference !== undefined ? 1e-6 : 1e-3;
  if (dtype === DataType.FLOAT && c.linear !== true && c.reference === undefined) {
    throw new Error('a float32 case needs `linear` or a float64 `reference` to difference in float64');
  }
  const errors: Record<string, number> = {};
  try {
    for (const [k, name] of c.wrt.entries()) {
      const base = values[name];
      const numeric = new Float64Array(base.length);
      for (let i = 0; i < base.length; i++) {
        const keep = base[i];
        base[i] = keep + step;
        const up = await lossAt(values);
        base[i] = keep - step;
        const down = await lossAt(values);
        base[i] = keep;
        numeric[i] = (up - down) / (2 * step);
      }
      const got = analytic[k];
      assert.equal(got.length, numeric.length, `gradient of '${name}' has ${got.length} elements, the input ${numeric.length}`);
      let diff = 0;
      let norm = 0;
      for (let i = 0; i < got.length; i++) {
        diff += (got[i] - numeric[i]) ** 2;
        norm += numeric[i] ** 2;
      }
      errors[name] = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
      assert.ok(norm > 0, `the numeric gradient of '${name}' is all zeros: the case checks nothing`);
    }
  } finally {
    await session.release();
  }
  const tolerance = c.tolerance ?? 1e-4;
  for (const [name, error] of Object.entries(errors)) assert.ok(error < tolerance, `gradient of '${name}': relative error ${error.toExponential(2)} >= ${tolerance}`);
  return { errors };
}

function forwardModel(c: GradientCase, dtype: DataType, opset: number): Model {
  const b = new GraphBuilder(new Graph('case'));
  declareInputs(b, c, dtype);
  b.output(c.build(b, dtype));
  return buildModel(b.graph, [{ domain: '', version: opset }], 8);
}

/** The case's forward graph plus loss = ReduceSum(y * R), a scalar. */
function withLoss(c: GradientCase, dtype: DataType, opset: number, dims: readonly number[], weights: Float64Array): Model {
  const b = new GraphBuilder(new Graph('case'));
  declareInputs(b, c, dtype);
  const y = c.build(b, dtype);
  const r = b.initializer('loss_weights', dtype, dims, dtype === DataType.DOUBLE ? Float64Array.from(weights) : Float32Array.from(weights));
  const product = b.node('Mul', [y, r]);
  const keep = attr.int('keepdims', 0);
  if (opset >= 13) b.node('ReduceSum', [product, b.initializer('all_axes', DataType.INT64, [dims.length], BigInt64Array.from(dims.map((_, i) => BigInt(i))))], [keep], { outputs: ['loss'] });
  else b.node('ReduceSum', [product], [keep], { outputs: ['loss'] });
  b.output('loss');
  return buildModel(b.graph, [{ domain: '', version: opset }], 8);
}

function declareInputs(b: GraphBuilder, c: GradientCase, dtype: DataType): void {
  for (const [name, spec] of Object.entries(c.inputs)) b.input(name, spec.int64 === true ? DataType.INT64 : dtype, spec.dims);
}
