// The core runs in a browser: the IR, writeModel and inspect are bundled for the browser with
// esbuild, loaded into headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core),
// and run on a real model with onnxruntime-web; the same probe runs under Node with
// onnxruntime-node, and the two must agree. A browser that cannot start fails the test: skipping
// would hide exactly the breakage this test exists to catch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildFailure, type Metafile } from 'esbuild';
import type { Browser } from 'playwright-core';
import { nodeOrt } from '../src/node/ort-node.js';
import type { ShrinkProbeWindow } from './browser/entry.js';
import { PROBE_RECIPE, probeModel, type ProbeOutput, type ProbeResult, recipeDataNpy, TRAINING_STEPS } from './browser/probe.js';
import { spawnShrink } from './helpers/cli.js';
import { launchChromium } from './helpers/chromium.js';
import { OCR_ASSETS } from './helpers/real-models.js';
import { maxAbsDiff } from './helpers/run-model.js';
import { startStaticServer } from './helpers/static-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BROWSER_DIR = join(ROOT, 'test/browser');
const MODEL_DIR = join(ROOT, OCR_ASSETS);
const MODEL_FILE = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';
const ORT_WEB_DIST = join(ROOT, 'node_modules/onnxruntime-web/dist');
/** onnxruntime-web (wasm) against onnxruntime-node on the same model and input. */
const ORT_WEB_VS_NODE_TOLERANCE = 1e-5;

/**
 * Module specifiers that must not appear in the browser bundle: the Node runtime and Node
 * built-ins. Quoted, so comments that merely mention them (esbuild keeps doc comments) pass.
 */
