// Bad input, end to end: each broken file goes through the real CLI (a child process), which must
// exit 1 with exactly one stderr line naming the file and the problem, no stack trace, and leave
// the folder as it found it. Usage mistakes exit 2. saveModel is driven into a failure half way to
// check that an older model at the destination survives and no temporary or data file is left.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { makeValueInfo } from '../src/ir/value-info.js';
import { type GraphProto, ModelProtoSchema } from '../src/onnx/onnx_pb.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { folderExternalData, saveModel } from '../src/node/model-files.js';
import { REPO_ROOT, spawnShrink } from './helpers/cli.js';
import { REC as REC_FILE } from './helpers/real-models.js';

const REC = path.join(REPO_ROOT, REC_FILE);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bad-input-'));
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** The CLI run inside the scratch folder, so anything it wrote would show there. */
const shrink = (...args: string[]) => spawnShrink(args, { cwd: work });

/** Every file under `dir` with its size and modification time, to prove nothing was written. */
function snapshot(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => {
      const full = path.join(e.parentPath, e.name);
      const s = fs.statSync(full);
      return `${path.relative(dir, full)} ${s.isDirectory() ? 'dir' : s.size} ${s.mtimeMs}`;
    })
    .sort();
}

/** A one-MatMul model with two float weights, big enough to go to external data. */
function tinyModel(): Model {
  const graph = new Graph('tiny');
  graph.inputs = [makeValueInfo('x', { elemType: DataType.FLOAT, shape: ['batch', 64] })];
  graph.outputs = [makeValueInfo('y', { elemType: DataType.FLOAT, shape: ['batch', 64] })];
  const w = new Float32Array(64 * 64).map((_, i) => Math.sin(i));
  const b = new Float32Array(64 * 64).map((_, i) => Math.cos(i));
  graph.addInitializer(Tensor.fromArray('W', DataType.FLOAT, [64, 64], w));
  graph.addInitializer(Tensor.fromArray('B', DataType.FLOAT, [64, 64], b));
  graph.addNode({ opType: 'MatMul', name: 'matmul', inputs: ['x', 'W'], outputs: ['xw'] });
  graph.addNode({ opType: 'MatMul', name: 'matmul_b', inputs: ['xw', 'B'], outputs: ['y'] });
  return new Model(graph, { irVersion: 8, opsetImports: [{ domain: '', version: 17 }] });
}

/** The tiny model's bytes with its graph proto changed by `edit`. */
function editedTinyModel(edit: (graph: GraphProto) => void): Uint8Array {
  const proto = fromBinary(ModelProtoSchema, writeModel(tinyModel()));
  edit(proto.graph!);
  return toBinary(ModelProtoSchema, proto);
}

/** Writes the tiny model with external data into its own folder and returns the model path. */
let folders = 0;
function externalModel(name: string): { file: string; data: string } {
  const dir = path.join(work, `${name}-${++folders}`);
  fs.mkdirSync(dir);
  const file = path.join(dir, 'model.onnx');
  saveModel(tinyModel(), file, { externalData: true });
  return { file, data: `${file}.data` };
}

interface BadCase {
  name: string;
  /** Creates the input and returns the path to hand to the CLI. */
  make(): string;
  /** Words the message must contain (case-insensitive regular expression). */
  says: RegExp;
}

