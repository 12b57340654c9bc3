// The text-mask IoU metric (src/eval/ocr-det.ts, the module src/eval/text-mask-metric.ts that
// `shrink eval/auto --metric` load) and the detector input it is measured on.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { writeNpy } from '../src/eval/npy.js';
import { DB_THRESHOLD, detInputFromPixels, textMaskIou } from '../src/eval/ocr-det.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadCustomMetric } from '../src/node/custom-metric.js';
import { loadModel, saveModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { spawnShrink } from './helpers/cli.js';
import { cropImage, detInput, loadOcrFixtures } from './helpers/ocr-lines.js';
import { DET } from './helpers/real-models.js';

const map = (values: number[]) => Tensor.fromArray('p', DataType.FLOAT, [1, 1, 1, values.length], Float32Array.from(values));

test('text-mask IoU: |A and B| / |A or B| of the maps above 0.3; 1 for two empty masks; shapes must match', () => {
  assert.equal(DB_THRESHOLD, 0.3);
  // A = {0, 1, 3}, B = {0, 2}: intersection 1, union 4. 0.3 itself is not text.
  assert.equal(textMaskIou([0.9, 0.8, 0.1, 0.31], [0.5, 0.25, 0.7, 0.2]), 1 / 4);
  assert.equal(textMaskIou([0.9, 0.4], [0.9, 0.4]), 1);
  assert.equal(textMaskIou([0.1, 0.2], [0.29, 0]), 1);
  assert.equal(textMaskIou([0.9, 0.9], [0.1, 0.1]), 0);
  assert.equal(textMaskIou([0.5, 0.2], [0.5, 0.2], 0.4), 1 / 1);
  assert.throws(() => textMaskIou([0.5], [0.5, 0.5]), /maps of 1 and 2 values/);
});

test('detector input: BGR bytes normalized per channel with ImageNet mean/std in BGR order, [1, 3, H, W]', () => {
  // One 1x2 image: pixel 0 = (255, 0, 128), pixel 1 = (0, 255, 255).
  const x = detInputFromPixels(Uint8Array.of(255, 0, 128, 0, 255, 255), 1, 2);
  assert.deepEqual(x.dims, [1, 3, 1, 2]);
  const v = x.data() as Float32Array;
  const expected = [(1 - 0.485) / 0.229, (0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225, (1 - 0.406) / 0.225];
  expected.forEach((e, i) => assert.ok(Math.abs(v[i] - e) < 1e-6, `${i}: ${v[i]} vs ${e}`));
  assert.throws(() => detInputFromPixels(new Uint8Array(5), 1, 2), /5 bytes for a 1x2 BGR image/);
});

test('the metric module loads as `--metric` loads it and averages IoU over outputs', async () => {
  const loaded = await loadCustomMetric('src/eval/text-mask-metric.ts');
  assert.equal(loaded.name, 'text-mask IoU');
  const sample = { index: 0, where: 'test', inputs: {} };
  assert.equal(loaded.metric({ p: map([0.9, 0.8, 0.1, 0.31]) }, { p: map([0.5, 0.25, 0.7, 0.2]) }, sample), 0.25);
  assert.equal(loaded.metric({ p: map([0.9, 0.1]), q: map([0.9, 0.9]) }, { p: map([0.9, 0.1]), q: map([0.9, 0.1]) }, sample), (1 + 0.5) / 2);
  assert.throws(() => loaded.metric({ p: map([0.9]) }, { other: map([0.9]) }, sample), /no output 'p'/);
});

test('shrink eval --metric src/eval/text-mask-metric.ts on PP-OCRv4 det: the IoU of a detector whose map is scaled by 0.8', { timeout: 60_000 }, async () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-iou-'));
  try {
    const { page } = await loadOcrFixtures();
    const x = cropImage(detInput(page), 0, 0, 320, 320);
    const data = path.join(temp, 'page.npy');
    fs.writeFileSync(data, writeNpy({ dataType: DataType.FLOAT, dims: [...x.dims], data: x.bytes() }));
    // The candidate: the detector's probability map times 0.8, so its text mask is the original's map above 0.375.
    const model = loadModel(DET);
    const output = model.graph.outputs[0].name;
    const last = model.graph.producer(output);
    assert.ok(last !== undefined);
    last.outputs[0] = 'p_unscaled';
    model.graph.addInitializer(Tensor.fromArray('scale_0_8', DataType.FLOAT, [], Float32Array.of(0.8)));
    model.graph.addNode({ opType: 'Mul', inputs: ['p_unscaled', 'scale_0_8'], outputs: [output], name: 'scale_map' });
    model.graph.changed();
    const candidate = path.join(temp, 'det-scaled.onnx');
    saveModel(model, candidate);

    const session = await ModelSession.create(nodeOrt, DET, { threads: 1 });
    const p = (await session.run({ x: new nodeOrt.Tensor('float32', x.data() as Float32Array, [...x.dims]) }))[output].data as Float32Array;
    await session.release();
    const text = p.filter((v) => v > 0.3).length;
    const kept = p.filter((v) => v > 0.375).length;
    assert.ok(text > 500 && kept < text, `${text} text pixels, ${kept} above 0.375`);

    const run = spawnShrink(['eval', DET, candidate, '--data', data, '--metric', 'src/eval/text-mask-metric.ts', '--threads', '1', '--json']);
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.ok(Math.abs(report.custom.mean - kept / text) < 1e-3, `${report.custom.mean} vs ${kept / text}`);
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
});
