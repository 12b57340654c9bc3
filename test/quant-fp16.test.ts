// float16/bfloat16: the conversion kernels against slow references (every half pattern, random and
// edge float32 patterns), the pass on tiny models built in code (types, Casts at the boundary,
// out-of-range weights, no Cast round trips), and the six real models converted and run in
// onnxruntime-node (cls and Silero v5 in onnxruntime-web too) with size and fidelity asserted.

import { cosineSimilarity as cosine } from '../src/eval/metrics.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorTypeOf } from '../src/ir/value-info.js';
import { bfloat16ToFloat32, float16ToFloat32, float16ToNumber, float32ToBfloat16, float32ToFloat16, numberToFloat16 } from '../src/kernels/float16.js';
import type { DetailedPassResult } from '../src/methods/quantize/details.js';
import { type Float16Options, float16Pass } from '../src/methods/quantize/fp16.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import type { OrtModule } from '../src/runtime/ort-types.js';
import { fromOrtTensor, ModelSession, toOrtTensor } from '../src/runtime/session.js';
import { REAL_MODELS, type RealModelKey, realModel } from './helpers/real-models.js';

// ---- slow references: plain arithmetic on float64, no bit tricks ----

function refHalfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

/** The nearest half by search over the 31 exponents: ties to the even pattern. */
function refNumberToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let best = 0;
  let bestError = Infinity;
  // Candidates: the two halves around a, found from the step size of a's binade.
  const e = Math.max(-14, Math.floor(Math.log2(a || 1)));
  for (const exp of [e - 1, e, e + 1]) {
    const step = 2 ** (Math.max(exp, -14) - 10);
    for (const k of [Math.floor(a / step), Math.ceil(a / step)]) {
      const v = k * step;
      const bits = numberBitsRef(v);
      if (bits === undefined) continue;
      const error = Math.abs(v - a);
      if (error < bestError || (error === bestError && (bits & 1) === 0)) {
        best = bits;
        bestError = error;
      }
    }
  }
  return sign | best;
}

/** The half pattern of an exactly representable non-negative value, by scanning the exponent. */
function numberBitsRef(v: number): number | undefined {
  if (v === 0) return 0;
  if (v > 65504) return undefined;
  for (let e = 30; e >= 1; e--) {
    const low = 2 ** (e - 15);
    if (v >= low) {
      const f = (v / low - 1) * 1024;
      return Number.isInteger(f) && f < 1024 ? (e << 10) | f : undefined;
    }
  }
  const f = v / 2 ** -24;
  return Number.isInteger(f) ? f : undefined;
}

function randomBits(count: number, seed: number): Uint32Array {
  let s = seed >>> 0;
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    out[i] = (t ^ (t >>> 14)) >>> 0;
  }
  return out;
}

test('float16 -> float32 is exact for all 65,536 patterns', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const fast = float16ToFloat32(all);
  for (let h = 0; h < 65536; h++) {
    const want = refHalfToNumber(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(fast[h]), `0x${h.toString(16)}`);
    else assert.ok(Object.is(fast[h], Math.fround(want)), `0x${h.toString(16)}: ${fast[h]} vs ${want}`);
    if (!Number.isNaN(want)) assert.equal(float16ToNumber(h), want);
  }
});

test('float32 -> float16 rounds to nearest even like the reference (random bits, ties, edges)', () => {
  const values: number[] = [...new Float32Array(randomBits(100_000, 7).buffer)];
  // Every tie between neighbouring halves, subnormal boundaries, the overflow edge.
  for (let h = 0; h < 0x7bff; h += 37) values.push((refHalfToNumber(h) + refHalfToNumber(h + 1)) / 2);
  values.push(65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 2 ** -14, 2 ** -14 - 2 ** -25, 1e-30, -0, 0, Infinity, -Infinity, Number.NaN);
  const input = Float32Array.from(values);
  const { bits } = float32ToFloat16(input);
  for (let i = 0; i < input.length; i++) {
    const want = refNumberToHalf(input[i]);
    if (Number.isNaN(input[i])) assert.equal(bits[i] & 0x7fff, 0x7e00);
    else assert.equal(bits[i], want, `${input[i]}: 0x${bits[i].toString(16)} vs 0x${want.toString(16)}`);
    // The scalar float64 path agrees on float32 inputs.
    if (!Number.isNaN(input[i])) assert.equal(numberToFloat16(input[i]), want);
  }
});

