// Gemm -> MatMulNBits + Add against onnxruntime: tiny Gemms with transB 0 and 1, alpha, beta and
// biases of every broadcast shape are converted; the packed weight is decoded here from the
// contrib-op doc, and onnxruntime's output must equal A @ decoded + beta * C computed in JS, with
// the decoded weight close to alpha * B'. Then weight-only int4 picks this form below opset 21.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { GraphBuilder, buildModel } from '../src/ir/builder.js';
import { constantValue } from '../src/ir/constants.js';
import { DataType } from '../src/ir/dtype.js';
import type { Graph } from '../src/ir/graph.js';
import type { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { unpackRowsRef } from '../src/kernels/pack.js';
import { quantizeGemms } from '../src/methods/quantize/gemm-nbits.js';
import { quantizeWeightsOnly } from '../src/methods/quantize/weight-only.js';
import { floatsOf, pseudoRandom } from './helpers/tensors.js';
import { runModel } from './helpers/run-model.js';

const M = 5;


/** B' [K, N] rebuilt from the MatMulNBits node: (code - zero point) * scale per block along K. */
function decode(graph: Graph): Float32Array {
  const node = graph.nodes.find((n) => n.opType === 'MatMulNBits');
  assert.ok(node !== undefined, graph.nodes.map((n) => n.opType).join(' '));
  const [K, N, bits, block] = ['K', 'N', 'bits', 'block_size'].map((a) => node.attrInt(a, 0));
  const nBlocks = Math.ceil(K / block);
  const codes = unpackRowsRef(constantValue(graph, node.inputs[1])!.bytes(), N, nBlocks * block, bits as 4, false);
  const scales = floatsOf(graph, node.inputs[2]);
  const zeroName = node.inputs[3];
  const zeroTensor = zeroName === undefined ? undefined : constantValue(graph, zeroName);
  const zeros =
    zeroName === undefined ? new Array<number>(N * nBlocks).fill(2 ** (bits - 1))
    : zeroTensor?.dataType === DataType.UINT8 ? unpackRowsRef(zeroTensor.bytes(), N, nBlocks, bits as 4, false)
    : Array.from(floatsOf(graph, zeroName));
  const w = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
    const b = n * nBlocks + Math.floor(k / block);
    w[k * N + n] = (codes[n * nBlocks * block + k] - zeros[b]) * scales[b];
  }
  return w;
}

interface GemmCase {
  K: number;
  N: number;
  transB: boolean;
  alpha: number;
  beta: number;
  /** Shape of C, or undefined for no bias; 'input' feeds C at run time ([N]). */
  bias?: number[] | 'input';
}

function gemmModel(c: GemmCase, w: Float32Array, bias: Float32Array, opset = 13): Model {
  const b = new GraphBuilder();
  const a = b.input('A', DataType.FLOAT, [M, c.K]);
  const weight = b.tensor(Tensor.fromArray('W', DataType.FLOAT, c.transB ? [c.N, c.K] : [c.K, c.N], w));
  const inputs = [a, weight];
  if (c.bias === 'input') inputs.push(b.input('C', DataType.FLOAT, [c.N]));
  else if (c.bias !== undefined) inputs.push(b.tensor(Tensor.fromArray('C', DataType.FLOAT, c.bias, bias.subarray(0, c.bias.reduce((x, y) => x * y, 1)))));
  b.node('Gemm', inputs, [attr.int('transB', c.transB ? 1 : 0), attr.float('alpha', c.alpha), attr.float('beta', c.beta)], { outputs: ['Y'], name: 'gemm' });
  b.output('Y', DataType.FLOAT, [M, c.N]);
  return buildModel(b.graph, [{ domain: '', version: opset }]);
}

