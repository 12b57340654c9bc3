// Gradient checks (float64 finite differences) for the shape family: Reshape, Flatten, Squeeze,
// Unsqueeze, Transpose, Concat, Split (opsets 13 and 18), Slice (negative bounds and steps,
// run-time bounds), Gather (repeated and negative indices, every axis, opsets 13 and 17), Expand,
// Pad, Tile, DepthToSpace (DCR and CRD) and SpaceToDepth; plus Concat over a symbolic dim, checked against the exact gradient.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../src/ir/attribute.js';
import { buildModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/ir/dtype.js';
import { Graph } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { addGradients } from '../src/train/autodiff.js';
import { checkGradient } from './helpers/gradient-check.js';
import { runModel } from './helpers/run-model.js';

/** A constant int64 input (shape, axes, pads, ...) of the forward graph. */
function ints(b: GraphBuilder, name: string, values: number[]): string {
  return b.initializer(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));
}

test('Reshape: explicit dims, 0 (copy) and -1 (infer)', async () => {
  for (const shape of [[4, 6], [4, 0, -1], [-1], [2, 0, 2, 2]]) {
    await checkGradient({ build: (b) => b.node('Reshape', ['x', ints(b, 'shape', shape)]), inputs: { x: { dims: [2, 3, 4] } }, wrt: ['x'] });
  }
});

test('Flatten: axis 0, 1, 3 and negative axes', async () => {
  for (const axis of [0, 1, 3, -1, -3]) {
    await checkGradient({ build: (b) => b.node('Flatten', ['x'], [attr.int('axis', axis)]), inputs: { x: { dims: [2, 3, 2, 2] } }, wrt: ['x'] });
  }
  await checkGradient({ build: (b) => b.node('Flatten', ['x']), inputs: { x: { dims: [2, 3, 4] } }, wrt: ['x'] });
});

test('Squeeze and Unsqueeze: axes input (opset 13+), negative axes, no axes', async () => {
  for (const opset of [13, 17]) {
    await checkGradient({ build: (b) => b.node('Squeeze', ['x', ints(b, 'axes', [1, -1])]), inputs: { x: { dims: [2, 1, 3, 1] } }, wrt: ['x'], opset });
    await checkGradient({ build: (b) => b.node('Unsqueeze', ['x', ints(b, 'axes', [0, -1])]), inputs: { x: { dims: [2, 3] } }, wrt: ['x'], opset });
  }
  await checkGradient({ build: (b) => b.node('Squeeze', ['x']), inputs: { x: { dims: [1, 4, 1] } }, wrt: ['x'] });
});

test('Transpose: default reversal and explicit perms', async () => {
  await checkGradient({ build: (b) => b.node('Transpose', ['x']), inputs: { x: { dims: [2, 3, 4] } }, wrt: ['x'] });
  for (const perm of [[1, 2, 0], [2, 0, 1], [0, 2, 1]]) {
    await checkGradient({ build: (b) => b.node('Transpose', ['x'], [attr.ints('perm', perm)]), inputs: { x: { dims: [2, 3, 4] } }, wrt: ['x'] });
  }
});

test('Concat: every axis, negative axes, three inputs of different sizes, opsets 13 and 18', async () => {
  const base = [2, 3, 2];
  for (const opset of [13, 18]) {
    for (const axis of [0, 1, 2, -1, -3]) {
      const a = (axis + 3) % 3;
      const dims = (n: number) => base.map((d, i) => (i === a ? n : d));
      await checkGradient({
        build: (b) => b.node('Concat', ['p', 'q', 'r'], [attr.int('axis', axis)]),
        inputs: { p: { dims: dims(1) }, q: { dims: dims(3) }, r: { dims: dims(2) } },
        wrt: ['p', 'q', 'r'],
        opset,
      });
    }
  }
  // Only some inputs wanted: the others are parts of the Split nobody reads.
  await checkGradient({ build: (b) => b.node('Concat', ['p', 'q'], [attr.int('axis', 1)]), inputs: { p: { dims: [2, 2] }, q: { dims: [2, 3] } }, wrt: ['q'] });
});