const NODE_ONLY_PATTERNS: readonly RegExp[] = [
  /["'`]onnxruntime-node["'`/]/,
  /["'`]node:[a-z_/]+["'`]/,
  /(?:from\s*|require\(\s*|import\(\s*)["'](?:fs|fs\/promises|path|os|url|crypto|child_process|worker_threads|stream|buffer|util)["']/,
];

interface Bundle {
  dir: string;
  code: string;
  metafile: Metafile;
}

/**
 * Bundles test/browser/entry.ts for the browser. esbuild refuses Node built-ins on platform
 * 'browser', which is the first line of defence; the error is rewritten to say what it means.
 */
async function bundleForBrowser(dir: string): Promise<Bundle> {
  const outfile = join(dir, 'entry.js');
  let metafile: Metafile;
  try {
    const result = await build({
      entryPoints: [join(BROWSER_DIR, 'entry.ts')],
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      // Served as its own prebuilt module through index.html's import map (it carries guarded
      // Node imports of its own, which are not ours to check).
      external: ['onnxruntime-web/wasm'],
      metafile: true,
      logLevel: 'silent',
    });
    metafile = result.metafile;
  } catch (error) {
    const failure = error as Partial<BuildFailure>;
    const details = (failure.errors ?? [])
      .map((e) => `  ${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`)
      .join('\n');
    throw new Error(
      `the core does not bundle for the browser (a Node-only import outside src/node and src/cli?):\n${details || String(error)}`,
    );
  }
  await copyFile(join(BROWSER_DIR, 'index.html'), join(dir, 'index.html'));
  return { dir, code: await readFile(outfile, 'utf8'), metafile };
}

/** Loads the page, runs the probe in it, and returns its result with what the page logged. */
async function probeInChromium(bundle: Bundle): Promise<{ result: ProbeResult; browserVersion: string; pageLog: string[] }> {
  const server = await startStaticServer({ '/app/': bundle.dir, '/ort/': ORT_WEB_DIST, '/models/': MODEL_DIR });
  let browser: Browser | undefined;
  const pageLog: string[] = [];
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    page.on('console', (message) => pageLog.push(`console.${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => pageLog.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => pageLog.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
    try {
      await page.goto(`${server.url}/app/index.html`);
      await page.waitForFunction(() => document.body?.dataset.ready === 'true', undefined, { timeout: 15_000 });
      const json = await page.evaluate(
        ([url, source]) => (window as unknown as ShrinkProbeWindow).shrinkProbe(url, source),
        [`${server.url}/models/${MODEL_FILE}`, MODEL_FILE] as const,
      );
      return { result: JSON.parse(json) as ProbeResult, browserVersion: browser.version(), pageLog };
    } catch (error) {
      const context = [...pageLog, ...server.misses.map((p) => `404: ${p}`)].join('\n  ');
      throw new Error(`in Chromium: ${(error as Error).message}${context ? `\npage log:\n  ${context}` : ''}`);
    }
  } finally {
    await browser?.close();
    await server.close();
  }
}

function maxAbsDifference(a: ProbeOutput, b: ProbeOutput): number {
  assert.deepEqual(a.dims, b.dims);
  return maxAbsDiff(a.data, b.data);
}

test('the core runs in headless Chromium on the PP-OCR classifier and matches Node', { timeout: 120_000 }, async (t) => {
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'shrink-browser-'));
  try {
    const bundle = await bundleForBrowser(dir);

    // The bundle holds shrink's code only, and none of it reaches for Node.
    const inputs = Object.keys(bundle.metafile.inputs);
    const nodeOnlyInputs = inputs.filter((p) => /(^|\/)src\/(node|cli)\/|onnxruntime-node/.test(p));
    assert.deepEqual(nodeOnlyInputs, [], `browser bundle pulls in Node-only files: ${nodeOnlyInputs.join(', ')}`);
    assert.ok(inputs.some((p) => p.endsWith('src/onnx/model-io.ts')), 'bundle holds the core (model-io.ts)');
    for (const pattern of NODE_ONLY_PATTERNS) {
      const hit = pattern.exec(bundle.code);
      assert.ok(hit === null, `browser bundle references Node-only code: '${hit?.[0]}' near …${bundle.code.slice(Math.max(0, (hit?.index ?? 0) - 80), (hit?.index ?? 0) + 80)}…`);
    }
    t.diagnostic(`bundle: ${(bundle.code.length / 1024).toFixed(0)} KiB from ${inputs.length} files in ${dir}`);

    const bytes = new Uint8Array(await readFile(join(MODEL_DIR, MODEL_FILE)));
    const browserStart = performance.now();
    const { result: inBrowser, browserVersion } = await probeInChromium(bundle);
    const browserMs = performance.now() - browserStart;
    const nodeStart = performance.now();
    const inNode = await probeModel(nodeOrt, bytes, { source: MODEL_FILE });
    const nodeMs = performance.now() - nodeStart;

    // The IR reads the same model in both places.
    assert.equal(inBrowser.nodeCount, inNode.nodeCount);
    assert.deepEqual(inBrowser.opHistogram, inNode.opHistogram);
    assert.equal(inBrowser.constantCount, inNode.constantCount);
    assert.deepEqual(inBrowser.constantsBySource, inNode.constantsBySource);
    // Facts about this model (REAL_MODELS.md): weights in Constant nodes, 35 BatchNormalization.
    assert.equal(inNode.opHistogram.BatchNormalization, 35);
    assert.equal(inNode.constantsBySource.initializer ?? 0, 0);
    assert.ok((inNode.constantsBySource['constant-node'] ?? 0) > 0);

    // inspect gives the same report, and it agrees with the IR-level counts above.
    assert.deepEqual(inBrowser.report, inNode.report);
    assert.equal(inNode.report.nodes, inNode.nodeCount);
    assert.equal(inNode.report.total.tensors, inNode.constantCount);
    assert.equal(inNode.report.file_bytes, bytes.byteLength);
    assert.equal(inNode.report.source, MODEL_FILE);
    assert.deepEqual(
      Object.fromEntries(inNode.report.ops.map((o) => [o.op, o.count])),
      inNode.opHistogram,
      'inspect op histogram vs IR walk',
    );

    // writeModel produces the same bytes in both places.
    assert.equal(inBrowser.reencodedByteLength, inNode.reencodedByteLength);
    assert.equal(inBrowser.reencodedSha256, inNode.reencodedSha256);

    // The round-tripped model computes exactly what the original does, in each runtime.
    // Training runs in the browser too: the same steps, the same losses (within float rounding of
    // different kernels), falling.
    assert.equal(inBrowser.trainingLosses.length, TRAINING_STEPS);
    inBrowser.trainingLosses.forEach((loss, i) => assert.ok(Math.abs(loss - inNode.trainingLosses[i]) < 1e-4, `training step ${i}: loss ${loss} in the browser, ${inNode.trainingLosses[i]} in Node`));
    assert.ok(inBrowser.trainingLosses[TRAINING_STEPS - 1] < 0.8 * inBrowser.trainingLosses[0], `losses ${inBrowser.trainingLosses.join(', ')}`);
    assert.deepEqual(inBrowser.outputsReencoded, inBrowser.outputsOriginal, 'ORT-web: original vs re-encoded must be bit-identical');
    assert.deepEqual(inNode.outputsReencoded, inNode.outputsOriginal, 'ORT-node: original vs re-encoded must be bit-identical');

    // And onnxruntime-web agrees with onnxruntime-node.
    const names = Object.keys(inNode.outputsOriginal);
    assert.deepEqual(Object.keys(inBrowser.outputsOriginal), names);
    const differences: string[] = [];
    for (const name of names) {
      const web = inBrowser.outputsOriginal[name]!;
      const native = inNode.outputsOriginal[name]!;
      assert.deepEqual(web.dims, [1, 2]);
      const sum = web.data.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `'${name}' is a softmax over 2 classes, sums to ${sum}`);
      const diff = maxAbsDifference(web, native);
      assert.ok(diff <= ORT_WEB_VS_NODE_TOLERANCE, `'${name}': ORT-web vs ORT-node max |diff| ${diff} > ${ORT_WEB_VS_NODE_TOLERANCE}`);
      differences.push(`${name} web=[${web.data.join(', ')}] node=[${native.data.join(', ')}] max|diff|=${diff.toExponential(2)}`);
    }

    // A recipe runs the same in the browser: the 3-step recipe on the same model and data gives
    // the bytes the CLI writes for it.
    const cliFolder = await mkdtemp(join(tmpdir(), 'shrink-browser-cli-'));
    try {
      await writeFile(join(cliFolder, 'recipe.json'), JSON.stringify(PROBE_RECIPE));
      await writeFile(join(cliFolder, 'data.npy'), recipeDataNpy());
      const cli = spawnShrink(['run', join(cliFolder, 'recipe.json'), join(MODEL_DIR, MODEL_FILE), '-o', join(cliFolder, 'out.onnx'), '--data', join(cliFolder, 'data.npy'), '--no-progress']);
      assert.equal(cli.status, 0, cli.stderr);
      const written = new Uint8Array(await readFile(join(cliFolder, 'out.onnx')));
      const cliSha = createHash('sha256').update(written).digest('hex');
      assert.deepEqual(inBrowser.recipe.steps, ['optimize', 'quantize', 'gate']);
      assert.equal(inBrowser.recipe.gatePassed, true);
      assert.equal(inBrowser.recipe.byteLength, written.byteLength);
      assert.equal(inBrowser.recipe.sha256, cliSha, 'the recipe in Chromium gives the bytes the CLI wrote');
      assert.equal(inNode.recipe.sha256, cliSha);
      t.diagnostic(`recipe (optimize, int8-weight, gate) in Chromium and in the CLI: ${written.byteLength} B, sha256 ${cliSha.slice(0, 16)}…`);
    } finally {
      await rm(cliFolder, { recursive: true, force: true });
    }

    const { parameters } = inBrowser.report;
    t.diagnostic(`chromium ${browserVersion}: ${inBrowser.nodeCount} nodes, ${Object.keys(inBrowser.opHistogram).length} op types, ${inBrowser.constantCount} constants, ${parameters.elements} parameters (${parameters.bytes} B), re-encoded ${inBrowser.reencodedByteLength} B sha256 ${inBrowser.reencodedSha256.slice(0, 16)}…`);
    for (const line of differences) t.diagnostic(line);
    t.diagnostic(`browser ${browserMs.toFixed(0)} ms, node ${nodeMs.toFixed(0)} ms, total ${(performance.now() - started).toFixed(0)} ms`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
