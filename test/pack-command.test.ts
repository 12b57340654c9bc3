// `shrink pack` and `shrink unpack` as a user runs them: the JSON envelope and the table, the
// byte-identical round trip, and every way a pack can be bad (a flipped byte, a cut file, an
// ONNX file given to unpack, external data given to pack): one line on stderr, exit 1, nothing
// written and no temporary file left. A missing -o is a usage error (exit 2).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { runShrink, spawnShrink } from './helpers/cli.js';
import { externalDataModel } from './helpers/pack-models.js';

const MLP = 'models/fashion-mnist/mlp.onnx';

function folder(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-pack-'));
}

/** One line on stderr, exit 1, and the folder holds exactly `files`. */
function assertFailed(result: { code: number; stderr: string }, pattern: RegExp, dir: string, files: string[]): void {
  assert.equal(result.code, 1, result.stderr);
  assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.deepEqual(fs.readdirSync(dir).sort(), [...files].sort(), 'nothing written, no temporary file left');
}

test('pack then unpack through the CLI gives the same bytes; --json is the common envelope', async () => {
  const dir = folder();
  try {
    const packFile = path.join(dir, 'mlp.shrink');
    const packed = await runShrink(['pack', MLP, '-o', packFile, '--json']);
    assert.equal(packed.code, 0, packed.stderr);
    const report = JSON.parse(packed.stdout);
    assert.equal(report.command, 'pack');
    assert.equal(report.input, MLP);
    assert.equal(report.output, packFile);
    assert.equal(report.size.before, fs.statSync(MLP).size);
    assert.equal(report.size.after, fs.statSync(packFile).size);
    assert.equal(report.size.ratio, Number((report.size.after / report.size.before).toFixed(4)));
    assert.equal(report.verified, true);
    assert.equal(report.tensors, 5);
    assert.ok(report.kinds.float_exponents.packed < report.kinds.float_exponents.bytes / 2);
    assert.ok(report.compared.gzip_9.bytes > report.size.after, 'smaller than gzip -9');
    assert.ok(report.compared.brotli_9.bytes > report.size.after, 'smaller than brotli -9');
    assert.equal(report.per_tensor.length, 5);
    assert.ok(report.environment.shrink);

    const onnxFile = path.join(dir, 'back.onnx');
    const unpacked = await runShrink(['unpack', packFile, '-o', onnxFile, '--json']);
    assert.equal(unpacked.code, 0, unpacked.stderr);
    assert.equal(JSON.parse(unpacked.stdout).size.after, fs.statSync(MLP).size);
    assert.ok(fs.readFileSync(onnxFile).equals(fs.readFileSync(MLP)), 'byte-identical');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the table shows the stream kinds and gzip -9 and brotli beside the pack (a real child process)', () => {
  const dir = folder();
  try {
    const result = spawnShrink(['pack', MLP, '-o', path.join(dir, 'mlp.shrink'), '--no-progress']);
    assert.equal(result.status, 0, result.stderr);
    for (const text of ['skeleton', 'float exponents', 'float mantissas', 'headers', 'gzip -9', 'brotli -9', 'unpacks to the same 941,243 bytes: checked']) assert.ok(result.stdout.includes(text), `'${text}' in\n${result.stdout}`);
    const back = spawnShrink(['unpack', path.join(dir, 'mlp.shrink'), '-o', path.join(dir, 'mlp.onnx')]);
    assert.equal(back.status, 0, back.stderr);
    assert.match(back.stdout, /every checksum matched/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a flipped byte, a cut file or an ONNX file given to unpack: one line, exit 1, nothing written', async () => {
  const dir = folder();
  try {
    const packFile = path.join(dir, 'mlp.shrink');
    assert.equal((await runShrink(['pack', MLP, '-o', packFile, '--no-compare'])).code, 0);
    const pack = fs.readFileSync(packFile);
    const out = path.join(dir, 'out.onnx');

    // A byte in the middle: in a plane stored raw only the CRC sees it, in a coded one the decoder.
    const flipped = Buffer.from(pack);
    flipped[pack.length >> 1] ^= 0x10;
    fs.writeFileSync(path.join(dir, 'flipped.shrink'), flipped);
    assertFailed(await runShrink(['unpack', path.join(dir, 'flipped.shrink'), '-o', out]), /flipped\.shrink: (checksum mismatch in tensor '[^']+' \(corrupt pack\)|corrupt pack: stream \d of \d of tensor '[^']+' \(\w+\) does not decode: )/, dir, ['flipped.shrink', 'mlp.shrink']);
    fs.rmSync(path.join(dir, 'flipped.shrink'));

    fs.writeFileSync(path.join(dir, 'cut.shrink'), pack.subarray(0, pack.length - 1000));
    assertFailed(await runShrink(['unpack', path.join(dir, 'cut.shrink'), '-o', out]), /cut\.shrink: truncated pack: the file ends inside stream \d of \d of tensor '[^']+' \(\d+ bytes needed, \d+ left\)/, dir, ['cut.shrink', 'mlp.shrink']);
    fs.rmSync(path.join(dir, 'cut.shrink'));

    // A header byte: the header checksum names the record.
    const header = Buffer.from(pack);
    header[12] ^= 0x01;
    fs.writeFileSync(path.join(dir, 'header.shrink'), header);
    assertFailed(await runShrink(['unpack', path.join(dir, 'header.shrink'), '-o', out]), /header\.shrink: corrupt pack: the header of the skeleton record fails its checksum/, dir, ['header.shrink', 'mlp.shrink']);
    fs.rmSync(path.join(dir, 'header.shrink'));

    assertFailed(await runShrink(['unpack', MLP, '-o', out]), /mlp\.onnx: not a shrink pack \(bad magic; this looks like an ONNX file/, dir, ['mlp.shrink']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('pack refuses external data and files that are not ONNX in one line; a missing -o is a usage error', async () => {
  const dir = folder();
  try {
    fs.writeFileSync(path.join(dir, 'external.onnx'), externalDataModel());
    assertFailed(await runShrink(['pack', path.join(dir, 'external.onnx'), '-o', path.join(dir, 'x.shrink')]), /external\.onnx: 1 tensor\(s\) keep their data in external files/, dir, ['external.onnx']);
    fs.writeFileSync(path.join(dir, 'notes.json'), '{"not": "a model"}');
    assertFailed(await runShrink(['pack', path.join(dir, 'notes.json'), '-o', path.join(dir, 'x.shrink')]), /notes\.json: this is JSON text, not an ONNX model/, dir, ['external.onnx', 'notes.json']);
    const usage = await runShrink(['pack', MLP]);
    assert.equal(usage.code, 2, usage.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