test('Concat over a symbolic dim slices dy at offsets computed in the graph', async () => {
  const b = new GraphBuilder(new Graph('symbolic'));
  b.input('a', DataType.DOUBLE, ['N', 2]);
  b.input('c', DataType.DOUBLE, [3, 2]);
  b.input('w', DataType.DOUBLE, ['M', 2]);
  const y = b.node('Concat', ['a', 'c'], [attr.int('axis', 0)]);
  b.node('ReduceSum', [b.node('Mul', [y, 'w']), ints(b, 'all', [0, 1])], [attr.int('keepdims', 0)], { outputs: ['loss'] });
  b.output('loss');
  const model = buildModel(b.graph, [{ domain: '', version: 17 }], 8);
  const { gradients } = addGradients(model, { loss: 'loss', wrt: ['a', 'c'] });
  assert.ok(model.graph.nodes.some((n) => n.opType === 'Slice' && n.name.startsWith('grad/')), 'symbolic sizes take the Slice path');
  model.graph.outputs = [];
  model.graph.addNode({ opType: 'Identity', inputs: [gradients.get('a') as string], outputs: ['da'], name: 'da' });
  model.graph.addNode({ opType: 'Identity', inputs: [gradients.get('c') as string], outputs: ['dc'], name: 'dc' });
  model.graph.addOutput('da');
  model.graph.addOutput('dc');
  model.graph.changed();
  // dL/dy = w, so a's gradient is w's first N rows and c's the rest.
  const w = Float64Array.from({ length: 10 }, (_, i) => i + 0.5);
  const feeds = [
    Tensor.fromArray('a', DataType.DOUBLE, [2, 2], new Float64Array(4)),
    Tensor.fromArray('c', DataType.DOUBLE, [3, 2], new Float64Array(6)),
    Tensor.fromArray('w', DataType.DOUBLE, [5, 2], w),
  ];
  const [da, dc] = await runModel(model, feeds);
  assert.deepEqual(da.dims, [2, 2]);
  assert.deepEqual(Array.from(da.data() as Float64Array), Array.from(w.subarray(0, 4)));
  assert.deepEqual(dc.dims, [3, 2]);
  assert.deepEqual(Array.from(dc.data() as Float64Array), Array.from(w.subarray(4)));
});

test('Split at opset 13: split input, default equal parts, negative axis, an unused output', async () => {
  const split = (sizes: number[] | undefined, axis: number, outputs: number) => (b: GraphBuilder) => {
    const inputs = sizes === undefined ? ['x'] : ['x', ints(b, 'split', sizes)];
    const parts = b.node('Split', inputs, [attr.int('axis', axis)], { outputs });
    // Weight the parts differently so a part routed to the wrong place shows.
    return b.node('Concat', [b.node('Mul', [parts[0], parts[0]]), ...parts.slice(1)], [attr.int('axis', axis)]);
  };
  await checkGradient({ build: split([1, 3], -1, 2), inputs: { x: { dims: [2, 4] } }, wrt: ['x'], opset: 13 });
  await checkGradient({ build: split([2, 1], 0, 2), inputs: { x: { dims: [3, 2] } }, wrt: ['x'], opset: 13 });
  await checkGradient({ build: split(undefined, 1, 3), inputs: { x: { dims: [2, 6] } }, wrt: ['x'], opset: 13 });
  await checkGradient({ build: split(undefined, -2, 2), inputs: { x: { dims: [2, 4, 2] } }, wrt: ['x'], opset: 13 });
  // The middle part never reaches the loss: its dy is undefined and contributes zeros.
  await checkGradient({
    build: (b) => {
      const [p, , r] = b.node('Split', ['x', ints(b, 'split', [2, 1, 2])], [attr.int('axis', 1)], { outputs: 3 });
      return b.node('Mul', [p, r]);
    },
    inputs: { x: { dims: [2, 5] } },
    wrt: ['x'],
    opset: 13,
  });
});