const cases: BadCase[] = [
  {
    name: 'empty file',
    make: () => write('empty.onnx', new Uint8Array(0)),
    says: /file is empty/,
  },
  {
    name: 'truncated real model (first 60%)',
    make: () => {
      const bytes = fs.readFileSync(REC);
      return write('truncated.onnx', bytes.subarray(0, Math.floor(bytes.byteLength * 0.6)));
    },
    says: /not a valid ONNX model.*truncated or corrupt/,
  },
  {
    name: 'real model with a flipped byte in a raw tensor header',
    make: () => {
      const bytes = new Uint8Array(fs.readFileSync(REC));
      // The header of the largest weight: dims 120 (0x08 0x78) and 6625, data_type, name, raw_data.
      const name = Buffer.from('B\rlinear_85.w_0J');
      const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(name);
      assert.ok(at > 0);
      assert.deepEqual([...bytes.subarray(at - 7, at - 5)], [0x08, 120]);
      bytes[at - 6] = 119; // dims [119,6625]: the raw data no longer fits the dims
      return write('flipped.onnx', bytes);
    },
    says: /linear_85\.w_0.*holds 3180000 bytes, dims \[119,6625\] of float32 need 3153500/,
  },
  {
    name: 'random bytes',
    make: () => {
      // A fixed pseudo-random stream (xorshift), so a failure reproduces.
      const bytes = new Uint8Array(4096);
      let s = 0x2545f491;
      for (let i = 0; i < bytes.length; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        bytes[i] = s & 0xff;
      }
      return write('random.onnx', bytes);
    },
    says: /not (a valid|an) ONNX model/,
  },
  {
    name: 'PNG image',
    make: () => write('image.png', pngBytes()),
    says: /this is a PNG image, not an ONNX model/,
  },
  {
    name: 'JSON file',
    make: () => write('config.json', new TextEncoder().encode('{"model_type": "bert", "hidden_size": 768}\n')),
    says: /this is JSON text, not an ONNX model/,
  },
  {
    name: 'text file',
    make: () => write('notes.txt', new TextEncoder().encode('This is not a model.\nJust some words.\n')),
    says: /not (a valid|an) ONNX model/,
  },
  {
    name: 'missing file',
    make: () => path.join(work, 'no-such-model.onnx'),
    says: /no such file/,
  },
  {
    name: 'a folder',
    make: () => {
      fs.mkdirSync(path.join(work, 'a-folder.onnx'));
      return path.join(work, 'a-folder.onnx');
    },
    says: /is a folder/,
  },
  {
    name: 'external data file missing',
    make: () => {
      const { file, data } = externalModel('missing-data');
      fs.rmSync(data);
      return file;
    },
    says: /initializer 'W'.*external data file 'model\.onnx\.data' is missing/,
  },
  {
    name: 'external data truncated',
    make: () => {
      const { file, data } = externalModel('truncated-data');
      const size = fs.statSync(data).size;
      fs.truncateSync(data, size - 100);
      return file;
    },
    says: /initializer 'B'.*external data 'model\.onnx\.data' is truncated/,
  },
  {
    name: 'tensor with unknown data type 99',
    make: () =>
      write(
        'dtype99.onnx',
        editedTinyModel((g) => {
          g.initializer[0].dataType = 99;
        }),
      ),
    says: /initializer 'W': unknown tensor data type 99/,
  },
  {
    name: 'tensor dims that would overflow memory',
    make: () =>
      write(
        'huge-dims.onnx',
        editedTinyModel((g) => {
          g.initializer[0].dims = [1_000_000_000n, 1_000_000_000n, 1_000_000_000n];
        }),
      ),
    says: /initializer 'W'.*dims \[1000000000,1000000000,1000000000\].*more than any model can hold/,
  },
];

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(work, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** A real, minimal 1x1 PNG (signature, IHDR, IDAT, IEND). */
function pngBytes(): Uint8Array {
  return Buffer.from(
    '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
      '1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082',
    'hex',
  );
}

for (const [i, bad] of cases.entries()) {
  test(`inspect rejects ${bad.name}: one line, exit 1, nothing written`, () => {
    const file = bad.make();
    const before = snapshot(work);
    // Every case in one of the two output modes (alternating keeps the suite to seconds).
    const args = i % 2 === 0 ? ['inspect', file] : ['inspect', file, '--json'];
    const run = shrink(...args);
    assert.equal(run.status, 1, `exit code for ${bad.name}: ${run.stderr}`);
    assert.equal(run.stdout, '', 'nothing on stdout');
    const lines = run.stderr.split('\n');
    assert.equal(lines.length, 2, `exactly one line on stderr, got: ${JSON.stringify(run.stderr)}`);
    assert.equal(lines[1], '');
    const line = lines[0];
    assert.ok(line.startsWith(`shrink: ${file}`), `names the file first: ${line}`);
    assert.match(line, bad.says);
    assert.doesNotMatch(line, /\bat .*\.(ts|js):\d+|Error:/, 'no stack or error class');
    assert.deepEqual(snapshot(work), before, 'the folder is unchanged');
  });
}

test('--verbose adds the stack trace; still exit 1', () => {
  const file = path.join(work, 'no-such-model.onnx');
  const run = shrink('inspect', file, '--verbose');
  assert.equal(run.status, 1);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines[0], `shrink: ${file}: no such file`);
  assert.ok(lines.length > 2, run.stderr);
  assert.ok(lines.slice(1).every((l) => /^\s+at /.test(l)), run.stderr);
});

test('usage errors exit 2 with one line', () => {
  for (const [args, says] of [
    [['inspect', '--bogus'], /unknown option '--bogus'/],
    [['nosuchcommand'], /unknown command 'nosuchcommand'/],
    [['inspect', 'a.onnx', 'b.onnx'], /too many arguments/],
  ] as const) {
    const run = shrink(...args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^shrink: /);
    assert.match(run.stderr, says);
  }
});

/** An external-data model whose second tensor fails to read, as a disk error half way would. */
function modelFailingOnSecondTensor(): Model {
  const { file } = externalModel('source-for-save');
  const folder = folderExternalData(path.dirname(file));
  let reads = 0;
  return readModel(fs.readFileSync(file), {
    source: file,
    externalData: {
      size: folder.size,
      read: (location, offset, length) => {
        reads += 1;
        if (reads === 2) throw new Error(`simulated read error in '${location}' at ${offset}`);
        return folder.read(location, offset, length);
      },
    },
  });
}

test('saveModel failing half way keeps the older model and leaves no temporary or data files', () => {
  const dir = path.join(work, 'save-target');
  fs.mkdirSync(dir);
  const target = path.join(dir, 'out.onnx');
  const older = new TextEncoder().encode('older model bytes');
  fs.writeFileSync(target, older);

  // External data: the first tensor is already in a temporary .data file when the second fails.
  const model = modelFailingOnSecondTensor();
  assert.throws(() => saveModel(model, target, { externalData: true }), /simulated read error/);
  assert.deepEqual(fs.readdirSync(dir), ['out.onnx']);
  assert.deepEqual(new Uint8Array(fs.readFileSync(target)), older);

  // Inline: a tensor whose bytes cannot be read fails before anything replaces the old file.
  const inline = modelFailingOnSecondTensor();
  assert.throws(() => saveModel(inline, target, { externalData: false }), /simulated read error/);
  assert.deepEqual(fs.readdirSync(dir), ['out.onnx']);
  assert.deepEqual(new Uint8Array(fs.readFileSync(target)), older);

  // And a save that succeeds does replace it, with the data file beside it.
  saveModel(tinyModel(), target, { externalData: true });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['out.onnx', 'out.onnx.data']);
  const reread = readModel(fs.readFileSync(target), { source: target, externalData: folderExternalData(dir) });
  assert.deepEqual([...reread.graph.initializers[1].data().subarray(0, 3)], [...new Float32Array([1, Math.cos(1), Math.cos(2)])]);
});
