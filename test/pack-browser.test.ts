// The pack decoder in a browser: the PP-OCR classifier is packed here, served over HTTP, fetched
// by a page in headless Chromium that decodes it as it streams in (the decoder alone is bundled:
// no Node import may reach it), hashes the result, opens an onnxruntime-web session on it and
// runs it. The hash must be the original file's, and the outputs onnxruntime-node's on the
// original. A browser that cannot start fails the test (see test/browser.test.ts).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ortNode from 'onnxruntime-node';
import { packOnnx } from '../src/methods/pack/pack.js';
import { type PackPageWindow, type PackProbeResult, probeInput } from './browser/pack-probe.js';
import { openPackPage } from './helpers/pack-page.js';
import { CLS } from './helpers/real-models.js';

const DIMS = [1, 3, 48, 192];

test('Chromium fetches a pack, decodes it streaming, and onnxruntime-web runs the result', { timeout: 120_000 }, async (t) => {
  const onnx = new Uint8Array(await readFile(CLS));
  const { pack } = packOnnx(onnx, { source: CLS });
  const dir = await mkdtemp(join(tmpdir(), 'shrink-pack-browser-'));
  try {
    await writeFile(join(dir, 'cls.shrink'), pack);
    const opened = await openPackPage(dir);
    let result: PackProbeResult;
    try {
      const inputs = Object.keys(opened.metafile.inputs);
      const nodeOnly = inputs.filter((p) => /(^|\/)src\/(node|cli|methods)\/|onnxruntime-node|^node:/.test(p));
      assert.deepEqual(nodeOnly, [], 'the page bundles the decoder only');
      assert.ok(inputs.some((p) => p.endsWith('src/onnx/pack-decode.ts')));
      t.diagnostic(`decoder page bundle: ${(opened.bundleBytes / 1024).toFixed(0)} KiB from ${inputs.length} files`);
      result = JSON.parse(await opened.page.evaluate(([url, dims]) => (window as unknown as PackPageWindow).shrinkPackProbe(url, 'x', dims), [`${opened.packsUrl}cls.shrink`, DIMS] as const));
    } finally {
      await opened.close();
    }
    assert.equal(result.bytes, onnx.length);
    assert.equal(result.sha256, createHash('sha256').update(onnx).digest('hex'), 'decoded in Chromium to the original bytes');

    const session = await ortNode.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
    const native = await session.run({ x: new ortNode.Tensor('float32', probeInput(DIMS.reduce((a, b) => a * b, 1)), DIMS) });
    await session.release();
    for (const [name, tensor] of Object.entries(native)) {
      const web = result.outputs[name];
      assert.ok(web !== undefined, `output '${name}' from the page`);
      assert.deepEqual(web.dims, [...tensor.dims]);
      const expected = tensor.data as Float32Array;
      const diff = Math.max(...web.data.map((v, i) => Math.abs(v - expected[i])));
      assert.ok(diff <= 1e-5, `'${name}': onnxruntime-web on the unpacked model vs onnxruntime-node on the original, max |diff| ${diff}`);
      t.diagnostic(`${name}: web [${web.data.map((v) => v.toFixed(6)).join(', ')}], max |diff| vs node ${diff.toExponential(2)}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
