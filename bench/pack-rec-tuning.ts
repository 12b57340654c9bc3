// Chooses among PP-OCRv4 rec packs (bench pack-rec with PACK_REC_SAVE=DIR) on a tuning split that
// no candidate trained on: lines FROM-TO of a corpus (default 1,000 lines in the training fonts
// from another seed: scripts/make-rec-corpus.ts --dir bench/work/rec-tune-29 --train 1000
// --train-seed 29), read as the original reads them; the held-out lines beside, for the record.
// A pack list a.shrink+b.shrink averages the float tensors of packs that share their codes.
// usage: [TUNE=0-999] [CORPUS=bench/work/rec-tune-29] node --import tsx bench/pack-rec-tuning.ts PACK...
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../src/ir/tensor.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { readModel, writeModel } from '../src/onnx/model-io.js';
import { unpack } from '../src/onnx/pack-decode.js';
import { OCR } from './lib/feeds.js';
import { loadRecSet, readRecSet, recRange, sameLines, sameLinesIgnoringSpaces } from './lib/rec-corpus.js';

function soup(files: string[]): Uint8Array {
  const models = files.map((f) => readModel(unpack(readFileSync(f))));
  if (models.length === 1) return writeModel(models[0]);
  const [base, ...rest] = models;
  for (const [i, t] of base.graph.initializers.entries()) {
    const others = rest.map((m) => m.graph.initializers.find((u) => u.name === t.name) as Tensor);
    const a = t.data();
    if (!(a instanceof Float32Array)) {
      if (others.some((o) => { const b = o.data(); return b.length !== a.length || b.some((v: number | bigint, k: number) => v !== a[k]); })) throw new Error(`${t.name}: integers differ (codes not shared)`);
      continue;
    }
    const sum = Float64Array.from(a);
    for (const o of others) (o.data() as Float32Array).forEach((v, k) => (sum[k] += v));
    base.graph.replaceInitializer(i, Tensor.fromArray(t.name, t.dataType, t.dims, Float32Array.from(sum, (v) => v / models.length)));
  }
  return writeModel(base);
}

const [from, to] = (process.env.TUNE ?? '0-999').split('-').map(Number);
const corpus = process.env.CORPUS ?? 'bench/work/rec-tune-29';
const rec = loadModel(join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'));
const all = await loadRecSet('train', corpus);
const sets = { [`tuning ${from}-${to}`]: recRange(all, from, to - from + 1), heldout: await loadRecSet('heldout', corpus) };
const refs: Record<string, string[]> = {};
for (const [name, set] of Object.entries(sets)) refs[name] = (await readRecSet(nodeOrt, rec, set, 1)).texts;
for (const arg of process.argv.slice(2)) {
  const bytes = soup(arg.split('+'));
  const parts = [arg];
  for (const [name, set] of Object.entries(sets)) {
    const got = (await readRecSet(nodeOrt, bytes, set, 1)).texts;
    parts.push(`${name}: ${(100 * sameLines(refs[name], got)).toFixed(2)}% (${(100 * sameLinesIgnoringSpaces(refs[name], got)).toFixed(2)}% ignoring spaces)`);
  }
  console.log(parts.join(' | '));
}