test('Split at opset 18: num_outputs (uneven last part), split input, negative axis, an unused output', async () => {
  const byCount = (count: number, axis: number) => (b: GraphBuilder) => {
    const parts = b.node('Split', ['x'], [attr.int('axis', axis), attr.int('num_outputs', count)], { outputs: count });
    return b.node('Concat', [b.node('Mul', [parts[0], parts[0]]), ...parts.slice(1)], [attr.int('axis', axis)]);
  };
  await checkGradient({ build: byCount(3, 1), inputs: { x: { dims: [2, 7] } }, wrt: ['x'], opset: 18 });
  await checkGradient({ build: byCount(2, -1), inputs: { x: { dims: [3, 4] } }, wrt: ['x'], opset: 18 });
  await checkGradient({
    build: (b) => b.node('Concat', b.node('Split', ['x', ints(b, 'split', [1, 2])], [attr.int('axis', -2)], { outputs: 2 }).reverse(), [attr.int('axis', -2)]),
    inputs: { x: { dims: [3, 2] } },
    wrt: ['x'],
    opset: 18,
  });
  await checkGradient({
    build: (b) => b.node('Split', ['x'], [attr.int('axis', 0), attr.int('num_outputs', 2)], { outputs: 2 })[1],
    inputs: { x: { dims: [4, 3] } },
    wrt: ['x'],
    opset: 18,
  });
});

test('Slice: unit steps with negative and out-of-range bounds, default axes, negative axes', async () => {
  for (const opset of [13, 17]) {
    const slice = (starts: number[], ends: number[], axes?: number[], steps?: number[]) => (b: GraphBuilder) => {
      const inputs = ['x', ints(b, 'starts', starts), ints(b, 'ends', ends)];
      if (axes !== undefined) inputs.push(ints(b, 'axes', axes));
      if (steps !== undefined) inputs.push(ints(b, 'steps', steps));
      return b.node('Slice', inputs);
    };
    const x = { x: { dims: [4, 5] } };
    await checkGradient({ build: slice([1, -4], [-1, 100], [0, -1]), inputs: x, wrt: ['x'], opset });
    await checkGradient({ build: slice([-100, 2], [2, -1]), inputs: x, wrt: ['x'], opset });
    await checkGradient({ build: slice([1], [3], [-1], [1]), inputs: x, wrt: ['x'], opset });
    // Steps other than 1: forward and backward strides, negative starts.
    await checkGradient({ build: slice([0], [5], [1], [2]), inputs: x, wrt: ['x'], opset });
    await checkGradient({ build: slice([-1, 4], [-100, 0], [0, 1], [-1, -2]), inputs: x, wrt: ['x'], opset });
    await checkGradient({ build: slice([3, 1], [0, 5], [-2, -1], [-2, 3]), inputs: x, wrt: ['x'], opset });
  }
});

test('Slice with bounds known only at run time', async () => {
  await checkGradient({
    build: (b) => b.node('Slice', ['x', 'starts', 'ends', ints(b, 'axes', [0, 2])]),
    inputs: { x: { dims: [3, 2, 4] }, starts: { dims: [2], data: [1, -3], int64: true }, ends: { dims: [2], data: [3, 4], int64: true } },
    wrt: ['x'],
  });
});

test('Gather axis 0 on an embedding table: repeated and negative indices accumulate (opsets 13 and 17)', async () => {
  for (const opset of [13, 17]) {
    // Rows 0 and 2 appear twice; -1 and 4 name the same row.
    await checkGradient({
      build: (b) => b.node('Gather', ['table', 'ids']),
      inputs: { table: { dims: [5, 3] }, ids: { dims: [2, 3], data: [0, 2, 2, 4, -1, 0], int64: true } },
      wrt: ['table'],
      opset,
    });
    await checkGradient({
      build: (b) => b.node('Gather', ['table', 'ids']),
      inputs: { table: { dims: [4, 2, 2] }, ids: { dims: [3], data: [3, 3, 1], int64: true } },
      wrt: ['table'],
      opset,
    });
  }
});