test('Gemm -> MatMulNBits + Add: transB 0/1, alpha, beta, biases [N], [1,N], [M,N], run-time C and none equal A @ dequant + beta * C in onnxruntime', async () => {
  const cases: GemmCase[] = [
    { K: 64, N: 24, transB: false, alpha: 1, beta: 1, bias: [24] },
    { K: 64, N: 24, transB: true, alpha: 0.5, beta: 2, bias: [1, 24] },
    { K: 48, N: 8, transB: true, alpha: -1.5, beta: 0.25, bias: [M, 8] },
    { K: 40, N: 16, transB: false, alpha: 2, beta: 1 },
    { K: 32, N: 16, transB: true, alpha: 1, beta: 3, bias: 'input' },
    { K: 32, N: 16, transB: false, alpha: 0.75, beta: 0, bias: [16] },
  ];
  const lines: string[] = [];
  for (const [i, c] of cases.entries()) {
    for (const variant of [{ symmetric: true, rounding: 'rtn', scaleType: 'float32' }, { symmetric: false, rounding: 'hqq', scaleType: 'float16', zeroPointType: 'float' }] as const) {
      const w = pseudoRandom(c.K * c.N, 10 + i, -0.2, 0.2);
      const bias = pseudoRandom(M * c.N, 30 + i);
      const reference = gemmModel(c, w, bias);
      const model = gemmModel(c, w, bias);
      const report = quantizeGemms(model, { bits: 4, blockSize: 16, ...variant });
      assert.equal(report.stats.quantized, 1, JSON.stringify(report));
      const ops = model.graph.nodes.map((n) => n.opType).filter((op) => op !== 'Cast');
      assert.deepEqual(ops.filter((op) => op !== 'Mul'), c.bias === undefined || c.beta === 0 ? ['MatMulNBits'] : ['MatMulNBits', 'Add'], ops.join(' '));
      const a = pseudoRandom(M * c.K, 50 + i);
      const feeds = [Tensor.fromArray('A', DataType.FLOAT, [M, c.K], a)];
      if (c.bias === 'input') feeds.push(Tensor.fromArray('C', DataType.FLOAT, [c.N], bias.subarray(0, c.N)));
      const [got] = await runModel(model, feeds);
      const [original] = await runModel(reference, feeds);
      // The decoded weight is alpha * B' up to 4-bit error.
      const decoded = decode(model.graph);
      let signal = 0;
      let noise = 0;
      for (let k = 0; k < c.K; k++) for (let n = 0; n < c.N; n++) {
        const wt = c.alpha * (c.transB ? w[n * c.K + k] : w[k * c.N + n]);
        signal += wt * wt;
        noise += (wt - decoded[k * c.N + n]) ** 2;
      }
      const sqnr = 10 * Math.log10(signal / noise);
      assert.ok(sqnr > 17, `case ${i}: decoded weight SQNR ${sqnr} dB`);
      // onnxruntime against A @ decoded + beta * C (broadcast) computed here.
      const y = got.data() as Float32Array;
      let worst = 0;
      let scale = 0;
      for (let m = 0; m < M; m++) for (let n = 0; n < c.N; n++) {
        let sum = 0;
        for (let k = 0; k < c.K; k++) sum += a[m * c.K + k] * decoded[k * c.N + n];
        if (c.bias !== undefined) {
          const shape = c.bias === 'input' ? [c.N] : c.bias;
          sum += c.beta * bias[shape.length === 2 && shape[0] === M ? m * c.N + n : n];
        }
        worst = Math.max(worst, Math.abs(y[m * c.N + n] - sum));
        scale = Math.max(scale, Math.abs(sum));
      }
      assert.ok(worst / scale < 1e-4, `case ${i} ${variant.rounding}: runtime vs JS ${worst / scale}`);
      const o = original.data() as Float32Array;
      let dot = 0, oo = 0, yy = 0;
      for (let j = 0; j < o.length; j++) { dot += o[j] * y[j]; oo += o[j] * o[j]; yy += y[j] * y[j]; }
      lines.push(`K${c.K} transB${c.transB ? 1 : 0} alpha ${c.alpha} beta ${c.beta} ${c.bias === undefined ? 'no C' : JSON.stringify(c.bias)} ${variant.rounding}: SQNR ${sqnr.toFixed(1)} dB, cos ${(dot / Math.sqrt(oo * yy)).toFixed(5)}`);
    }
  }
  console.log(`Gemm -> MatMulNBits int4 block 16: ${lines.join('; ')}`);
});

test('weight-only int4: Gemm takes MatMulNBits below opset 21 and blocked DequantizeLinear at 21', () => {
  const c: GemmCase = { K: 64, N: 16, transB: true, alpha: 1, beta: 1, bias: [16] };
  const w = pseudoRandom(64 * 16, 3, -0.2, 0.2);
  const bias = pseudoRandom(16, 4);
  const old = gemmModel(c, w, bias, 17);
  const oldReport = quantizeWeightsOnly(old, { method: 'int4', blockSize: 32, scaleType: 'float16' });
  assert.deepEqual(old.graph.nodes.map((n) => n.opType).filter((op) => op !== 'Cast'), ['MatMulNBits', 'Add']);
  assert.equal(oldReport.tensors[0].op, 'Gemm');
  assert.ok(oldReport.tensors[0].bytesAfter / oldReport.tensors[0].bytesBefore <= 0.15, JSON.stringify(oldReport.tensors[0]));
  assert.ok(!oldReport.warnings.some((x) => x.code === 'opset-too-old'), JSON.stringify(oldReport.warnings));
  const recent = gemmModel(c, w, bias, 21);
  quantizeWeightsOnly(recent, { method: 'int4', blockSize: 32 });
  assert.deepEqual(recent.graph.nodes.map((n) => n.opType), ['DequantizeLinear', 'Gemm']);
  const ternary = gemmModel(c, w, bias, 17);
  quantizeWeightsOnly(ternary, { method: 'ternary' });
  assert.deepEqual(ternary.graph.nodes.map((n) => n.opType), ['MatMulNBits', 'Add']);
});
