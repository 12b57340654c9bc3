// The studio end to end: `shrink studio` serves the built page, Debian's Chromium opens it, and a
// user's path through it runs for real: a corrupt file gives one line; PP-OCR's direction
// classifier dropped with real text-line samples shows its inspect view; a recipe with a mistake
// shows the mistake on its line; the int8 recipe runs in the page's worker; the fidelity the page
// shows equals what this test computes itself with onnxruntime-node from the downloaded file on
// the same samples. Screenshots of each state go to $SHRINK_STUDIO_SCREENSHOTS (docs/studio for
// the README) or a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { crc32, deflateSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Tensor } from '../src/ir/tensor.js';
import { writeNpy } from '../src/eval/npy.js';
import { readModel } from '../src/onnx/model-io.js';
import { studioFolder } from '../src/node/studio-build.js';
import { checkRecipe } from '../studio/src/recipe-problems.js';
import { BUILT_IN_RECIPES } from '../studio/src/recipes.js';
import { sampleSourceFor, symbolicDims } from '../studio/src/samples.js';
import { readWav } from '../studio/src/wav.js';
import { launchChromium } from './helpers/chromium.js';
import { startStaticServer } from './helpers/static-server.js';
import { REPO_ROOT, SHRINK_BIN } from './helpers/cli.js';
import { cosine } from './helpers/compare.js';
import { loadOcrLines, type OcrLine } from './helpers/ocr-lines.js';
import { CLS, VAD_V5 } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';

const CLS_HEIGHT = 48;
const CLS_WIDTH = 192;
const SAMPLES = 16;
/** onnxruntime-web (wasm) and onnxruntime-node differ in float rounding only. */
const COSINE_TOLERANCE = 1e-5;
const SQNR_TOLERANCE_DB = 0.05;

/**
 * The classifier's input for text lines as PaddleOCR prepares it (height 48, at most 192 wide,
 * pixels to [-1, 1], zeros to the right), every other line turned 180 degrees so both classes occur.
 */
function clsInput(lines: readonly OcrLine[]): Float32Array {
  const plane = CLS_HEIGHT * CLS_WIDTH;
  const out = new Float32Array(lines.length * 3 * plane);
  lines.forEach((line, n) => {
    const width = Math.min(CLS_WIDTH, line.width);
    const turned = n % 2 === 1;
    for (let y = 0; y < CLS_HEIGHT; y++) {
      for (let x = 0; x < width; x++) {
        const [sy, sx] = turned ? [CLS_HEIGHT - 1 - y, width - 1 - x] : [y, x];
        for (let c = 0; c < 3; c++) out[(n * 3 + c) * plane + y * CLS_WIDTH + x] = line.pixels[(sy * line.width + sx) * 3 + c] / 127.5 - 1;
      }
    }
  });
  return out;
}

let builtPage: Promise<string> | undefined;

/** The built page, found or built once per run of this file (a build takes 15-20 s here). */
function studioPage(note: (line: string) => void): Promise<string> {
  builtPage ??= studioFolder(note);
  return builtPage;
}

/** A PNG of 8-bit RGB pixels (rows of width * 3 bytes), written here so the page decodes a real image file. */
function png(width: number, height: number, rgb: Uint8Array): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    out.set(data, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, truecolour, deflate, no filter method, no interlace
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) rows.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', new Uint8Array(0))]);
}

/** Fidelity of `b` against `a` (softmax rows of 2 classes), computed here: cosine, SQNR, top-1 agreement. */
function fidelity(a: Float32Array, b: Float32Array): { cosine: number; sqnr: number; top1: number } {
  let signal = 0;
  let noise = 0;
  let agree = 0;
  for (let i = 0; i < a.length; i++) {
    signal += a[i] * a[i];
    noise += (a[i] - b[i]) ** 2;
  }
  const rows = a.length / 2;
  for (let n = 0; n < rows; n++) if (a[2 * n] > a[2 * n + 1] === b[2 * n] > b[2 * n + 1]) agree++;
  return { cosine: cosine(a, b), sqnr: 10 * Math.log10(signal / noise), top1: agree / rows };
}

