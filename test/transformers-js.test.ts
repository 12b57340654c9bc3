// The transformers.js target end to end, on a model folder trained for it (models/spam-bert: a
// 2-layer BERT spam classifier with its own WordPiece tokenizer). `shrink quantize FOLDER -o OUT
// --target transformers.js --dtype ...` writes every dtype; each one is then loaded the way an
// application loads it, through @huggingface/transformers (pinned) with local files only, in Node
// (onnxruntime-node) and in Chromium (the onnxruntime-web webgpu bundle transformers.js ships,
// wasm backend), and its logits on held-out e-mails are compared with fp32's. In Chromium every
// file the page requests is recorded: the names must be the ones shrink wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './helpers/chromium.js';
import { cosine } from './helpers/compare.js';
import { spawnShrink } from './helpers/cli.js';
import { SPAM_BERT_DIR, heldOutEmails } from './helpers/spam-emails.js';
import { startStaticServer } from './helpers/static-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TJS_DIST = join(ROOT, 'node_modules/@huggingface/transformers/dist');
// The onnxruntime-web build transformers.js depends on (its own version, not the project's).
const TJS_ORT_DIST = join(ROOT, 'node_modules/@huggingface/transformers/node_modules/onnxruntime-web/dist');
const DTYPES = ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'q2', 'q2f16', 'bnb4'] as const;
/** The bar: these must stay this close to fp32 on held-out e-mails. */
const MUST_MATCH = ['fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'];
const MIN_COSINE = 0.99;
const SUFFIX: Record<string, string> = { fp32: '', fp16: '_fp16', q8: '_quantized', int8: '_int8', uint8: '_uint8', q4: '_q4', q4f16: '_q4f16', q2: '_q2', q2f16: '_q2f16', bnb4: '_bnb4' };
const EMAILS = 32;

type Tjs = typeof import('@huggingface/transformers');

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i += 2) if (a[i] > a[i + 1] === b[i] > b[i + 1]) same++;
  return same / (a.length / 2);
}

