// The teacher's values kept as float16 when float32 would exceed the memory limit (PP-OCRv4 rec:
// its logits over 1,200 lines are 1.2 GiB in float32): each batch reads them back widened, within
// float16's rounding of the teacher's float32 values; over the limit even in float16 is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { mulberry32 } from '../src/kernels/random.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { arrayTrainingData } from '../src/train/array-data.js';
import { teacherValue } from '../src/pipeline/recovery.js';
import { precomputedField, precomputeTeacher } from '../src/train/distill-teacher.js';

const [F, P] = [6, 10];

/** x [N, 6] -> MatMul [6, 10] = y. */
function linear(): Model {
  const next = mulberry32(3);
  const b = new GraphBuilder(new Graph('linear'));
  b.input('x', DataType.FLOAT, ['N', F]);
  const w = b.initializer('w', DataType.FLOAT, [F, P], Float32Array.from({ length: F * P }, () => (next() * 2 - 1) * 20));
  b.node('MatMul', ['x', w], [], { outputs: ['y'] });
  b.output('y');
  return buildModel(b.graph, [{ domain: '', version: 17 }], 8);
}

test('precomputeTeacher keeps a value over the limit as float16 and widens it per batch; over the limit at half the bytes it refuses', async () => {
  const count = 40;
  const next = mulberry32(5);
  const inputs = { x: { data: Float32Array.from({ length: count * F }, () => next() * 2 - 1), sampleDims: [F], dataType: DataType.FLOAT } };
  const float32Bytes = count * P * 4;
  const exact = (await precomputeTeacher(nodeOrt, linear(), inputs, ['y'], { batch: 16 })).get('y');
  assert.ok(exact?.data instanceof Float32Array, 'under the limit: float32');
  const half = (await precomputeTeacher(nodeOrt, linear(), inputs, ['y'], { batch: 16, maxBytes: float32Bytes - 1 })).get('y');
  assert.ok(half?.data instanceof Uint16Array, 'over the limit in float32: float16');
  assert.deepEqual(half.sampleDims, [P]);
  const indices = [39, 0, 17];
  const widened = arrayTrainingData({ t: precomputedField(half, DataType.FLOAT) }).batch(indices).t;
  assert.deepEqual(widened.dims, [3, P]);
  const got = widened.data() as Float32Array;
  let largest = 0;
  indices.forEach((sample, row) => {
    for (let k = 0; k < P; k++) {
      const want = exact.data[sample * P + k];
      largest = Math.max(largest, Math.abs(want));
      // float16 keeps 11 significant bits: a relative error of at most 2^-11.
      assert.ok(Math.abs(got[row * P + k] - want) <= Math.abs(want) * 2 ** -11 + 1e-7, `sample ${sample} element ${k}: ${got[row * P + k]} vs ${want}`);
    }
  });
  assert.ok(largest > 1, 'the values span more than float16 rounding near 0');
  await assert.rejects(precomputeTeacher(nodeOrt, linear(), inputs, ['y'], { maxBytes: float32Bytes / 2 - 1 }), /teacher value 'y' \(\[10\] per sample\) over 40 samples needs 1.56 KiB \(800 B in float16\), over the 799 B limit/);
});

test("recovery's teacher takes its limit from the context's teacherMemory", async () => {
  const count = 40;
  const next = mulberry32(7);
  const data = Float32Array.from({ length: count * F }, () => next() * 2 - 1);
  const inputsOf = () => ({ x: { data, sampleDims: [F], dataType: DataType.FLOAT } });
  const float32Bytes = count * P * 4;
  const teacher = linear();
  const plain = await teacherValue(teacher, inputsOf(), 'y', { ort: nodeOrt });
  assert.ok(plain?.data instanceof Float32Array, 'the default limit (1 GiB) holds it in float32');
  const half = await teacherValue(teacher, inputsOf(), 'y', { ort: nodeOrt, teacherMemory: float32Bytes - 1 });
  assert.ok(half?.data instanceof Uint16Array, 'a context limit below its float32 bytes: float16');
  await assert.rejects(teacherValue(teacher, inputsOf(), 'y', { ort: nodeOrt, teacherMemory: float32Bytes / 2 - 1 }), /teacher value 'y' \(\[10\] per sample\) over 40 samples needs 1.56 KiB \(800 B in float16\), over the 799 B limit/);
});
