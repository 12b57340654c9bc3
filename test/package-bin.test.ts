// bin/shrink.js picks what to run: the compiled dist/ when it is current, the TypeScript sources
// through tsx when dist/ is missing or older than src/ (saying so) or SHRINK_FROM_SOURCE=1 (silently),
// and a one-line error when neither can run. Checked on a copy of the bin beside stand-in dist/ and
// src/ entry points that say which one ran. Also: the CLI loads only the command it runs, and the
// peer-dependency errors name the missing package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isMissingPackage, MissingPeerDependencyError } from '../src/node/peer-dependencies.js';
import { loadCommands } from '../src/cli/main.js';
import { runShrink } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const temp = mkdtempSync(join(tmpdir(), 'shrink-bin-'));
after(() => rmSync(temp, { recursive: true, force: true }));

/** A package folder with the real bin, and dist/ and src/ mains that print which one ran. */
function fakePackage(name: string, parts: { dist?: boolean; src?: boolean; nodeModules?: boolean }): string {
  const folder = join(temp, name);
  mkdirSync(join(folder, 'bin'), { recursive: true });
  copyFileSync(join(ROOT, 'bin/shrink.js'), join(folder, 'bin/shrink.js'));
  writeFileSync(join(folder, 'package.json'), '{ "name": "shrink", "type": "module" }\n');
  if (parts.dist) {
    mkdirSync(join(folder, 'dist/cli'), { recursive: true });
    writeFileSync(join(folder, 'dist/cli/main.js'), "export async function main(argv) { process.stdout.write('dist ' + argv.join(' ') + '\\n'); return 0; }\n");
    writeFileSync(join(folder, 'dist/.tsbuildinfo'), '{}');
  }
  if (parts.src) {
    mkdirSync(join(folder, 'src/cli'), { recursive: true });
    // A type annotation: only tsx can run this file.
    writeFileSync(join(folder, 'src/cli/main.ts'), "export async function main(argv: string[]): Promise<number> { process.stdout.write('src ' + argv.join(' ') + '\\n'); return 3; }\n");
  }
  if (parts.nodeModules) symlinkSync(join(ROOT, 'node_modules'), join(folder, 'node_modules'));
  return folder;
}

function runBin(folder: string, env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [join(folder, 'bin/shrink.js'), 'inspect', 'x.onnx'], {
    encoding: 'utf8',
    env: { ...process.env, SHRINK_FROM_SOURCE: '', ...env },
    timeout: 60_000,
  });
  assert.equal(result.error, undefined);
  return result;
}

/** Sets a file's times `seconds` from now (negative: the past). */
function age(file: string, seconds: number): void {
  const when = new Date(Date.now() + seconds * 1000);
  utimesSync(file, when, when);
}

test('the published layout (dist/, no src/) runs dist/ and passes the arguments and exit code through', () => {
  const folder = fakePackage('published', { dist: true });
  const run = runBin(folder);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, 'dist inspect x.onnx\n');
  assert.equal(run.stderr, '');
});

test('a clone with a current build runs dist/; an edit since the build runs the sources through tsx and says so', () => {
  const folder = fakePackage('clone', { dist: true, src: true, nodeModules: true });
  age(join(folder, 'src/cli/main.ts'), -60);
  const current = runBin(folder);
  assert.equal(current.stdout, 'dist inspect x.onnx\n');
  assert.equal(current.stderr, '');

  age(join(folder, 'src/cli/main.ts'), 60);
  const stale = runBin(folder);
  assert.equal(stale.status, 3, stale.stderr);
  assert.equal(stale.stdout, 'src inspect x.onnx\n');
  assert.equal(stale.stderr, 'shrink: dist/ is older than src/, running the TypeScript sources through tsx (npm run build for the faster compiled CLI)\n');

  age(join(folder, 'src/cli/main.ts'), -60);
  const forced = runBin(folder, { SHRINK_FROM_SOURCE: '1' });
  assert.equal(forced.stdout, 'src inspect x.onnx\n');
  assert.equal(forced.stderr, '', 'SHRINK_FROM_SOURCE=1 runs the sources silently');
});

test('no build runs the sources; with neither a build nor tsx the bin says what to run', () => {
  const unbuilt = fakePackage('unbuilt', { src: true, nodeModules: true });
  const run = runBin(unbuilt);
  assert.equal(run.stdout, 'src inspect x.onnx\n');
  assert.match(run.stderr, /^shrink: dist\/ is not built, running the TypeScript sources through tsx/);

  const bare = fakePackage('bare', { src: true });
  const failed = runBin(bare);
  assert.equal(failed.status, 1);
  assert.equal(failed.stdout, '');
  assert.equal(failed.stderr, 'shrink: dist/ is not built and tsx (a devDependency) is not installed: run npm install, or npm run build\n');
});

test('the CLI loads only the command it runs; help and unknown names load them all', async () => {
  assert.equal((await loadCommands(['inspect', 'model.onnx', '--json'])).length, 1);
  assert.equal((await loadCommands(['--verbose', 'quantize', 'm.onnx'])).length, 1);
  assert.equal((await loadCommands(['--version'])).length, 0);
  const all = (await loadCommands()).length;
  assert.ok(all >= 9);
  assert.equal((await loadCommands(['--help'])).length, all);
  assert.equal((await loadCommands([])).length, all);
  assert.equal((await loadCommands(['inspct'])).length, all);

  const help = await runShrink(['--help']);
  assert.equal(help.code, 0);
  for (const name of ['inspect', 'eval', 'bench', 'optimize', 'quantize', 'run', 'train', 'qat', 'distill']) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
  const typo = await runShrink(['inspct']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command 'inspct' \(Did you mean inspect\?\)/);
  const version = await runShrink(['--version']);
  assert.equal(version.stdout.trim(), JSON.parse((await import('node:fs')).readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
});

test('a missing peer dependency is named in one line with the command that installs it', async () => {
  const require = createRequire(import.meta.url);
  let requireError: unknown;
  try {
    require('onnxruntime-nodex');
  } catch (error) {
    requireError = error;
  }
  assert.equal(isMissingPackage(requireError, 'onnxruntime-nodex'), true);
  assert.equal(isMissingPackage(requireError, 'onnxruntime-node'), false);
  let importError: unknown;
  try {
    await import('onnxruntime-webx' as string);
  } catch (error) {
    importError = error;
  }
  assert.equal(isMissingPackage(importError, 'onnxruntime-webx'), true);
  assert.equal(isMissingPackage(new Error("Cannot find module 'onnxruntime-node'"), 'onnxruntime-node'), false, 'no code: not a resolution failure');

  const node = new MissingPeerDependencyError('onnxruntime-node', 'running a model in Node');
  assert.equal(node.message.includes('\n'), false);
  assert.match(node.message, /^onnxruntime-node is not installed: running a model in Node needs it \(a peer dependency of shrink\): npm install onnxruntime-node@\^1\.30\.0 \(ONNXRUNTIME_NODE_INSTALL=skip/);
  const web = new MissingPeerDependencyError('onnxruntime-web', 'the wasm backend');
  assert.equal(web.message, 'onnxruntime-web is not installed: the wasm backend needs it (a peer dependency of shrink): npm install onnxruntime-web@^1.30.0');

  // The ranges in the messages are package.json's.
  const manifest = JSON.parse((await import('node:fs')).readFileSync(join(ROOT, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
  const { PEER_RANGES } = await import('../src/node/peer-dependencies.js');
  assert.deepEqual({ ...PEER_RANGES }, manifest.peerDependencies);
});
