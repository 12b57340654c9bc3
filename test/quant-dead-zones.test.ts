// Activation ranges without their readers' dead zones (src/methods/quantize/calibration/dead-zones.ts):
// below -3 a HardSwish reads 0, outside [-beta/alpha, (1-beta)/alpha] a HardSigmoid saturates, below
// 0 a Relu reads 0. Static int8 leaves those parts out of a value's range, which makes its step
// finer without changing what any reader computes.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { tensorSamples } from '../src/eval/samples.js';
import { readersWindow, withoutDeadZones } from '../src/methods/quantize/calibration/dead-zones.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { recipeFromData } from '../src/pipeline/recipe.js';
import { spawnShrink } from './helpers/cli.js';
import { ChannelRunMeans } from '../src/eval/channel-run-means.js';
import { runModel } from './helpers/run-model.js';
import { floats } from './helpers/tensors.js';

const wide = { min: -40, max: 30 };
const work = mkdtempSync(join(tmpdir(), 'shrink-dead-zones-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** x -> Conv 'c' -> readers built by `read(c)`; the Conv's output spreads far below -3. */
function convThen(read: (b: GraphBuilder, c: string) => string[]): Model {
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4, 8, 8]);
  const [c] = b.node('Conv', [x, b.tensor(floats('W1', [8, 4, 3, 3], 21, -1.5, 1.5)), b.tensor(floats('B1', [8], 22, -1, 1))], [attr.ints('pads', [1, 1, 1, 1])], { name: 'conv1', outputs: ['c'] });
  for (const y of read(b, c)) b.output(y, DataType.FLOAT);
  return buildModel(b.graph, [{ domain: '', version: 14 }]);
}

const finalConv = (b: GraphBuilder, v: string) => b.node('Conv', [v, b.tensor(floats('W2', [4, 8, 1, 1], 23, -0.5, 0.5)), b.tensor(floats('B2', [4], 24, -0.1, 0.1))], [], { name: 'conv2', outputs: ['y'] })[0];

test('each reader leaves out what it cannot tell apart; a reader without a dead zone, or a graph output, keeps the whole range', () => {
  const window = (read: (b: GraphBuilder, c: string) => string[]) => {
    const model = convThen(read);
    return readersWindow(model.graph, 'c') ?? wide;
  };
  assert.deepEqual(window((b, c) => [b.node('HardSwish', [c])]), { min: -3, max: Infinity });
  assert.deepEqual(window((b, c) => [b.node('Relu', [c])]), { min: 0, max: Infinity });
  assert.deepEqual(window((b, c) => [b.node('HardSigmoid', [c], [attr.float('alpha', 0.2), attr.float('beta', 0.5)])]), { min: -2.5, max: 2.5 });
  const clip = (b: GraphBuilder, c: string) => [b.node('Clip', [c, b.tensor(floats('lo', [], 1, -1, -1)), b.tensor(floats('hi', [], 1, 6, 6))])];
  assert.deepEqual(window(clip), { min: -1, max: 6 });
  // x * HardSigmoid(x) in two nodes: only the lower edge is dead (the product is x where the gate is 1).
  assert.deepEqual(
    window((b, c) => {
      const h = b.node('HardSigmoid', [c], [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)]);
      return [b.node('Mul', [c, h])];
    }),
    { min: -3, max: Infinity },
  );
  // The union over readers: a Relu and a HardSwish both read it.
  assert.deepEqual(window((b, c) => [b.node('Relu', [c]), b.node('HardSwish', [c])]), { min: -3, max: Infinity });
  // A reader that sees every value: nothing is left out.
  assert.deepEqual(window((b, c) => [b.node('HardSwish', [c]), b.node('Add', [c, c])]), wide);
  const output = convThen((b, c) => [c, b.node('Relu', [c])]);
  assert.equal(readersWindow(output.graph, 'c'), undefined);
  assert.deepEqual(withoutDeadZones(output.graph, 'c', wide), wide);
  // The range is cut one step (of 254 for 256 codes) beyond each edge it cuts, so that the end code
  // reads back where the reader is flat; a side already inside the window stays.
  const swish = convThen((b, c) => [b.node('HardSwish', [c])]);
  const cut = withoutDeadZones(swish.graph, 'c', wide);
  assert.ok(Math.abs(cut.min - (-3 - 33 / 254)) < 1e-9 && cut.max === 30, JSON.stringify(cut));
  const gate = convThen((b, c) => [b.node('HardSigmoid', [c], [attr.float('alpha', 0.2), attr.float('beta', 0.5)])]);
  const both = withoutDeadZones(gate.graph, 'c', wide);
  assert.ok(Math.abs(both.min - (-2.5 - 5 / 254)) < 1e-9 && Math.abs(both.max - (2.5 + 5 / 254)) < 1e-9, JSON.stringify(both));
  assert.deepEqual(withoutDeadZones(swish.graph, 'c', { min: -1, max: 4 }), { min: -1, max: 4 });
  // A Mul of two different values is not a swish.
  assert.deepEqual(window((b, c) => [b.node('Mul', [c, b.node('Relu', [c])])]), wide);
});