test('narrowing counts overflow and underflow, and clamps on request', () => {
  const input = Float32Array.from([1e6, -7e4, 65504, 1e-9, 0, Infinity]);
  const open = float32ToFloat16(input);
  assert.deepEqual(open.stats, { overflow: 2, underflow: 1 });
  assert.deepEqual([...open.bits], [0x7c00, 0xfc00, 0x7bff, 0, 0, 0x7c00]);
  const clamped = float32ToFloat16(input, { clamp: true });
  assert.deepEqual([...clamped.bits.slice(0, 2)], [0x7bff, 0xfbff]);
  const bf = float32ToBfloat16(Float32Array.from([3.4028234663852886e38, 1, 1.00390625, 1.01171875, 1e-45]), { clamp: true });
  assert.deepEqual([...bf.bits], [0x7f7f, 0x3f80, 0x3f80, 0x3f82, 0]);
  assert.deepEqual(bf.stats, { overflow: 1, underflow: 1 });
});

test('bfloat16 round trip: the top half of float32, ties to even', () => {
  const input = new Float32Array(randomBits(50_000, 3).buffer);
  const { bits } = float32ToBfloat16(input);
  const back = bfloat16ToFloat32(bits);
  for (let i = 0; i < input.length; i++) {
    if (Number.isNaN(input[i])) {
      assert.ok(Number.isNaN(back[i]));
      continue;
    }
    // The reference: the nearer of the two truncations, the even one on a tie.
    const raw = new Uint32Array(new Float32Array([input[i]]).buffer)[0];
    const down = raw >>> 16;
    const rest = raw & 0xffff;
    const want = rest > 0x8000 || (rest === 0x8000 && (down & 1) === 1) ? down + 1 : down;
    assert.equal(bits[i], want & 0xffff, `${input[i]}`);
  }
});

// ---- the pass on tiny models ----

function tinyModel(weightScale = 1): Model {
  const b = new GraphBuilder();
  b.input('x', DataType.FLOAT, [2, 8]);
  b.initializer(
    'W',
    DataType.FLOAT,
    [8, 4],
    Float32Array.from({ length: 32 }, (_, i) => ((i % 7) - 3) * 0.1 * weightScale),
  );
  const y = b.node('MatMul', ['x', 'W']);
  const c = b.constant(Tensor.fromArray('bias', DataType.FLOAT, [4], Float32Array.from([0.5, -0.25, 0.125, 1])));
  const z = b.node('Add', [y, c]);
  const s = b.node('Shape', [z]);
  const r = b.node('Reshape', [z, s]);
  b.node('Relu', [r], [], { outputs: ['out'] });
  b.output('out', DataType.FLOAT, [2, 4]);
  return buildModel(b.graph, [{ domain: '', version: 17 }]);
}

const xFeed = Tensor.fromArray(
  'x',
  DataType.FLOAT,
  [2, 8],
  Float32Array.from({ length: 16 }, (_, i) => Math.sin(i)),
);

async function runModel(ort: OrtModule, model: Model | Uint8Array, feeds: Tensor[]): Promise<Record<string, Tensor>> {
  const session = await ModelSession.create(ort, model, {
    threads: 1,
    ...(ort === nodeOrt ? {} : { executionProviders: ['wasm'] }),
  });
  try {
    const out = await session.run(Object.fromEntries(feeds.map((t) => [t.name, toOrtTensor(ort, t)])));
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrtTensor(v, k)]));
  } finally {
    await session.release();
  }
}

function convert(model: Model, options: Float16Options = {}): DetailedPassResult {
  return float16Pass.run(model, options, {}) as DetailedPassResult;
}

test('compute all: MatMul, Add and Relu in float16, Casts only at the boundary', async () => {
  const model = tinyModel();
  const result = convert(model, { compute: 'all' });
  const ops = model.graph.nodes.map((n) => n.opType);
  assert.deepEqual(ops.filter((o) => o === 'Cast').length, 2, ops.join(','));
  assert.equal(
    model.graph.nodes.find((n) => n.opType === 'Constant'),
    undefined,
    'the Constant weight became an initializer',
  );
  assert.deepEqual(
    model.graph.initializers.map((t) => [t.name, t.dataType]),
    [
      ['W', DataType.FLOAT16],
      ['bias', DataType.FLOAT16],
    ],
  );
  assert.equal(tensorTypeOf(model.graph.inputs[0])?.elemType, DataType.FLOAT);
  assert.equal(tensorTypeOf(model.graph.outputs[0])?.elemType, DataType.FLOAT);
  assert.equal(result.stats.nodesConverted, 5);
  const want = (await runModel(nodeOrt, tinyModel(), [xFeed])).out.data() as Float32Array;
  const got = (await runModel(nodeOrt, model, [xFeed])).out.data() as Float32Array;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 2e-3, `${got[i]} vs ${want[i]}`);
});