test('--target transformers.js: every dtype of a BERT folder loads in transformers.js (Node and Chromium) under the names it requests, close to fp32', { timeout: 180_000 }, async () => {
  const started = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'shrink-tjs-'));
  try {
    const tjs: Tjs = await import('@huggingface/transformers');
    tjs.env.allowRemoteModels = false;
    tjs.env.allowLocalModels = true;
    const emails = heldOutEmails(EMAILS);

    // Real inputs for shrink's own check: the e-mails tokenized by transformers.js itself.
    tjs.env.localModelPath = join(ROOT, 'models');
    const tokenizer = await tjs.AutoTokenizer.from_pretrained('spam-bert');
    const samples = emails.texts.map((text) => {
      const encoded = tokenizer(text, { truncation: true }) as Record<string, { dims: number[]; data: BigInt64Array }>;
      return Object.fromEntries(['input_ids', 'attention_mask', 'token_type_ids'].map((name) => [name, { dims: encoded[name].dims, data: [...encoded[name].data].map(String) }]));
    });
    const data = join(work, 'emails.json');
    writeFileSync(data, JSON.stringify(samples));

    const out = join(work, 'spam-bert');
    const run = spawnShrink(['quantize', SPAM_BERT_DIR, '-o', `${out}/`, '--target', 'transformers.js', '--dtype', DTYPES.join(','), '--data', data, '--json'], { timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { outputs: { dtype: string; file: string; data_file: string | null; report: { fidelity?: { outputs: Record<string, { cosine: number }> } } }[]; config: string | null; copied: string[] };
    const written = report.outputs.map((o) => o.file.slice(out.length + 1)).sort();
    const expected = DTYPES.map((d) => `onnx/model${SUFFIX[d]}.onnx`).sort();
    assert.deepEqual(written, expected);
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(out, file)), `${file} is in the new folder`);
    const shrinkCosine = Object.fromEntries(report.outputs.map((o) => [o.dtype, o.report.fidelity?.outputs.logits.cosine]));
    const ops = (dtype: string) => readFileSync(join(out, 'onnx', `model${SUFFIX[dtype]}.onnx`)).toString('latin1');
    assert.ok(!ops('q4').includes('GatherBlockQuantized'), 'no GatherBlockQuantized (the webgpu bundle has no wasm kernel for it)');
    assert.ok(ops('q4').includes('MatMulNBits') && ops('q4f16').includes('MatMulNBits'), 'q4 and q4f16 use MatMulNBits');
    // What the target avoids: --method int4 puts the embedding in GatherBlockQuantized.
    const plain = join(work, 'plain-int4');
    mkdirSync(join(plain, 'onnx'), { recursive: true });
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(out, file), join(plain, file));
    const int4 = spawnShrink(['quantize', join(SPAM_BERT_DIR, 'onnx/model.onnx'), '-o', join(plain, 'onnx/model_q4.onnx'), '--method', 'int4', '--samples', '0']);
    assert.equal(int4.status, 0, int4.stderr);
    assert.ok(readFileSync(join(plain, 'onnx/model_q4.onnx')).toString('latin1').includes('GatherBlockQuantized'));
    // External data: q4 again into another folder, weights in model_q4.onnx_data, recorded in config.json.
    const ext = join(work, 'spam-bert-ext');
    const external = spawnShrink(['quantize', SPAM_BERT_DIR, '-o', `${ext}/`, '--target', 'transformers.js', '--dtype', 'q4', '--external-data', '--samples', '0']);
    assert.equal(external.status, 0, external.stderr);
    assert.ok(existsSync(join(ext, 'onnx/model_q4.onnx_data')));
    assert.deepEqual(JSON.parse(readFileSync(join(ext, 'config.json'), 'utf8'))['transformers.js_config'], { use_external_data_format: { 'model_q4.onnx': 1 } });
    const quantizeSeconds = (Date.now() - started) / 1000;

    // Node: transformers.js with onnxruntime-node, local files only.
    tjs.env.localModelPath = work;
    const nodeLogits: Record<string, Float32Array> = {};
    const batch = tokenizer(emails.texts, { padding: true, truncation: true });
    for (const dtype of DTYPES) {
      const model = await tjs.AutoModelForSequenceClassification.from_pretrained('spam-bert', { dtype, local_files_only: true });
      const { logits } = (await model(batch)) as { logits: { data: Float32Array; dims: number[] } };
      assert.deepEqual(logits.dims, [EMAILS, 2]);
      nodeLogits[dtype] = Float32Array.from(logits.data);
      await model.dispose();
    }
    const extModel = await tjs.AutoModelForSequenceClassification.from_pretrained('spam-bert-ext', { dtype: 'q4', local_files_only: true });
    const nodeExternal = Float32Array.from(((await extModel(batch)) as { logits: { data: Float32Array } }).logits.data);
    await extModel.dispose();
    assert.deepEqual(nodeExternal, nodeLogits.q4, 'q4 with external data computes what q4 inline does');
    const nodeSeconds = (Date.now() - started) / 1000 - quantizeSeconds;

    // Chromium: transformers.js's browser bundle and the onnxruntime-web wasm files it asks for.
    const page = join(work, 'page');
    mkdirSync(page);
    writeFileSync(join(page, 'index.html'), PAGE);
    const server = await startStaticServer({ '/app/': page, '/tjs/': TJS_DIST, '/ort/': TJS_ORT_DIST, '/models/': work });
    const browser = await launchChromium();
    const requested: string[] = [];
    const requestedExternal: string[] = [];
    const pageLog: string[] = [];
    let browserLogits: Record<string, number[]>;
    let plainInt4: string;
    let webExternal: number[] | string;
    try {
      const tab = await browser.newPage();
      tab.on('console', (message) => pageLog.push(`console.${message.type()}: ${message.text()}`));
      tab.on('pageerror', (error) => pageLog.push(`page error: ${error.message}`));
      tab.on('request', (request) => {
        const path = new URL(request.url()).pathname;
        if (path.startsWith('/models/spam-bert/')) requested.push(path.slice('/models/spam-bert/'.length));
        if (path.startsWith('/models/spam-bert-ext/')) requestedExternal.push(path.slice('/models/spam-bert-ext/'.length));
      });
      await tab.goto(`${server.url}/app/index.html`);
      await tab.waitForFunction(() => document.body?.dataset.ready === 'true', undefined, { timeout: 20_000 });
      const result = await tab.evaluate(`window.runAll(${JSON.stringify(emails.texts)}, ${JSON.stringify(DTYPES)})`);
      browserLogits = result as Record<string, number[]>;
      webExternal = (await tab.evaluate(`window.tryLoad('spam-bert-ext', 'q4', ${JSON.stringify(emails.texts)})`)) as number[] | string;
      // Last: after a failed session transformers.js refuses every later one in the page (its init chain stays rejected).
      plainInt4 = (await tab.evaluate(`window.tryLoad('plain-int4', 'q4')`)) as string;
    } catch (error) {
      throw new Error(`${(error as Error).message}\npage log:\n${pageLog.join('\n')}\nnot found: ${server.misses.join(', ')}`);
    } finally {
      await browser.close();
      await server.close();
    }
    const browserSeconds = (Date.now() - started) / 1000 - quantizeSeconds - nodeSeconds;

    // The files the page asked for are the ones shrink wrote, and nothing else was missing.
    const onnxRequested = [...new Set(requested.filter((r) => r.endsWith('.onnx') || r.includes('.onnx_data')))].sort();
    assert.deepEqual(onnxRequested, expected, `requested: ${requested.join(', ')}`);
    assert.match(plainInt4, /GatherBlockQuantized/, 'the --method int4 file (GatherBlockQuantized) does not load in the bundle transformers.js uses');
    assert.deepEqual([...new Set(requestedExternal.filter((r) => r.startsWith('onnx/')))].sort(), ['onnx/model_q4.onnx', 'onnx/model_q4.onnx_data']);
    assert.ok(Array.isArray(webExternal), `q4 with external data in Chromium: ${webExternal}`);
    assert.ok(cosine(webExternal, nodeLogits.q4) > 0.999999, 'q4 with external data in Chromium computes what q4 does');
    assert.deepEqual(server.misses.filter((m) => m !== '/favicon.ico'), []);

    const rows: string[] = [];
    for (const dtype of DTYPES) {
      const node = cosine(nodeLogits[dtype], nodeLogits.fp32);
      const web = cosine(browserLogits[dtype], nodeLogits.fp32);
      rows.push(
        `${dtype.padEnd(6)} shrink ${Number(shrinkCosine[dtype] ?? 1).toFixed(7)}  node ${node.toFixed(7)}  chromium ${web.toFixed(7)}  ` +
          `max |logit - fp32| node ${maxAbs(nodeLogits[dtype], nodeLogits.fp32).toFixed(4)} chromium ${maxAbs(browserLogits[dtype], nodeLogits.fp32).toFixed(4)}  ` +
          `top-1 node ${agreement(nodeLogits[dtype], nodeLogits.fp32).toFixed(3)} chromium ${agreement(browserLogits[dtype], nodeLogits.fp32).toFixed(3)}`,
      );
      if (MUST_MATCH.includes(dtype)) {
        assert.ok(node >= MIN_COSINE, `${dtype} in Node: cosine ${node} < ${MIN_COSINE}`);
        assert.ok(web >= MIN_COSINE, `${dtype} in Chromium: cosine ${web} < ${MIN_COSINE}`);
      }
    }
    const accuracy = emails.labels.filter((label, i) => (nodeLogits.fp32[2 * i + 1] > nodeLogits.fp32[2 * i] ? 1 : 0) === label).length / EMAILS;
    console.log(
      `cosine against fp32 on ${EMAILS} held-out e-mails (fp32 accuracy ${(accuracy * 100).toFixed(1)}%):\n${rows.join('\n')}\n` +
        `requested in Chromium: ${[...new Set(requested)].join(', ')}\n` +
        `requested in Chromium for q4 with --external-data: ${[...new Set(requestedExternal)].join(', ')}\n` +
        `--method int4 (GatherBlockQuantized) in Chromium: ${plainInt4.split('\n')[0].slice(0, 200)}\n` +
        `seconds: quantize ${quantizeSeconds.toFixed(1)}, node ${nodeSeconds.toFixed(1)}, chromium ${browserSeconds.toFixed(1)}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** The page: transformers.js from its browser bundle, local models only, wasm on one thread. */
const PAGE = `<!doctype html>
<html>
  <head><meta charset="utf-8" /><title>shrink transformers.js test</title></head>
  <body>
    <script type="module">
      import * as tjs from '/tjs/transformers.js';
      tjs.env.allowRemoteModels = false;
      tjs.env.allowLocalModels = true;
      tjs.env.localModelPath = '/models/';
      tjs.env.useBrowserCache = false;
      tjs.env.useWasmCache = false;
      tjs.env.backends.onnx.wasm.wasmPaths = { mjs: '/ort/ort-wasm-simd-threaded.asyncify.mjs', wasm: '/ort/ort-wasm-simd-threaded.asyncify.wasm' };
      tjs.env.backends.onnx.wasm.numThreads = 1;
      window.runAll = async (texts, dtypes) => {
        const tokenizer = await tjs.AutoTokenizer.from_pretrained('spam-bert');
        const inputs = tokenizer(texts, { padding: true, truncation: true });
        const logits = {};
        for (const dtype of dtypes) {
          const model = await tjs.AutoModelForSequenceClassification.from_pretrained('spam-bert', { dtype, device: 'wasm' });
          const output = await model(inputs);
          logits[dtype] = Array.from(output.logits.data);
          await model.dispose();
        }
        return logits;
      };
      window.tryLoad = async (name, dtype, texts) => {
        try {
          const model = await tjs.AutoModelForSequenceClassification.from_pretrained(name, { dtype, device: 'wasm' });
          let result = 'loaded';
          if (texts !== undefined) {
            const tokenizer = await tjs.AutoTokenizer.from_pretrained(name);
            result = Array.from((await model(tokenizer(texts, { padding: true, truncation: true }))).logits.data);
          }
          await model.dispose();
          return result;
        } catch (error) {
          return String(error?.message ?? error);
        }
      };
      document.body.dataset.ready = 'true';
    </script>
  </body>
</html>
`;
