// Gradient checks (float64 finite differences) for elementwise arithmetic with broadcasting,
// MatMul (batched, broadcast, 1-D operands) and Gemm (every transpose, alpha, beta, C shapes).
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { DataType } from '../src/ir/dtype.js';
import { checkGradient } from './helpers/gradient-check.js';

const binary = (op: string) => (b: { node: (op: string, inputs: string[]) => string }) => b.node(op, ['a', 'b']);

for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
  test(`${op}: same shapes, and broadcasting over leading, inner and scalar axes`, async () => {
    const low = op === 'Div' ? 0.5 : -1;
    await checkGradient({ build: binary(op), inputs: { a: { dims: [2, 3] }, b: { dims: [2, 3], low } }, wrt: ['a', 'b'] });
    await checkGradient({ build: binary(op), inputs: { a: { dims: [2, 3, 4] }, b: { dims: [3, 1], low } }, wrt: ['a', 'b'] });
    await checkGradient({ build: binary(op), inputs: { a: { dims: [1, 4] }, b: { dims: [3, 1], low } }, wrt: ['a', 'b'] });
    await checkGradient({ build: binary(op), inputs: { a: { dims: [] }, b: { dims: [2, 2], low } }, wrt: ['a', 'b'] });
  });
}

test('Pow: base and exponent, broadcast exponent', async () => {
  await checkGradient({ build: binary('Pow'), inputs: { a: { dims: [2, 3], low: 0.5, high: 2 }, b: { dims: [2, 3] } }, wrt: ['a', 'b'] });
  await checkGradient({ build: binary('Pow'), inputs: { a: { dims: [2, 3], low: 0.5, high: 2 }, b: { dims: [], data: [2] } }, wrt: ['a', 'b'] });
});

test('Sqrt, Exp, Log, Reciprocal, Abs, Neg, Identity', async () => {
  for (const op of ['Sqrt', 'Exp', 'Log', 'Reciprocal', 'Abs', 'Neg', 'Identity']) {
    const positive = op === 'Sqrt' || op === 'Log' || op === 'Reciprocal';
    await checkGradient({ build: (b) => b.node(op, ['x']), inputs: { x: { dims: [3, 4], low: positive ? 0.5 : -1 } }, wrt: ['x'] });
  }
});

test('Sum of three broadcast operands', async () => {
  await checkGradient({ build: (b) => b.node('Sum', ['a', 'b', 'c']), inputs: { a: { dims: [2, 3] }, b: { dims: [3] }, c: { dims: [2, 1] } }, wrt: ['a', 'b', 'c'] });
});

test('a value used twice accumulates both contributions', async () => {
  await checkGradient({ build: (b) => b.node('Mul', [b.node('Add', ['x', 'x']), 'x']), inputs: { x: { dims: [5] } }, wrt: ['x'] });
});

test('MatMul: 2-D, batched, broadcast batch, 1-D operands', async () => {
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[2, 3, 4], [2, 4, 5]],
    [[2, 3, 4], [4, 5]],
    [[3, 4], [2, 4, 5]],
    [[2, 1, 3, 4], [3, 4, 2]],
    [[4], [4, 5]],
    [[2, 3, 4], [4]],
    [[4], [4]],
  ];
  for (const [a, b] of cases) await checkGradient({ build: binary('MatMul'), inputs: { a: { dims: a }, b: { dims: b } }, wrt: ['a', 'b'] });
});

test('Gemm: transA/transB, alpha, beta, C of shape (N), (M,1), scalar and absent', async () => {
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      const a = transA ? [4, 3] : [3, 4];
      const b = transB ? [5, 4] : [4, 5];
      await checkGradient({
        build: (g) => g.node('Gemm', ['a', 'b', 'c'], [attr.int('transA', transA), attr.int('transB', transB), attr.float('alpha', 0.7), attr.float('beta', 1.3)]),
        inputs: { a: { dims: a }, b: { dims: b }, c: { dims: [5] } },
        wrt: ['a', 'b', 'c'],
      });
    }
  }
  for (const c of [[3, 1], [], [3, 5]]) {
    await checkGradient({ build: (g) => g.node('Gemm', ['a', 'b', 'c']), inputs: { a: { dims: [3, 4] }, b: { dims: [4, 5] }, c: { dims: c } }, wrt: ['a', 'b', 'c'] });
  }
  await checkGradient({ build: (g) => g.node('Gemm', ['a', 'b']), inputs: { a: { dims: [3, 4] }, b: { dims: [4, 5] } }, wrt: ['a', 'b'] });
});

test('ReduceSum and ReduceMean: axes (negative too), keepdims, all axes, opset 13 (attribute axes for Mean) and 18 (input axes)', async () => {
  for (const op of ['ReduceSum', 'ReduceMean']) {
    for (const opset of [13, 18]) {
      const axesAsInput = op === 'ReduceSum' || opset >= 18;
      for (const [axes, keepdims] of [[[1], 1], [[-1], 0], [[0, 2], 0], [[], 1]] as [number[], number][]) {
        await checkGradient({
          opset,
          inputs: { x: { dims: [2, 3, 4] } },
          wrt: ['x'],
          build: (b) => {
            const keep = attr.int('keepdims', keepdims);
            if (axes.length === 0) return b.node(op, ['x'], [keep]);
            if (!axesAsInput) return b.node(op, ['x'], [attr.ints('axes', axes), keep]);
            return b.node(op, ['x', b.initializer(`axes_${axes.join('_')}`, DataType.INT64, [axes.length], BigInt64Array.from(axes.map(BigInt)))], [keep]);
          },
        });
      }
    }
  }
});
