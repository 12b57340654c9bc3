// Static int8 on PP-OCRv4 rec, the acceptance check of issue 4: the model (opset 9) is upgraded to
// opset 13 (upgrade-opset.ts), calibrated on a third of the rendered text lines, and must keep the
// greedy-CTC text identical to float32 on at least 95% of all 60 lines. The configuration that
// passes quantizes the Conv layers only; quantizing every op type is measured and printed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Sample, SampleSource } from '../src/eval/samples.js';
import type { CalibratorName } from '../src/methods/quantize/calibration/registry.js';
import { quantizeStaticInt8 } from '../src/methods/quantize/static-int8.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { writeModel } from '../src/onnx/model-io.js';
import { agreement, loadOcrLines, type OcrLine, readLines, recInput } from './helpers/ocr-lines.js';
import { REC } from './helpers/real-models.js';

/** Every third line, one sample each (their widths differ, so they do not stack). */
function calibrationLines(lines: readonly OcrLine[]): SampleSource {
  const chosen = lines.filter((_, i) => i % 3 === 0);
  return {
    inputs: ['x'],
    count: chosen.length,
    description: 'rendered text lines',
    async *[Symbol.asyncIterator]() {
      for (const [index, line] of chosen.entries()) yield { index, where: `line ${line.key}`, inputs: { x: recInput([line]) } } satisfies Sample;
    },
  };
}

async function quantizedTexts(lines: readonly OcrLine[], options: { calibrator: CalibratorName; opTypes?: string[]; int8HardSigmoid?: boolean }): Promise<{ texts: string[]; warnings: string[]; nodes: number; scalarOpsExact: number }> {
  const model = loadModel(REC);
  const report = await quantizeStaticInt8(model, { calibration: calibrationLines(lines), perChannel: true, threads: 2, ...options }, { ort: nodeOrt });
  assert.equal(model.opset(''), 13);
  return { texts: await readLines(writeModel(model), lines), warnings: report.warnings.map((w) => w.code), nodes: report.stats.nodesQuantized, scalarOpsExact: report.stats.scalarOpsExact };
}

// Measured (minmax, per-channel, 20 calibration lines): Conv only 100%; every op type (Conv, MatMul,
// Add, Mul, pooling, Concat) 95.0% since Add/Mul with a vector constant stay float (91.7% when
// their biases were quantized per tensor); symmetric activations 85%; entropy Conv-only 91.7%.
test('PP-OCRv4 rec static int8 (Conv weights and activations, minmax, per-channel) keeps the greedy-CTC text of at least 95% of the 60 rendered lines', { timeout: 900_000 }, async () => {
  const lines = await loadOcrLines();
  const fp32 = await readLines(REC, lines);
  const rate = async (label: string, options: { calibrator: CalibratorName; opTypes?: string[]; int8HardSigmoid?: boolean }): Promise<number> => {
    const { texts, warnings, nodes, scalarOpsExact } = await quantizedTexts(lines, options);
    assert.ok(warnings.includes('opset-upgraded'), warnings.join());
    // PPLCNetV3's affine blocks (a scalar Mul and Add after each hard-swish): their output grids come
    // from their inputs (scalar-op-params.ts) when every op type is quantized (65 of them with the
    // bench's calibration; one whose shifted zero point leaves the codes keeps its own).
    if (options.opTypes === undefined) assert.ok(scalarOpsExact >= 60, `${label}: ${scalarOpsExact} scalar ops exact`);
    const same = agreement(texts, fp32);
    const changed = texts.flatMap((t, i) => (t === fp32[i] ? [] : [`'${fp32[i]}' -> '${t}'`]));
    console.log(`# rec static int8 (${label}, ${nodes} nodes): same text as float32 on ${(same * 100).toFixed(1)}% of ${lines.length} lines${changed.length > 0 ? `; changed: ${changed.slice(0, 6).join(', ')}` : ''}`);
    return same;
  };
  const convOnly = await rate('Conv only, minmax', { calibrator: 'minmax', opTypes: ['Conv'] });
  const everyOp = await rate('every op type, minmax, HardSigmoid float', { calibrator: 'minmax', int8HardSigmoid: false });
  const everyOpDefault = await rate('every op type, minmax, HardSigmoid int8 (the default)', { calibrator: 'minmax' });
  assert.ok(convOnly >= 0.95, `Conv-only static int8 agrees with float32 on ${convOnly} of the lines`);
  // Measured 95.0% (57 of 60) with each hard-swish gate in float before the scalar ops were exact,
  // 93.3% (56) after; asserted with a line of slack, since one line flipping under a different
  // onnxruntime build should not fail CI.
  assert.ok(everyOp >= 0.91, `static int8 over every op type (gates float) agrees with float32 on ${everyOp} of the lines`);
  // The default (int8 gates, qdq-hardsigmoid.ts: the speed of det): 90.0% (54 of 60) when the
  // scalar Mul/Add of the affine blocks re-rounded on grids of their own, 95.0% (57) with their
  // grids from their inputs; a line of slack, so that losing the rule (90%) fails.
  assert.ok(everyOpDefault >= 0.93, `static int8 over every op type (gates int8) agrees with float32 on ${everyOpDefault} of the lines`);
});
