#!/usr/bin/env node
// `npm test` runs this first (the pretest script): the tests need four Debian packages besides
// node_modules: the ONNX conformance suite (libonnx-testdata), Fashion-MNIST
// (dataset-fashion-mnist, accuracy tests), Chromium (the browser and studio tests) and
// redis-server (the job-queue test). When one is missing it
// is installed with apt-get if this runs as root (or with sudo when that needs no password);
// otherwise this prints the exact command to run and fails, before any test starts.
// SHRINK_SKIP_PREREQUISITES=1 skips the check (tests that need a missing package then fail).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian package -> the path the tests read from it. */
const PACKAGES = [
  { name: 'libonnx-testdata', path: '/usr/share/libonnx-testdata/data', for: 'the ONNX conformance suite' },
  { name: 'dataset-fashion-mnist', path: '/usr/share/datasets/fashion-mnist', for: 'Fashion-MNIST accuracy tests' },
  { name: 'chromium', path: '/usr/bin/chromium', for: 'the browser and studio tests' },
  { name: 'redis-server', path: '/usr/bin/redis-server', for: 'the job-queue test (BullMQ)' },
];

if (process.env.SHRINK_SKIP_PREREQUISITES === '1') process.exit(0);

const missing = PACKAGES.filter((p) => !existsSync(p.path));
if (missing.length === 0) process.exit(0);

const names = missing.map((p) => p.name);
const what = missing.map((p) => `${p.name} (${p.for}: ${p.path})`).join(', ');
const command = `apt-get install -y --no-install-recommends ${names.join(' ')}`;

function run(argv) {
  process.stderr.write(`test prerequisites: ${argv.join(' ')}\n`);
  const result = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return result.status === 0;
}

const hasAptGet = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const sudo = !isRoot && hasAptGet && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0 ? ['sudo', '-n'] : null;

if (hasAptGet && (isRoot || sudo)) {
  process.stderr.write(`test prerequisites: installing the Debian packages the tests need: ${what}\n`);
  const prefix = sudo ?? [];
  const ok = run([...prefix, 'apt-get', 'update', '-qq']) && run([...prefix, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...names]);
  const still = missing.filter((p) => !existsSync(p.path));
  if (ok && still.length === 0) process.exit(0);
  process.stderr.write(`test prerequisites: apt-get did not provide ${still.map((p) => p.name).join(', ') || names.join(', ')}; install by hand: ${command}\n`);
  process.exit(1);
}

process.stderr.write(
  `test prerequisites: missing ${what}.\n` +
    (hasAptGet
      ? `Install them as root: sudo ${command}\n`
      : `These are Debian packages (apt-get install ${names.join(' ')}); on another system provide the same files at the paths above.\n`) +
    'Then run npm test again (SHRINK_SKIP_PREREQUISITES=1 npm test runs without them; the tests that need them fail).\n',
);
process.exit(1);
