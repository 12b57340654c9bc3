// Runs the benchmarks and writes their results to bench/results/<name>.json and <name>.md, which
// are committed so that a change in speed shows up in review.
// Usage: npm run bench            (all)
//        npm run bench -- codec   (the named ones)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { autoBench } from './auto.js';
import { autoDetBench } from './auto-det.js';
import { autoQueueBench } from './auto-queue.js';
import { cliStartupBench } from './cli-startup.js';
import { codecBench } from './codec.js';
import { decoderBench } from './decoder.js';
import { deepCompressionBench, deepCompressionMnistBench } from './deep-compression.js';
import { detPruneInt8Bench } from './det-prune-int8.js';
import { gptqLayersBench } from './gptq-layers.js';
import { largeModelsBench } from './large-models.js';
import { lowRankBench } from './lowrank.js';
import { optimizeBench } from './optimize.js';
import { packBench } from './pack.js';
import { packRecBench } from './pack-rec.js';
import { pruneBench } from './prune.js';
import { pruneHeadsBench } from './prune-heads.js';
import { pruneOcrDetBench } from './prune-ocr.js';
import { pruneOcrRecBench } from './prune-ocr-rec.js';
import { pruneOcrRecCompensationBench } from './prune-ocr-rec-compensation.js';
import { pruneOneShotBench } from './prune-one-shot.js';
import { qatStaticDetBench } from './qat-static-det.js';
import { detCalibrationSets8Bench, detCalibrationSetsBench } from './det-calibration-sets.js';
import { recFloatPrefixBench } from './rec-float-prefix.js';
import { qatStaticRecBench } from './qat-static-rec.js';
import { quantizeGptqBench } from './quantize-gptq.js';
import { quantizeKernelsBench } from './quantize-kernels.js';
import { quantizeDynamicBench, quantizeDynamicBertBench } from './quantize-dynamic.js';
import { quantizeStaticBench } from './quantize-static.js';
import { quantizeStaticCnnRecBench } from './quantize-static-cnn-rec.js';
import { quantizeStaticCnnBench } from './quantize-static-cnn.js';
import { quantizeSmoothBiasBench } from './quantize-smooth-bias.js';
import { trainBench } from './train.js';
import { trainSpeedBench } from './train-speed.js';

export interface BenchOutput {
  json: unknown;
  markdown: string;
}

export interface Bench {
  name: string;
  run(log: (line: string) => void): Promise<BenchOutput>;
}

/** Every benchmark, listed here (no discovery by file name, so a bench is found by reading this). */
const BENCHES: Bench[] = [codecBench, autoBench, autoQueueBench, autoDetBench, optimizeBench, quantizeDynamicBench, quantizeDynamicBertBench, quantizeStaticBench, quantizeStaticCnnRecBench, quantizeStaticCnnBench, trainBench, trainSpeedBench, largeModelsBench, cliStartupBench, pruneBench, pruneHeadsBench, pruneOneShotBench, pruneOcrRecBench, pruneOcrRecCompensationBench, pruneOcrDetBench, quantizeGptqBench, gptqLayersBench, quantizeKernelsBench, lowRankBench, packBench, packRecBench, deepCompressionBench, deepCompressionMnistBench, quantizeSmoothBiasBench, decoderBench, qatStaticRecBench, qatStaticDetBench, detPruneInt8Bench, detCalibrationSetsBench, detCalibrationSets8Bench, recFloatPrefixBench];

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !BENCHES.some((b) => b.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown bench ${unknown.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}\n`);
    process.exit(2);
  }
  const results = path.join(import.meta.dirname, 'results');
  fs.mkdirSync(results, { recursive: true });
  for (const bench of BENCHES) {
    if (wanted.length > 0 && !wanted.includes(bench.name)) continue;
    const log = (line: string) => process.stderr.write(`[${bench.name}] ${line}\n`);
    const started = performance.now();
    const output = await bench.run(log);
    fs.writeFileSync(path.join(results, `${bench.name}.json`), `${JSON.stringify(output.json, null, 2)}\n`);
    fs.writeFileSync(path.join(results, `${bench.name}.md`), output.markdown);
    process.stdout.write(output.markdown);
    log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s; results in ${path.relative(process.cwd(), results)}/`);
  }
}

await main();