const hardSwishModel = () => convThen((b, c) => [finalConv(b, b.node('HardSwish', [c], [], { outputs: ['h'] })[0])]);
const calibration = tensorSamples(Array.from({ length: 8 }, (_, i) => ({ x: floats('x', [1, 4, 8, 8], 300 + i, -2, 2) })));
const inputs = Array.from({ length: 4 }, (_, i) => floats('x', [1, 4, 8, 8], 900 + i, -2, 2));

async function int8Error(deadZones: boolean): Promise<{ error: number; convRangeMin: number }> {
  const model = hardSwishModel();
  await quantizeStaticInt8(model, { calibration, deadZones, biasCorrection: false }, { ort: nodeOrt });
  const q = model.graph.nodes.find((n) => n.opType === 'QuantizeLinear' && n.inputs[0] === 'c');
  assert.ok(q !== undefined, 'the conv output is quantized');
  const scale = (constantValue(model.graph, q.inputs[1])?.data() as Float32Array)[0];
  const zero = Number(constantValue(model.graph, q.inputs[2])?.data()[0]);
  let error = 0;
  for (const x of inputs) {
    const [want] = await runModel(hardSwishModel(), [x]);
    const [got] = await runModel(model, [x], { threads: 1, graphOptimization: 'all' });
    const a = want.data() as Float32Array;
    const b = got.data() as Float32Array;
    for (let i = 0; i < a.length; i++) error += (a[i] - b[i]) ** 2;
  }
  return { error, convRangeMin: -zero * scale };
}

test('static int8: the Conv before a HardSwish is quantized from just below -3 up, and the int8 model is closer to float than with the whole spread', async () => {
  const withZones = await int8Error(true);
  const whole = await int8Error(false);
  assert.ok(whole.convRangeMin < -6, `the calibrated spread reaches well below -3 (${whole.convRangeMin})`);
  // The lowest code reads back at or below -3, where the HardSwish is exactly 0, and not much further.
  assert.ok(withZones.convRangeMin <= -3 && withZones.convRangeMin >= -3.5, `range starts just below -3 (${withZones.convRangeMin})`);
  assert.ok(withZones.error < whole.error * 0.8, `squared error ${withZones.error} vs ${whole.error}`);
});

test('bias correction as the readers see it: channel means of values clamped to the window', () => {
  const means = new ChannelRunMeans('c', 1, { min: -3, max: Infinity });
  // Two channels of 3 values: [-10, 0, 4] reads as [-3, 0, 4]; [5, 6, 7] as itself.
  means.add(Float32Array.from([-10, 0, 4, 5, 6, 7]), [1, 2, 3]);
  assert.deepEqual([...means.runs[0]], [1 / 3, 6]);
  const whole = new ChannelRunMeans('c', 1);
  whole.add(Float32Array.from([-10, 0, 4, 5, 6, 7]), [1, 2, 3]);
  assert.deepEqual([...whole.runs[0]], [-2, 6]);
});

test('shrink quantize --dead-zones: applies to static-int8 only (one line, exit 2); recipes take dead_zones', () => {
  const wrong = spawnShrink(['quantize', 'models/fashion-mnist/mlp.onnx', '-o', join(work, 'never.onnx'), '--method', 'dynamic-int8', '--dead-zones']);
  assert.equal(wrong.status, 2);
  assert.match(wrong.stderr, /--dead-zones has no effect with --method dynamic-int8 \(it applies to static-int8\)/);
  assert.ok(!existsSync(join(work, 'never.onnx')));
  const step = recipeFromData({ steps: [{ quantize: { method: 'static-int8', dead_zones: true } }] }).steps[0];
  assert.ok(step.kind === 'quantize' && step.options.deadZones === true, JSON.stringify(step));
  assert.throws(() => recipeFromData({ steps: [{ quantize: { method: 'int4', dead_zones: true } }] }), /dead_zones/);
});
