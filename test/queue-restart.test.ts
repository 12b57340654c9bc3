// Redis restarted in the middle of a `shrink auto --queue` search (a real redis-server on a loopback
// port, a real `shrink worker`): Redis is saved (RDB) before the search, killed with SIGKILL while
// the worker runs the first wave's evaluate jobs, and started again from that save, so it comes back
// without the jobs and without their events. The dispatcher and the worker reconnect, the dispatcher
// finds its jobs gone and adds them again, and the search ends with what a single process chooses,
// each candidate once, and every outcome in its cache. Told to stop while Redis is away, the worker
// leaves instead of waiting for Redis.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT, SHRINK_BIN } from './helpers/cli.js';
import { writeFashionFiles } from './helpers/fashion-files.js';
import { freePort, waitFor } from './helpers/local-services.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-queue-restart-'));
type Child = ChildProcess & { out: string; err: string; exited: Promise<number | null> };
const children: Child[] = [];

/** A child process whose stdout and stderr are kept, and whose exit code is a promise. */
function start(command: string, args: string[]): Child {
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }) as Child;
  child.out = '';
  child.err = '';
  child.stdout?.setEncoding('utf8').on('data', (t: string) => (child.out += t));
  child.stderr?.setEncoding('utf8').on('data', (t: string) => (child.err += t));
  child.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  children.push(child);
  return child;
}

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await child.exited;
    }
  }
  fs.rmSync(temp, { recursive: true, force: true });
});

test('Redis killed and restarted from an older save while shrink auto --queue waits: the search resumes and chooses what one process chooses', async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  // RDB only, saved when the test says: the restart loses everything after that save.
  const startRedis = async () => {
    const redis = start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', temp, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no']);
    await waitFor(() => redis.out.includes('Ready to accept connections'), 'redis-server', 30_000);
    return redis;
  };
  let redis = await startRedis();
  const worker = start(process.execPath, [SHRINK_BIN, 'worker', '--queue', url]);
  await waitFor(() => worker.err.includes('listening'), 'the worker to listen', 30_000);
  assert.equal(spawnSync('redis-cli', ['-p', String(port), 'SAVE'], { encoding: 'utf8' }).stdout.trim(), 'OK');

  const data = writeFashionFiles(temp, 300, 0);
  const auto = (out: string, extra: string[] = []) =>
    start(process.execPath, [SHRINK_BIN, 'auto', MLP, '-o', path.join(temp, out), '--data', data.images, '--labels', data.labels, '--max-drop', '1', '--target', 'size', '--json', '--no-progress', ...extra]);
  // The single-process run goes on beside the queued one (--target size does not depend on timing).
  const local = auto('local');
  const queued = auto('queued', ['--queue', url]);
  await waitFor(() => / evaluate started/.test(worker.err), `the worker to start an evaluate job (auto: ${queued.err})`, 30_000);
  redis.kill('SIGKILL');
  await redis.exited;
  await new Promise((r) => setTimeout(r, 500));
  redis = await startRedis();

  assert.equal(await local.exited, 0, local.err);
  assert.equal(await queued.exited, 0, queued.err);
  type AutoReport = { chosen: string; candidates: { name: string; feasible: boolean; bytes: number }[] };
  const one = JSON.parse(local.out) as AutoReport;
  const spread = JSON.parse(queued.out) as AutoReport;
  // The restart was seen, and the lost jobs were added again.
  assert.match(queued.err, /is no longer in Redis \(restarted without it\?\): added again/);
  assert.match(worker.err, /worker: .*ECONNREFUSED/);
  assert.equal(spread.chosen, one.chosen);
  const summary = (r: AutoReport) => r.candidates.map((c) => `${c.name} ${c.feasible} ${c.bytes}`).sort();
  assert.deepEqual(summary(spread), summary(one));
  const names = spread.candidates.map((c) => c.name);
  assert.equal(new Set(names).size, names.length, `each candidate once: ${names.join(', ')}`);
  // Every outcome reached the cache as it arrived, so a rerun resumes from there.
  const cache = JSON.parse(fs.readFileSync(path.join(temp, 'queued', '.shrink-auto-cache.json'), 'utf8')) as Record<string, { name: string }>;
  assert.deepEqual(Object.values(cache).map((c) => c.name).sort(), [...names].sort());

  // A worker told to stop while Redis is away leaves (BullMQ's close alone would wait for Redis for ever).
  redis.kill('SIGKILL');
  await redis.exited;
  worker.kill('SIGTERM');
  const stopped = Date.now();
  assert.equal(await worker.exited, 0, worker.err);
  assert.ok(Date.now() - stopped < 10_000, `the worker took ${Date.now() - stopped} ms to stop`);
  assert.match(worker.err, /worker: Redis is away; leaving without it/);
});