/** Drops files on the page's drop zone the way a browser does: a drop event carrying a DataTransfer. */
async function dropFiles(page: Page, files: { name: string; bytes: Uint8Array }[]): Promise<void> {
  const payload = files.map((f) => ({ name: f.name, base64: Buffer.from(f.bytes).toString('base64') }));
  await page.evaluate((list) => {
    const transfer = new DataTransfer();
    for (const f of list) {
      const binary = atob(f.base64);
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      transfer.items.add(new File([bytes], f.name));
    }
    const zone = document.querySelector('[data-testid="drop-zone"]') as HTMLElement;
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, payload);
}

/** Starts `shrink studio --port 0 --dir DIR` and answers the URL it prints. */
async function startStudioCli(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [SHRINK_BIN, 'studio', '--port', '0', '--dir', dir], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`shrink studio printed no URL in 30 s: ${output}`)), 30_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /shrink studio: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
      if (match) {
        clearTimeout(timer);
        done(match[1]);
      }
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('exit', (code) => fail(new Error(`shrink studio exited (${code}): ${output}`)));
  });
  return { child, url };
}

test('recipe problems point at their line: YAML syntax, JSON syntax, a wrong value, an unknown key', () => {
  const at = (text: string) => {
    const checked = checkRecipe(text);
    assert.ok('problem' in checked, `expected a problem in: ${text}`);
    return checked.problem;
  };
  assert.equal(at('steps:\n  - optimize: {}\n  - quantize:\n      method: int9\n').line, 4);
  assert.match(at('steps:\n  - optimize: {}\n  - quantize:\n      method: int9\n').message, /steps\.1\.quantize\.method/);
  assert.equal(at('steps:\n  - quantize:\n      method: int8-weight\n      colour: red\n').line, 4);
  assert.equal(at('steps:\n  - quantize: [\n').line, 3);
  assert.equal(at('{"steps": [\n  {"optimize": {}}\n  {"quantize": {"method": "fp16"}}\n]}').line, 3);
  for (const recipe of BUILT_IN_RECIPES) assert.ok('recipe' in checkRecipe(recipe.text), `built-in recipe ${recipe.id} parses`);
});

test('generated inputs: a symbolic first axis is a batch of one, other symbolic dims take the sizes the page gives', async () => {
  const model = readModel(new Uint8Array(await readFile(join(REPO_ROOT, CLS))), { source: 'cls.onnx' });
  assert.deepEqual(symbolicDims(model), { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 64, 'p2o.DynamicDimension.2': 64 });
  const source = await sampleSourceFor(model, [], 'minus-one-to-one', { count: 3, dims: { 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 } });
  const samples = [];
  for await (const sample of source) samples.push(sample);
  assert.equal(samples.length, 3);
  for (const sample of samples) {
    assert.deepEqual(sample.inputs.x.dims, [1, 3, CLS_HEIGHT, CLS_WIDTH]);
    const values = sample.inputs.x.data() as Float32Array;
    assert.ok(values.every((v) => v >= -1 && v < 1) && Math.min(...values) < -0.9 && Math.max(...values) > 0.9, 'uniform in [-1, 1)');
  }
  await assert.rejects(sampleSourceFor(model, [{ name: 'a.npy', bytes: new ArrayBuffer(8) }, { name: 'b.npz', bytes: new ArrayBuffer(8) }], 'zero-to-one', { count: 1, dims: {} }), /^Error: b\.npz: give one \.npy or \.npz/);
});

