// Mixed precision from the per-layer report (issue 4, "Per-layer" acceptance): PP-OCRv4 det is
// quantized with static int8 (calibrated on crops of the rendered page, as
// test/quant-static-int8.test.ts does), compared with float32 layer by layer on the full page, and
// re-quantized with a --config that keeps the worst layers in fp32 (parsed by the config module,
// turned into settings and method options exactly as `shrink quantize --config` does). The test
// checks that the worst layers are named, map to nodes of the quantized graph, and are left float
// by the second run; it prints output SQNR and cosine before and after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Model } from '../src/ir/model.js';
import { compareModels } from '../src/eval/compare.js';
import type { EvalReport } from '../src/eval/eval-report.js';
import { type SampleSource, tensorSamples } from '../src/eval/samples.js';
import { parseQuantizeConfig, settingsFromConfig } from '../src/methods/quantize/config.js';
import type { DetailedPassResult } from '../src/methods/quantize/details.js';
import { quantizeMethod } from '../src/methods/quantize/registry.js';
import { loadModel } from '../src/node/model-files.js';
import { nodeOrt } from '../src/node/ort-node.js';
import { cropImage as crop, detInput, loadOcrFixtures } from './helpers/ocr-lines.js';
import { DET } from './helpers/real-models.js';



/** Quantizes DET through the method registry with the settings a --config file gives. */
async function quantizeWithConfig(config: string, calibration: SampleSource): Promise<{ model: Model; report: DetailedPassResult }> {
  const method = quantizeMethod('static-int8');
  const settings = settingsFromConfig(parseQuantizeConfig(config, 'mixed.json'), 'static-int8', { calibration, calibrator: 'percentile', perChannel: true }, 'mixed.json');
  const model = loadModel(DET);
  const pass = method.pass as unknown as { run(m: Model, o: unknown, ctx: { ort: typeof nodeOrt }): Promise<DetailedPassResult> };
  const report = await pass.run(model, method.options(settings), { ort: nodeOrt });
  return { model, report };
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const outputOf = (r: EvalReport) => Object.values(r.outputs)[0];

test('PP-OCRv4 det static int8: per-layer names the worst layers; a config keeping them in fp32 leaves them float; fidelity before/after', async () => {
  const { page } = await loadOcrFixtures();
  const full = detInput(page);
  const calibration = tensorSamples([crop(full, 0, 0, 320, 320), crop(full, 0, 320, 320, 320), crop(full, 320, 0, 320, 320), crop(full, 320, 320, 320, 320)].map((x) => ({ x })), 'page crops');
  const evaluation = tensorSamples([{ x: full }], 'page');

  const before = await quantizeWithConfig('{}', calibration);
  const perLayer = await compareModels(nodeOrt, loadModel(DET), before.model, evaluation, { perLayer: true, threads: 2 });
  const layers = perLayer.layers ?? [];
  assert.ok(layers.length > 150, `${layers.length} layers compared`);
  // The worst layers in isolation (computed from float32 activations): the error each makes itself.
  const worst = layers.slice(0, 5);
  assert.ok(worst.every((l) => typeof l.isolated_sqnr_db === 'number'));
  for (let i = 1; i < worst.length; i++) assert.ok((worst[i - 1].isolated_sqnr_db as number) <= (worst[i].isolated_sqnr_db as number), 'ranked by isolated SQNR');
  // Each names a node of the quantized graph (the producer of the compared value).
  const names = worst.map((l) => before.model.graph.producer(l.candidate_value ?? l.value)?.name ?? '');
  assert.ok(names.every((n) => n !== ''), names.join(', '));

  const config = JSON.stringify({ nodes: names.map((n) => ({ match: `^${escapeRegex(n)}$`, precision: 'fp32' })) });
  const after = await quantizeWithConfig(config, calibration);
  const excluded = after.report.details?.nodes.filter((n) => !n.quantized && n.reason === 'excluded').map((n) => n.node) ?? [];
  assert.deepEqual([...excluded].sort(), [...names].sort());
  assert.equal(after.report.stats.nodesQuantized, before.report.stats.nodesQuantized - names.length);
  // The excluded Convs keep float weights: no DequantizeLinear feeds their weight input.
  for (const name of names) {
    const node = after.model.graph.nodes.find((n) => n.name === name);
    assert.ok(node !== undefined, name);
    if (node.opType === 'Conv') assert.notEqual(after.model.graph.producer(node.inputs[1])?.opType, 'DequantizeLinear', `${name} weight`);
  }
  const fidelity = await compareModels(nodeOrt, loadModel(DET), after.model, evaluation, { threads: 2 });
  const a = outputOf(perLayer);
  const b = outputOf(fidelity);
  console.log(
    `PP-OCRv4 det static int8 (percentile, per-channel), probability map vs fp32 on the page: SQNR ${Number(a.sqnr_db).toFixed(2)} dB, cosine ${Number(a.cosine).toFixed(4)}; ` +
      `worst layers ${worst.map((l, i) => `${names[i]} (${l.op}, SQNR ${Number(l.sqnr_db).toFixed(1)} dB, alone ${Number(l.isolated_sqnr_db).toFixed(1)} dB)`).join(', ')}; ` +
      `kept in fp32: SQNR ${Number(b.sqnr_db).toFixed(2)} dB, cosine ${Number(b.cosine).toFixed(4)} (${(Number(b.sqnr_db) - Number(a.sqnr_db)).toFixed(2)} dB)`,
  );
  assert.ok(typeof a.sqnr_db === 'number' && typeof b.sqnr_db === 'number');
});