test('Gather on other axes, negative axes and scalar indices (opsets 13 and 17)', async () => {
  const gather = (axis: number) => (b: GraphBuilder) => b.node('Gather', ['x', 'i'], [attr.int('axis', axis)]);
  for (const opset of [13, 17]) {
    for (const axis of [1, 2, -1, -2]) {
      await checkGradient({ build: gather(axis), inputs: { x: { dims: [2, 3, 3] }, i: { dims: [2, 2], data: [2, 0, 2, -1], int64: true } }, wrt: ['x'], opset });
    }
    for (const axis of [0, 1, -1]) {
      await checkGradient({ build: gather(axis), inputs: { x: { dims: [3, 3, 2] }, i: { dims: [], data: [1], int64: true } }, wrt: ['x'], opset });
    }
  }
});

test('Expand: broadcast over new leading axes and unit axes, shape smaller than the input', async () => {
  const expand = (shape: number[]) => (b: GraphBuilder) => b.node('Expand', ['x', ints(b, 'shape', shape)]);
  await checkGradient({ build: expand([2, 3, 4]), inputs: { x: { dims: [3, 1] } }, wrt: ['x'] });
  await checkGradient({ build: expand([2, 1, 4]), inputs: { x: { dims: [4] } }, wrt: ['x'] });
  await checkGradient({ build: expand([1, 3]), inputs: { x: { dims: [2, 1, 1] } }, wrt: ['x'] });
});

test('Pad (constant mode): pads per axis, the constant value, negative pads, axes input at opset 18', async () => {
  await checkGradient({ build: (b) => b.node('Pad', ['x', ints(b, 'pads', [1, 0, 2, 1])]), inputs: { x: { dims: [2, 3] } }, wrt: ['x'] });
  await checkGradient({ build: (b) => b.node('Pad', ['x', ints(b, 'pads', [0, 2, 1, 1]), 'c']), inputs: { x: { dims: [2, 3] }, c: { dims: [] } }, wrt: ['x', 'c'] });
  // Negative pads crop: the cropped elements get zero gradient.
  await checkGradient({ build: (b) => b.node('Pad', ['x', ints(b, 'pads', [-1, 1, 0, -1]), 'c']), inputs: { x: { dims: [3, 3] }, c: { dims: [] } }, wrt: ['x', 'c'] });
  await checkGradient({ build: (b) => b.node('Pad', ['x', ints(b, 'pads', [1, 2]), '', ints(b, 'axes', [-1])]), inputs: { x: { dims: [2, 2, 3] } }, wrt: ['x'], opset: 18 });
});

test('Tile: constant and run-time repeats', async () => {
  await checkGradient({ build: (b) => b.node('Tile', ['x', ints(b, 'repeats', [2, 1, 3])]), inputs: { x: { dims: [2, 3, 2] } }, wrt: ['x'] });
  await checkGradient({ build: (b) => b.node('Tile', ['x', 'repeats']), inputs: { x: { dims: [3, 2] }, repeats: { dims: [2], data: [1, 3], int64: true } }, wrt: ['x'] });
});

test('DepthToSpace (DCR and CRD) and SpaceToDepth', async () => {
  for (const mode of ['DCR', 'CRD']) {
    for (const [block, channels] of [[2, 8], [3, 18]]) {
      await checkGradient({ build: (b) => b.node('DepthToSpace', ['x'], [attr.int('blocksize', block), attr.string('mode', mode)]), inputs: { x: { dims: [2, channels, 2, 3] } }, wrt: ['x'] });
    }
  }
  await checkGradient({ build: (b) => b.node('SpaceToDepth', ['x'], [attr.int('blocksize', 2)]), inputs: { x: { dims: [2, 3, 4, 6] } }, wrt: ['x'] });
});
