// What replaces a removed channel, untrained (issue 12): PP-OCRv4 rec pruned at once by the
// prune-ocr-rec bench's plan ('protected-global-activation': the stem, first stage and attention
// heads kept whole, the rest ranked globally by mean |activation|, no group above 50%) at several
// shares, with the removed channels' means folded into the readers' biases ('mean', the default)
// against their least-squares fits from the kept channels folded into the readers' weights and
// biases ('lstsq'), both measured on the same 64 training lines. Read: tuning lines (rendered
// training lines 1000-1199, never trained on: what chooses) and the 200 held-out lines (only
// measured), as the original reads them.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { DataType } from '../src/ir/dtype.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { prune } from '../src/pipeline/prune.js';
import { arraySamples } from '../src/pipeline/prune-data.js';
import { OCR } from './lib/feeds.js';
import { machineInfo } from './lib/machine.js';
import { characterAgreement, ensureRecCorpus, loadRecSet, REC_CORPUS, readRecSet, recRange, recSlice, sameLines, sameLinesIgnoringSpaces } from './lib/rec-corpus.js';
import { round } from './lib/stats.js';
import { PROTECTED } from './prune-ocr-rec.js';
import type { Bench, BenchOutput } from './run.js';

const SHARES = [0.05, 0.1, 0.2, 0.3];
const MODES = ['mean', 'lstsq', 'lstsq+reconstruct'] as const;
const CALIBRATION_LINES = 64;
const TRAIN_CORPUS = `${REC_CORPUS}-1200`;

interface Row {
  share: number;
  compensation: (typeof MODES)[number];
  removed: number;
  tuning_lines: number;
  tuning_characters: number;
  lines: number;
  lines_ignoring_spaces: number;
  characters: number;
  prune_seconds: number;
}

export const pruneOcrRecCompensationBench: Bench = {
  name: 'prune-ocr-rec-compensation',
  async run(log): Promise<BenchOutput> {
    const machine = machineInfo();
    ensureRecCorpus(REC_CORPUS, log);
    ensureRecCorpus(TRAIN_CORPUS, log, { train: 1200 });
    const rec = loadModel(join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'));
    const rendered = await loadRecSet('train', TRAIN_CORPUS);
    const tuning = recRange(rendered, 1000, 200);
    const held = await loadRecSet('heldout');
    const [tuningReference, reference] = [await readRecSet(nodeOrt, rec, tuning), await readRecSet(nodeOrt, rec, held)];
    const calibration = arraySamples({ x: { data: recSlice(rendered, CALIBRATION_LINES).x, sampleDims: [3, 48, 320], dataType: DataType.FLOAT } }, 'training lines');
    const rows: Row[] = [];
    for (const share of SHARES) {
      for (const compensation of MODES) {
        const started = performance.now();
        const how = compensation === 'lstsq+reconstruct' ? { compensation: 'lstsq' as const, reconstruct: true } : { compensation };
        const { model, report } = await prune(rec, { method: 'channels', importance: 'activation', sparsity: share, scope: 'global', maxRatio: 0.5, layerRatios: PROTECTED, inputShapes: { x: [1, 3, 48, 320] }, calibration, ...how }, { ort: nodeOrt, threads: 2 });
        const seconds = round((performance.now() - started) / 1000);
        const bytes = writeModel(model);
        const [tuned, reading] = [await readRecSet(nodeOrt, bytes, tuning), await readRecSet(nodeOrt, bytes, held)];
        const removed = (report.groups ?? []).reduce((n, g) => n + g.channels_before - g.channels_after, 0);
        const row: Row = {
          share,
          compensation,
          removed,
          tuning_lines: round(100 * sameLines(tuningReference.texts, tuned.texts)),
          tuning_characters: Number((100 * characterAgreement(tuningReference.texts, tuned.texts)).toFixed(2)),
          lines: round(100 * sameLines(reference.texts, reading.texts)),
          lines_ignoring_spaces: round(100 * sameLinesIgnoringSpaces(reference.texts, reading.texts)),
          characters: Number((100 * characterAgreement(reference.texts, reading.texts)).toFixed(2)),
          prune_seconds: seconds,
        };
        rows.push(row);
        log(`${share} ${compensation}: tuning ${row.tuning_lines}% (${row.tuning_characters}% of characters), held-out ${row.lines}% (${row.characters}%), ${seconds} s`);
      }
    }
    const json = { machine, plan: 'protected-global-activation', calibration_lines: CALIBRATION_LINES, load_after: round(loadavg()[0]), rows };
    const markdown = [
      '# PP-OCRv4 rec pruned untrained: mean against least-squares compensation, and reconstruction',
      '',
      `${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ${machine.date}, load ${machine.loadAverage} at the start, ${json.load_after} at the end (prune times are rough).`,
      '',
      "The prune-ocr-rec bench's plan ('protected-global-activation': `--scope global --max-ratio 0.5 --importance activation`, Conv.0-6 and the attention heads kept whole) at once, no training, at each share of the 4,948 prunable channels. `mean`: each removed channel's mean over 64 training lines folded into the biases of the layers reading it; `lstsq` (`--compensation lstsq`): its ridge least-squares fit from the channels kept in the same activation (256 positions a line, damping 1e-3 of the mean variance) folded into those layers' weights and biases; `lstsq+reconstruct` (`--reconstruct`): then, with the removed channels at zero, every MatMul/Gemm/Conv of group 1 refitted by least squares (bias included, damping 0.01) to the original's outputs of that layer on the same 64 lines, in rounds by depth. Lines identical: greedy-CTC text equal to the original's; characters: 1 - edit distance / the longer line, summed. Tuning lines: rendered training lines 1000-1199 (never trained on); held-out: 200 lines in other fonts, texts and seed, only measured.",
      '',
      '| share | compensation | channels removed | tuning lines identical | tuning characters | held-out lines identical | ignoring spaces | characters | prune s |',
      '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${100 * r.share}% | ${r.compensation} | ${r.removed} | ${r.tuning_lines}% | ${r.tuning_characters}% | ${r.lines}% | ${r.lines_ignoring_spaces}% | ${r.characters}% | ${r.prune_seconds} |`),
      '',
    ].join('\n');
    return { json, markdown };
  },
};