test('keepIoTypes false gives float16 inputs and outputs; ort-cpu keeps compute in float32', async () => {
  const half = tinyModel();
  convert(half, { compute: 'all', keepIoTypes: false });
  assert.equal(tensorTypeOf(half.graph.inputs[0])?.elemType, DataType.FLOAT16);
  assert.equal(tensorTypeOf(half.graph.outputs[0])?.elemType, DataType.FLOAT16);
  assert.equal(half.graph.nodes.filter((n) => n.opType === 'Cast').length, 0);
  const x16 = Tensor.fromArray('x', DataType.FLOAT16, [2, 8], float32ToFloat16(xFeed.data() as Float32Array).bits);
  assert.equal((await runModel(nodeOrt, half, [x16])).out.dataType, DataType.FLOAT16);

  const cpu = tinyModel();
  const result = convert(cpu);
  // Weights are float16 (W has 32 elements; the 4-element bias stays float32), compute is float32.
  assert.deepEqual(
    cpu.graph.initializers.map((t) => t.dataType),
    [DataType.FLOAT16],
  );
  assert.equal(result.stats.nodesConverted, 0);
  const reasons = new Set(result.details?.nodes.map((n) => n.reason));
  assert.ok(reasons.has('no float16 kernel in onnxruntime CPU for MatMul-17'), [...reasons].join('; '));
});

test('a weight beyond the float16 range keeps its node in float32 unless forced, then it is clamped and counted', () => {
  const model = tinyModel(1e6);
  const result = convert(model, { compute: 'all' });
  const matmul = result.details?.nodes.find((n) => n.op === 'MatMul');
  assert.equal(matmul?.reason, "weight 'W' has values beyond the float16 range");
  assert.equal(model.graph.initializer('W')?.dataType, DataType.FLOAT);
  assert.match(result.details?.tensors.find((t) => t.name === 'W')?.note ?? '', /kept float32: 27 values beyond/);

  const forced = tinyModel(1e6);
  const r2 = convert(forced, { compute: 'all', force: ['MatMul'] });
  assert.equal(r2.stats.valuesClamped, 27);
  assert.equal(r2.warnings[0].code, 'out-of-range');
  const w = forced.graph.initializer('W')?.data() as Uint16Array;
  assert.ok(
    [...w].every((h) => (h & 0x7fff) !== 0x7c00),
    'clamped, not infinite',
  );
});

test('exclude keeps a node and the weights only it reads in float32', () => {
  const model = tinyModel();
  const result = convert(model, { compute: 'all', exclude: ['^MatMul'] });
  assert.equal(model.graph.initializer('W')?.dataType, DataType.FLOAT);
  assert.equal(result.details?.nodes.find((n) => n.op === 'MatMul')?.reason, "excluded by '^MatMul'");
});

test('Cast round trips are removed: float16 -> float32 -> float16 reads the float16 value', () => {
  const b = new GraphBuilder();
  b.input('x', DataType.FLOAT16, [4]);
  const up = b.node('Cast', ['x'], [attr.int('to', DataType.FLOAT)]);
  const down = b.node('Cast', [up], [attr.int('to', DataType.FLOAT16)]);
  b.node('Neg', [down], [], { outputs: ['y'] });
  b.output('y', DataType.FLOAT16, [4]);
  const model = buildModel(b.graph);
  const result = convert(model, { compute: 'all' });
  assert.deepEqual(
    model.graph.nodes.map((n) => n.opType),
    ['Neg'],
  );
  assert.equal(result.stats.castsRemoved, 2);
});

// ---- the real models ----


/** Greedy CTC over [1, T, C]: the arg-max class per step. */
function argmaxSequence(t: Tensor): number[] {
  const [, steps, classes] = t.dims;
  const d = t.data() as Float32Array;
  return Array.from({ length: steps }, (_, s) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (d[s * classes + c] > d[s * classes + best]) best = c;
    return best;
  });
}

const COSINE_FLOOR: Record<RealModelKey, number> = {
  rec: 0.999,
  det: 0.999,
  cls: 0.999,
  vadV5: 0.999,
  vadV6: 0.999,
  vadLegacy: 0.999,
};
let web: OrtModule | undefined;