/** A 16-bit PCM WAV of `frames` frames: left channel `left(i)`, right channel `-left(i)/2`, values in int16 steps. */
function wav16(frames: number, rate: number, left: (i: number) => number): ArrayBuffer {
  const out = Buffer.alloc(44 + frames * 4);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + frames * 4, 4);
  out.write('WAVEfmt ', 8, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(2, 22); // stereo
  out.writeUInt32LE(rate, 24);
  out.writeUInt32LE(rate * 4, 28);
  out.writeUInt16LE(4, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(frames * 4, 40);
  for (let i = 0; i < frames; i++) {
    out.writeInt16LE(left(i), 44 + i * 4);
    out.writeInt16LE(-left(i) / 2, 46 + i * 4);
  }
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
}

test('audio samples: WAV frames of the input\'s length, channels averaged, not resampled; refused for a model with several inputs', async () => {
  const left = (i: number) => ((i * 37) % 2000) * 2 - 2000;
  const bytes = wav16(1300, 16000, left);
  const decoded = readWav(bytes, 'a.wav');
  assert.equal(decoded.rate, 16000);
  assert.equal(decoded.samples.length, 1300);
  for (const i of [0, 1, 777, 1299]) assert.equal(decoded.samples[i], Math.fround(left(i) / 2 / 2 / 32768), `sample ${i}`);

  const b = new GraphBuilder();
  const x = b.input('audio', DataType.FLOAT, ['N', 512]);
  b.output(b.node('Neg', [x]), DataType.FLOAT, ['N', 512]);
  const model = buildModel(b.graph);
  const source = await sampleSourceFor(model, [{ name: 'a.wav', bytes }], 'zero-to-one', { count: 1, dims: {} });
  const samples = [];
  for await (const sample of source) samples.push(sample);
  assert.equal(samples.length, 2, '1300 samples make two whole frames of 512');
  assert.deepEqual(samples[1].inputs.audio.dims, [1, 512]);
  assert.equal((samples[1].inputs.audio.data() as Float32Array)[3], decoded.samples[512 + 3]);
  assert.match(source.description, /16000 Hz \(not resampled\), 2 frames of 512 samples/);

  const vad = readModel(new Uint8Array(await readFile(join(REPO_ROOT, VAD_V5))));
  await assert.rejects(sampleSourceFor(vad, [{ name: 'a.wav', bytes }], 'zero-to-one', { count: 1, dims: {} }), /^Error: a\.wav: audio feeds a model with one input; this one has 3/);
  assert.throws(() => readWav(new ArrayBuffer(20), 'b.wav'), /^Error: b\.wav: not a WAV file/);
});

test('shrink studio: drop PP-OCR cls, inspect it, run the int8 recipe in the worker, and the download matches what the page reported', { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shrink-studio-'));
  const shots = resolve(process.env.SHRINK_STUDIO_SCREENSHOTS ?? join(dir, 'screenshots'));
  await mkdir(shots, { recursive: true });
  let browser: Browser | undefined;
  let server: ChildProcess | undefined;
  const pageLog: string[] = [];
  try {
    let started = performance.now();
    // dist/studio or the cached build when current, else a fresh Vite build (what `shrink studio` does).
    const folder = await studioPage((line) => t.diagnostic(line));
    t.diagnostic(`studio page ${folder}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    // The build is complete for a static host (onnxruntime-web's files in ort/); the npm package
    // ships it without ort/, which `shrink studio` then serves from onnxruntime-web: that layout runs here.
    for (const file of ['index.html', 'ort/ort.wasm.min.mjs', 'ort/ort-wasm-simd-threaded.mjs', 'ort/ort-wasm-simd-threaded.wasm']) assert.ok(existsSync(join(folder, file)), `${file} built`);
    const built = join(dir, 'page');
    await cp(join(folder, 'index.html'), join(built, 'index.html'));
    await cp(join(folder, 'assets'), join(built, 'assets'), { recursive: true });
    const cli = await startStudioCli(built);
    server = cli.child;
    // The headers that make the page cross-origin isolated, and the MIME types browsers insist on.
    const wasm = await fetch(`${cli.url}ort/ort-wasm-simd-threaded.wasm`, { method: 'HEAD' });
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.equal(wasm.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(wasm.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match((await fetch(`${cli.url}ort/ort.wasm.min.mjs`, { method: 'HEAD' })).headers.get('content-type') ?? '', /^text\/javascript/);
    assert.equal((await fetch(`${cli.url}..%2f..%2fpackage.json`)).status, 404);

    browser = await launchChromium();
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => pageLog.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => pageLog.push(`request failed: ${r.url()}`));
    // Nothing is uploaded: every request the page makes goes to the studio's own origin.
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));

    await page.goto(cli.url);
    await page.getByTestId('engine').getByText('threads (cross-origin isolated)').waitFor({ timeout: 30_000 });
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    await page.screenshot({ path: join(shots, '1-start.png') });

    // A corrupt file: one line, naming the file.
    await page.getByTestId('file-input').setInputFiles({ name: 'broken.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not an ONNX model, just text\n') });
    const loadError = page.getByTestId('load-error');
    await loadError.waitFor({ timeout: 15_000 });
    const errorText = (await loadError.textContent()) ?? '';
    assert.match(errorText, /^broken\.onnx: /);
    assert.ok(!errorText.includes('\n'), `one line: ${errorText}`);
    await page.screenshot({ path: join(shots, '2-corrupt-file.png') });

    // The model and 16 real samples, dropped together.
    const model = new Uint8Array(await readFile(join(REPO_ROOT, CLS)));
    const lines = (await loadOcrLines()).slice(0, SAMPLES);
    const inputs = clsInput(lines);
    const dims = [SAMPLES, 3, CLS_HEIGHT, CLS_WIDTH];
    const npy = writeNpy({ dataType: DataType.FLOAT, dims, data: new Uint8Array(inputs.buffer) });
    started = performance.now();
    await dropFiles(page, [
      { name: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', bytes: model },
      { name: 'lines.npy', bytes: npy },
    ]);
    await page.getByTestId('inspect').waitFor({ timeout: 15_000 });
    assert.equal(await loadError.count(), 0, 'the error goes when a good model comes');
    // Facts of the model counted here from the IR (REAL_MODELS.md: 35 BatchNormalization).
    const ir = readModel(model);
    assert.equal(await page.getByTestId('nodes').textContent(), ir.graph.nodes.length.toLocaleString('en-US'));
    const histogram = (await page.getByTestId('op-histogram').locator('title').allTextContents()).join('\n');
    assert.match(histogram, /^BatchNormalization: 35$/m);
    assert.match(histogram, new RegExp(`^Conv: ${ir.graph.nodes.filter((n) => n.opType === 'Conv').length}$`, 'm'));
    const columns = await page.getByTestId('weights-chart').locator('title').allTextContents();
    for (const conv of ir.graph.nodes.filter((n) => n.opType === 'Conv')) assert.ok(columns.some((c) => c.startsWith(`${conv.name} (Conv): `)), `a column for ${conv.name}`);
    assert.match((await page.getByTestId('samples').textContent()) ?? '', /lines\.npy/);
    await page.screenshot({ path: join(shots, '3-inspect.png'), fullPage: true });

    // A mistake in the recipe shows on its line and blocks the run.
    const editor = page.getByTestId('recipe-text');
    await editor.fill('steps:\n  - optimize: {}\n  - quantize:\n      method: int9\n');
    const problem = page.getByTestId('recipe-problem');
    await problem.waitFor({ timeout: 10_000 });
    assert.equal(await problem.getAttribute('data-line'), '4');
    assert.match((await problem.textContent()) ?? '', /^line 4: recipe: 'steps\.1\.quantize\.method'/);
    assert.equal(await page.getByTestId('run').isDisabled(), true);
    await page.getByTestId('recipe-problem').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, '4-recipe-error.png') });

    // A run can be stopped: the worker goes, a new one starts and takes the model again.
    await page.getByTestId('recipe-select').selectOption('static-int8');
    await problem.waitFor({ state: 'detached', timeout: 10_000 });
    await page.getByTestId('run').click();
    await page.getByTestId('stop').click();
    assert.equal(await page.getByTestId('run-error').textContent(), 'stopped: the recipe did not finish');
    await page.getByTestId('engine').getByText('threads (cross-origin isolated)').waitFor({ timeout: 30_000 });

    // The built-in int8 recipe, run in the worker.
    await page.getByTestId('recipe-select').selectOption('int8-weight');
    await page.getByTestId('run').click();
    await page.getByTestId('progress').waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(shots, '5-running.png') });
    await page.getByTestId('results').waitFor({ timeout: 120_000 });
    t.diagnostic(`drop to result in the page: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await page.getByTestId('results').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, '6-result.png'), fullPage: true });

    const output = ir.graph.outputs[0].name;
    const row = page.locator(`[data-testid="fidelity"] tr[data-output="${output}"]`);
    const shown = async (metric: string) => Number(await row.locator(`[data-metric="${metric}"]`).getAttribute('data-value'));
    const pageCosine = await shown('cosine');
    const pageTop1 = await shown('top1');
    const pageSqnr = await shown('sqnr');
    assert.match((await page.getByTestId('samples-used').textContent()) ?? '', /^on 16 samples: lines\.npy/);
    assert.ok((await page.getByTestId('layer-ranking').locator('rect').count()) > 0, 'the per-layer ranking is drawn');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download').click()]);
    const saved = join(dir, download.suggestedFilename());
    await download.saveAs(saved);
    assert.equal(download.suggestedFilename(), 'ch_ppocr_mobile_v2.0_cls_infer.shrunk.onnx');
    const result = new Uint8Array(await readFile(saved));
    assert.equal(Number(await page.getByTestId('sizes').getAttribute('data-after')), result.byteLength, 'the size shown is the downloaded file');
    assert.ok(result.byteLength < 0.5 * model.byteLength, `int8 weights: ${result.byteLength} bytes of ${model.byteLength}`);
    assert.ok(readModel(result).graph.nodes.some((n) => n.opType === 'DequantizeLinear'), 'the download holds int8 weights');

    // onnxruntime-node runs the download; fidelity computed here on the same 16 samples.
    const feed = Tensor.fromArray('x', DataType.FLOAT, dims, inputs);
    const [reference] = await runModel(model, [feed]);
    const [candidate] = await runModel(result, [feed]);
    const a = reference.data() as Float32Array;
    const inNode = fidelity(a, candidate.data() as Float32Array);
    t.diagnostic(`npy samples: page cosine ${pageCosine}, top-1 ${pageTop1}, SQNR ${pageSqnr} dB; onnxruntime-node on the download: cosine ${inNode.cosine}, top-1 ${inNode.top1}, SQNR ${inNode.sqnr} dB`);
    assert.ok(Math.abs(pageCosine - inNode.cosine) <= COSINE_TOLERANCE, `cosine: page ${pageCosine}, node ${inNode.cosine}`);
    assert.ok(Math.abs(pageSqnr - inNode.sqnr) <= SQNR_TOLERANCE_DB, `SQNR: page ${pageSqnr}, node ${inNode.sqnr}`);
    assert.equal(pageTop1, inNode.top1);
    // Both classes occur in the samples (the turned lines), so agreement means something.
    const classes = new Set(Array.from({ length: SAMPLES }, (_, n) => a[2 * n] > a[2 * n + 1]));
    assert.equal(classes.size, 2, 'the original sees both orientations');

    // Images as samples: 4 lines as 192x48 PNGs, decoded by the browser in the worker, pixels to [-1, 1].
    const imageLines = (await loadOcrLines()).filter((l) => l.width >= CLS_WIDTH).slice(0, 4);
    const pngs = imageLines.map((line, k) => {
      const rgb = new Uint8Array(CLS_HEIGHT * CLS_WIDTH * 3);
      for (let y = 0; y < CLS_HEIGHT; y++) rgb.set(line.pixels.subarray(y * line.width * 3, (y * line.width + CLS_WIDTH) * 3), y * CLS_WIDTH * 3);
      return { name: `line-${k}.png`, bytes: png(CLS_WIDTH, CLS_HEIGHT, rgb), rgb };
    });
    await dropFiles(page, pngs);
    await page.getByTestId('samples').getByText('line-3.png').waitFor({ timeout: 10_000 });
    await page.getByTestId('run').click();
    await page.getByTestId('samples-used').getByText('4 images').waitFor({ timeout: 120_000 });
    const imageInputs = new Float32Array(pngs.length * 3 * CLS_HEIGHT * CLS_WIDTH);
    pngs.forEach(({ rgb }, n) => {
      for (let p = 0; p < CLS_HEIGHT * CLS_WIDTH; p++) for (let c = 0; c < 3; c++) imageInputs[(n * 3 + c) * CLS_HEIGHT * CLS_WIDTH + p] = rgb[p * 3 + c] / 127.5 - 1;
    });
    const imageFeed = Tensor.fromArray('x', DataType.FLOAT, [pngs.length, 3, CLS_HEIGHT, CLS_WIDTH], imageInputs);
    const [imageReference] = await runModel(model, [imageFeed]);
    const [imageCandidate] = await runModel(result, [imageFeed]);
    const onImages = fidelity(imageReference.data() as Float32Array, imageCandidate.data() as Float32Array);
    const imageCosine = await shown('cosine');
    t.diagnostic(`image samples: page cosine ${imageCosine}, SQNR ${await shown('sqnr')} dB; onnxruntime-node: cosine ${onImages.cosine}, SQNR ${onImages.sqnr} dB`);
    assert.ok(Math.abs(imageCosine - onImages.cosine) <= COSINE_TOLERANCE, `cosine on images: page ${imageCosine}, node ${onImages.cosine}`);
    assert.ok(Math.abs((await shown('sqnr')) - onImages.sqnr) <= SQNR_TOLERANCE_DB, `SQNR on images: page ${await shown('sqnr')}, node ${onImages.sqnr}`);
    assert.equal(await shown('top1'), onImages.top1);

    const origin = new URL(cli.url).origin;
    const foreign = requests.filter((r) => !r.startsWith(origin) && !r.startsWith('blob:') && !r.startsWith('data:'));
    assert.deepEqual(foreign, [], 'the page reaches no other origin');
  } catch (error) {
    throw new Error(`${(error as Error).message}\npage log:\n  ${pageLog.join('\n  ')}`);
  } finally {
    await browser?.close();
    server?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
});

test('the built page works from a plain static host under a sub-path: relative paths, one thread without COOP/COEP', { timeout: 120_000 }, async (t) => {
  const folder = await studioPage((line) => t.diagnostic(line));
  const host = await startStaticServer({ '/some/site/studio/': folder });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`${host.url}/some/site/studio/index.html`);
    await page.getByTestId('engine').getByText('1 thread (not isolated').waitFor({ timeout: 30_000 });
    await page.getByTestId('file-input').setInputFiles({ name: 'cls.onnx', mimeType: 'application/octet-stream', buffer: await readFile(join(REPO_ROOT, CLS)) });
    await page.getByTestId('inspect').waitFor({ timeout: 15_000 });
    assert.equal(await page.getByTestId('nodes').textContent(), readModel(new Uint8Array(await readFile(join(REPO_ROOT, CLS)))).graph.nodes.length.toLocaleString('en-US'));
    assert.deepEqual(host.misses, [], 'every file the page asked for was there');
  } finally {
    await browser?.close();
    await host.close();
  }
});
