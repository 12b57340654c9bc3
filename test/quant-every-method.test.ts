// Every quantization method on every real model (issue 4's first acceptance item): each result
// loads and runs in onnxruntime-node and onnxruntime-web (wasm) with its outputs compared to
// float32, or the method says why it does not apply. The table is printed; accuracy floors on real
// inputs live in the per-method tests.
import { cosineSimilarity as cosine } from '../src/eval/metrics.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataType } from '../src/ir/dtype.js';
import type { Tensor } from '../src/ir/tensor.js';
import { tensorSamples } from '../src/eval/samples.js';
import { QUANTIZE_METHODS, type QuantizeSettings } from '../src/methods/quantize/registry.js';
import { buildQuantizeReport } from '../src/pipeline/quantize-report.js';
import { verdictOf } from '../src/pipeline/verdict.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from '../src/node/ort-web.js';
import { writeModel } from '../src/onnx/model-io.js';
import { runPass } from '../src/pipeline/pass.js';
import { cropImage, detInput, loadOcrFixtures, loadOcrLines, recInput } from './helpers/ocr-lines.js';
import { REAL_MODELS, type RealModelKey } from './helpers/real-models.js';
import { runModel } from './helpers/run-model.js';


/** Lowest cosine over the float outputs. */
function lowestCosine(reference: Tensor[], candidate: Tensor[]): number {
  let lowest = 1;
  reference.forEach((r, i) => {
    if (r.dataType !== DataType.FLOAT) return;
    lowest = Math.min(lowest, cosine(r.data() as Float32Array, candidate[i].data() as Float32Array));
  });
  return lowest;
}

/**
 * Real inputs for the OCR models (a crop of the rendered page for det, a rendered line for rec, its
 * first 192 columns for cls): on noise, det's probability map is all near zero and comparing it
 * says nothing. The VAD models take their standard feeds (a 32 ms chunk and a state).
 */
async function inputsFor(key: RealModelKey): Promise<() => Tensor[]> {
  const real = REAL_MODELS.find((m) => m.key === key) as (typeof REAL_MODELS)[number];
  if (key !== 'det' && key !== 'rec' && key !== 'cls') return real.feeds;
  const { page } = await loadOcrFixtures();
  const lines = await loadOcrLines();
  const line = recInput([lines.find((l) => l.inputWidth >= 192) ?? lines[0]]);
  if (key === 'det') return () => [cropImage(detInput(page), 0, 0, 320, 320)];
  if (key === 'rec') return () => [line];
  return () => [cropImage(line, 0, 0, 48, 192)];
}

test('every method on every real model: runs in onnxruntime-node and -web, or says why it does not apply', { timeout: 600_000 }, async () => {
  const web = await loadWebOrt();
  const rows: string[] = [];
  for (const real of REAL_MODELS) {
    const inputs = await inputsFor(real.key);
    const reference = await runModel(real.file, inputs());
    for (const method of QUANTIZE_METHODS) {
      const model = loadModel(real.file);
      const feeds = inputs();
      const settings: QuantizeSettings = method.name === 'static-int8' ? { calibration: tensorSamples([Object.fromEntries(feeds.map((t) => [t.name, t]))], 'standard feeds') } : {};
      let outcome: Awaited<ReturnType<typeof runPass>>;
      try {
        outcome = await runPass(method.pass as never, model, method.options(settings) as never, { ort: nodeOrt });
      } catch (error) {
        // A method may refuse a whole model, with a sentence saying so (bf16 below opset 13).
        const message = (error as Error).message;
        assert.match(message, /does not apply/, `${real.name} / ${method.name}: ${message}`);
        rows.push(`${real.name} / ${method.name}: does not apply (${message})`);
        continue;
      }
      const report = buildQuantizeReport({ method: method.name, bytesBefore: 1, bytesAfter: 1, outcome, verdict: verdictOf(undefined) });
      const changed = report.nodes.quantized + report.weights.tensors;
      if (changed === 0) {
        const why = report.warnings.find((w) => w.code === 'nothing-quantized');
        assert.ok(why !== undefined, `${real.name} / ${method.name}: nothing changed and no reason given`);
        rows.push(`${real.name} / ${method.name}: does not apply (${why.message})`);
        continue;
      }
      const bytes = writeModel(model);
      const inNode = await runModel(bytes, feeds);
      const inWeb = await runModel(bytes, feeds, { threads: 1, executionProviders: WASM_EXECUTION_PROVIDERS }, web);
      const node = lowestCosine(reference, inNode);
      const webCosine = lowestCosine(reference, inWeb);
      // Fidelity is reported (1-bit and 2-bit weights are expected to hurt a model trained in
      // float); what must hold is that the file runs, to finite outputs, alike in both runtimes.
      // Alike, not equal: a last-bit difference in a float op can move a QuantizeLinear across a
      // rounding step, and a deep QDQ network carries that on (rec over every op type: ~0.97).
      const agreement = lowestCosine(inNode, inWeb);
      assert.ok(Number.isFinite(node) && Number.isFinite(webCosine), `${real.name} / ${method.name}: cosine ${node} (node), ${webCosine} (web)`);
      assert.ok(agreement > 0.95 && Math.abs(node - webCosine) < 0.05, `${real.name} / ${method.name}: cosine vs fp32 ${node} (node), ${webCosine} (web); web vs node ${agreement}`);
      rows.push(`${real.name} / ${method.name}: ${report.nodes.quantized} nodes, ${report.weights.tensors} weights; cosine vs fp32 ${node.toFixed(4)} (web ${webCosine.toFixed(4)}, web vs node ${agreement.toFixed(4)})`);
    }
  }
  console.log(rows.map((r) => `# ${r}`).join('\n'));
  assert.equal(rows.length, REAL_MODELS.length * QUANTIZE_METHODS.length);
});