for (const real of REAL_MODELS) {
  test(`${real.name}: float16 at about half the size, fidelity against float32`, {
    timeout: 60_000,
  }, async () => {
    const original = new Uint8Array(readFileSync(real.file));
    const model = loadModel(real.file);
    const result = convert(model);
    const bytes = writeModel(model);
    const ratio = bytes.length / original.length;
    assert.ok(ratio < 0.55, `${real.name}: size ratio ${ratio.toFixed(4)}`);
    assert.ok(result.stats.tensorsConverted > 0);
    noCastRoundTrips(model);

    const want = await runModel(nodeOrt, original, real.feeds());
    const got = await runModel(nodeOrt, bytes, real.feeds());
    const cosines: string[] = [];
    for (const [name, w] of Object.entries(want)) {
      const c = cosine(w.data() as Float32Array, got[name].data() as Float32Array);
      cosines.push(`${name} ${c.toFixed(7)}`);
      assert.ok(c > COSINE_FLOOR[real.key], `${real.name} ${name}: cosine ${c}`);
    }
    if (real.key === 'rec') {
      const name = Object.keys(want)[0];
      assert.deepEqual(argmaxSequence(got[name]), argmaxSequence(want[name]), 'greedy CTC sequence');
    }
    if (real.key === 'cls' || real.key === 'vadV5') {
      web ??= await loadWebOrt();
      const fromWeb = await runModel(web, bytes, real.feeds());
      for (const [name, w] of Object.entries(want)) assert.ok(cosine(w.data() as Float32Array, fromWeb[name].data() as Float32Array) > COSINE_FLOOR[real.key]);
    }
    console.log(
      `# ${real.name}: ${original.length} -> ${bytes.length} bytes (${ratio.toFixed(4)}x), ${result.stats.tensorsConverted} weights, ${result.stats.nodesConverted} nodes in float16; cosine ${cosines.join(', ')}`,
    );
  });
}

function noCastRoundTrips(model: Model): void {
  for (const { node, graph } of model.graph.allNodes()) {
    if (node.opType !== 'Cast') continue;
    const producer = graph.producer(node.inputs[0]);
    if (producer?.opType !== 'Cast') continue;
    const source = graph.producer(producer.inputs[0]);
    assert.ok(!(source?.opType === 'Cast' && source.attrInt('to') === node.attrInt('to')), `Cast chain at '${node.label}'`);
  }
}

test('compute all runs in onnxruntime-node and -web (cls, Silero v5); bf16 is weights-only and says when it does not apply', {
  timeout: 60_000,
}, async () => {
  web ??= await loadWebOrt();
  for (const key of ['cls', 'vadV5'] as const) {
    const real = realModel(key);
    const original = new Uint8Array(readFileSync(real.file));
    const model = loadModel(real.file);
    const result = convert(model, { compute: 'all' });
    assert.ok(result.stats.nodesConverted > 100, `${key}: ${result.stats.nodesConverted} nodes in float16`);
    const bytes = writeModel(model);
    const want = await runModel(nodeOrt, original, real.feeds());
    for (const ort of [nodeOrt, web]) {
      const got = await runModel(ort, bytes, real.feeds());
      for (const [name, w] of Object.entries(want)) assert.ok(cosine(w.data() as Float32Array, got[name].data() as Float32Array) > 0.999, `${key} ${name}`);
    }
  }
  const v5 = realModel('vadV5');
  const model = loadModel(v5.file);
  convert(model, { format: 'bfloat16' });
  const bytes = writeModel(model);
  assert.ok(bytes.length / readFileSync(v5.file).length < 0.55);
  const want = await runModel(nodeOrt, new Uint8Array(readFileSync(v5.file)), v5.feeds());
  for (const ort of [nodeOrt, web]) {
    const got = await runModel(ort, bytes, v5.feeds());
    assert.ok(cosine(want.output.data() as Float32Array, got.output.data() as Float32Array) > 0.999);
  }
  // cls imports opset 9: it is upgraded to 13 (Cast reads bfloat16 from there) and then converted.
  const cls = loadModel(realModel('cls').file);
  const report = convert(cls, { format: 'bfloat16' });
  assert.equal(cls.opset(''), 13);
  assert.ok(report.warnings.some((w) => w.code === 'opset-upgraded' || w.code === 'opset-raised'), JSON.stringify(report.warnings.map((w) => w.code)));
  // A model the upgrade cannot take (Scatter, removed at opset 11) is refused with one line.
  const b = new GraphBuilder();
  const x = b.input('x', DataType.FLOAT, [1, 4]);
  const w = b.initializer('w', DataType.FLOAT, [4, 4], new Float32Array(16).fill(0.5));
  const y = b.node('MatMul', [x, w]);
  b.node('Scatter', [y, b.initializer('idx', DataType.INT64, [1, 2], BigInt64Array.of(0n, 1n)), b.initializer('upd', DataType.FLOAT, [1, 2], Float32Array.of(1, 2))], [], { name: 'old_scatter', outputs: ['z'] });
  b.output('z', DataType.FLOAT, [1, 4]);
  const old = buildModel(b.graph, [{ domain: '', version: 9 }], 4);
  assert.throws(() => convert(old, { format: 'bfloat16' }), /^Error: bfloat16 does not apply to this model: it imports ai.onnx opset 9, Cast reads bfloat16 only from opset 13, and the model cannot be upgraded \(.*Scatter node 'old_scatter'/);
});
