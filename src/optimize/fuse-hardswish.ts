// Fuses the hard activations that exporters write with Relu6 (Clip to [0, 6]):
//   Clip(x + 3, 0, 6) / 6               -> HardSigmoid(x, alpha=1/6, beta=0.5)
//   x * Clip(x + 3, 0, 6) / 6           -> HardSwish(x)            (opset 14 and later)
//                                       -> x * HardSigmoid(x)      (before 14: 4 nodes become 2)
//   x * HardSigmoid(x, 1/6, 0.5)        -> HardSwish(x)            (opset 14 and later)
// Division by 6 may also be written as a product with 1/6. PaddlePaddle's hardswish exports as the
// second form (PP-OCR's three models have it 18 to 28 times), at opsets 9 and 11.
import { attr } from '../ir/attribute.js';
import { constantValue } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { allGraphs, isOp } from './util/graph-queries.js';
import { fusedNode, internalValuesPrivate, isScalar, near, otherOperand, producerOf, replacePattern, scalarConstant, soleConsumer } from './util/pattern.js';
import { PassResult } from './util/report.js';
import { isFoldableFloat } from './util/tensor-math.js';

const SIXTH = 1 / 6;

export const fuseHardSwish: Pass = {
  name: 'fuse-hardswish',
  description: 'Add(3)/Clip(0,6)/Div(6) -> HardSigmoid; x*HardSigmoid(x) and x*Clip(x+3,0,6)/6 -> HardSwish (opset 14+)',
  run(model) {
    const result = new PassResult(['hardSigmoid', 'hardSwish', 'hardSwishAsHardSigmoid', 'nodesRemoved', 'constantsRemoved']);
    const opset = model.opset('') ?? 1;
    const hasHardSwish = opset >= 14;
    for (const graph of allGraphs(model.graph)) {
      for (const clip of [...graph.nodes]) {
        if (!graph.nodes.includes(clip) || !isOp(clip, 'Clip')) continue;
        const relu6 = matchRelu6OfShift(graph, clip, opset);
        if (relu6 === undefined) continue;
        const { x, add } = relu6;
        const clipped = clip.outputs[0];
        const reader = soleConsumer(graph, clipped, 'Div', 'Mul');
        if (reader === undefined) continue;
        if (dividesBySix(graph, reader, clipped)) {
          const nodes = [add, clip, reader];
          if (!internalValuesPrivate(graph, nodes, reader.outputs[0])) continue;
          result.count('constantsRemoved', replacePattern(graph, nodes, hardSigmoid(graph, x), reader.outputs[0]));
          result.count('hardSigmoid');
          result.count('nodesRemoved', 2);
          continue;
        }
        // x * Clip(x + 3, 0, 6), then / 6.
        if (reader.opType !== 'Mul' || otherOperand(reader, clipped) !== x) continue;
        const scale = soleConsumer(graph, reader.outputs[0], 'Div', 'Mul');
        if (scale === undefined || !dividesBySix(graph, scale, reader.outputs[0])) continue;
        const nodes = [add, clip, reader, scale];
        const out = scale.outputs[0];
        if (!internalValuesPrivate(graph, nodes, out)) continue;
        if (hasHardSwish) {
          result.count('constantsRemoved', replacePattern(graph, nodes, fusedNode(graph, 'HardSwish', [x]), out));
          result.count('hardSwish');
          result.count('nodesRemoved', 3);
        } else {
          const gate = hardSigmoid(graph, x);
          gate.outputs = [graph.uniqueName(`${out}_hardsigmoid`)];
          result.count('constantsRemoved', replacePattern(graph, nodes, [gate, fusedNode(graph, 'Mul', [x, gate.outputs[0]])], out));
          result.count('hardSwishAsHardSigmoid');
          result.count('nodesRemoved', 2);
        }
      }
      if (hasHardSwish) fuseGatedHardSigmoid(graph, result);
    }
    if (!hasHardSwish && result.stats.hardSwishAsHardSigmoid > 0) {
      result.warn('opset-below-14', `model imports ai.onnx ${opset}: HardSwish needs 14, so x*Clip(x+3,0,6)/6 became x*HardSigmoid(x)`);
    }
    return result.done();
  },
};

/** Clip(Add(x, 3), 0, 6) with the Add read only by the Clip; bounds from attributes before opset 11. */
function matchRelu6OfShift(graph: Graph, clip: Node, opset: number): { x: string; add: Node } | undefined {
  let low: number | undefined;
  let high: number | undefined;
  if (opset < 11) {
    low = clip.attrFloat('min');
    high = clip.attrFloat('max');
  } else {
    low = scalarConstant(graph, clip.inputs[1] ?? '');
    high = scalarConstant(graph, clip.inputs[2] ?? '');
  }
  if (!near(low, 0) || !near(high, 6)) return undefined;
  const add = producerOf(graph, clip.inputs[0], 'Add');
  if (add === undefined || soleConsumer(graph, add.outputs[0], 'Clip') !== clip) return undefined;
  for (const i of [1, 0]) {
    const three = constantValue(graph, add.inputs[i]);
    if (three !== undefined && isFoldableFloat(three.dataType) && isScalar(graph, add.inputs[i], 3)) return { x: add.inputs[1 - i], add };
  }
  return undefined;
}

/** `node` computes `value` / 6 or `value` * (1/6). */
function dividesBySix(graph: Graph, node: Node, value: string): boolean {
  if (node.opType === 'Div') return node.inputs[0] === value && isScalar(graph, node.inputs[1], 6);
  return node.opType === 'Mul' && isScalar(graph, otherOperand(node, value) ?? '', SIXTH);
}

function hardSigmoid(graph: Graph, x: string): Node {
  return fusedNode(graph, 'HardSigmoid', [x], [attr.float('alpha', SIXTH), attr.float('beta', 0.5)]);
}

/** Mul(x, HardSigmoid(x, 1/6, 0.5)) -> HardSwish(x), the gate read only by the Mul. */
function fuseGatedHardSigmoid(graph: Graph, result: PassResult): void {
  for (const gate of [...graph.nodes]) {
    if (!graph.nodes.includes(gate) || !isOp(gate, 'HardSigmoid')) continue;
    if (!near(gate.attrFloat('alpha', 0.2), SIXTH) || !near(gate.attrFloat('beta', 0.5), 0.5)) continue;
    const x = gate.inputs[0];
    const mul = soleConsumer(graph, gate.outputs[0], 'Mul');
    if (mul === undefined || otherOperand(mul, gate.outputs[0]) !== x) continue;
    result.count('constantsRemoved', replacePattern(graph, [gate, mul], new Node({ opType: 'HardSwish', inputs: [x], name: graph.uniqueName('HardSwish') }), mul.outputs[0]));
    result.count('hardSwish');
    result.count('nodesRemoved', 1);
  }
}
