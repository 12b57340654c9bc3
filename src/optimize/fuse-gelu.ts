// Fuses GELU written out as elementwise ops into one node:
//   exact: y = x * 0.5 * (1 + Erf(x / sqrt(2)))                                   -> Gelu
//   tanh:  y = x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))            -> FastGelu
// ONNX has Gelu (with approximate='tanh') from opset 20; below that the fused op is onnxruntime's
// com.microsoft Gelu / FastGelu, which both onnxruntime-node and onnxruntime-web run (checked in
// the tests). The product x * 0.5 * t is matched in the three orders exporters write it.
import { attr } from '../ir/attribute.js';
import { constantValue } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { allGraphs } from './util/graph-queries.js';
import { ensureOpset, fusedNode, internalValuesPrivate, isScalar, otherOperand, producerOf, replacePattern, soleConsumer } from './util/pattern.js';
import { PassResult } from './util/report.js';

const SQRT2 = Math.SQRT2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const TANH_CUBIC = 0.044715;

export interface FuseGeluOptions {
  /** 'auto' (default): ai.onnx Gelu from opset 20, com.microsoft below; or force one of them. */
  target?: 'auto' | 'onnx' | 'com.microsoft';
}

interface Match {
  nodes: Node[];
  x: string;
  form: 'erf' | 'tanh';
  result: string;
  /** A constant of the pattern, whose element type is the computation's. */
  typedBy: string;
}

export const fuseGelu: Pass<FuseGeluOptions> = {
  name: 'fuse-gelu',
  description: 'x*0.5*(1+Erf(x/sqrt2)) -> Gelu; the Tanh approximation -> FastGelu (or ai.onnx Gelu at opset 20)',
  run(model, options) {
    const result = new PassResult(['erf', 'tanh', 'nodesRemoved', 'constantsRemoved']);
    const opset = model.opset('') ?? 1;
    const target = options.target ?? 'auto';
    const standard = target === 'onnx' || (target === 'auto' && opset >= 20);
    if (standard && opset < 20) {
      result.warn('opset-below-20', `ai.onnx Gelu needs opset 20; the model imports ${opset}`);
      return result.done();
    }
    for (const graph of allGraphs(model.graph)) {
      for (const anchor of [...graph.nodes]) {
        if (!graph.nodes.includes(anchor)) continue;
        const match = anchor.opType === 'Erf' ? matchErf(graph, anchor) : anchor.opType === 'Tanh' ? matchTanh(graph, anchor) : undefined;
        if (match === undefined || !(anchor.domain === '' || anchor.domain === 'ai.onnx')) continue;
        // onnxruntime's CPU and wasm kernels for Gelu/FastGelu are float32 only.
        const type = constantValue(graph, match.typedBy)?.dataType;
        if (type !== DataType.FLOAT) {
          result.warn('not-float32', `GELU at '${anchor.label}' left as is: it computes in a type other than float32`, { node: anchor.label });
          continue;
        }
        let node: Node;
        if (standard) {
          const attributes = match.form === 'tanh' ? [attr.string('approximate', 'tanh')] : [];
          node = fusedNode(graph, 'Gelu', [match.x], attributes);
        } else {
          node = fusedNode(graph, match.form === 'erf' ? 'Gelu' : 'FastGelu', [match.x], [], 'com.microsoft');
          ensureOpset(model, 'com.microsoft', 1);
        }
        result.count('constantsRemoved', replacePattern(graph, match.nodes, node, match.result));
        result.count(match.form);
        result.count('nodesRemoved', match.nodes.length - 1);
      }
    }
    return result.done();
  },
};

/** Erf(x / sqrt2) or Erf(x * (1/sqrt2)), then + 1, then the product with x and 0.5. */
function matchErf(graph: Graph, erf: Node): Match | undefined {
  const scaled = producerOf(graph, erf.inputs[0], 'Div', 'Mul');
  if (scaled === undefined) return undefined;
  const [x, k] = scaled.inputs;
  const isScale = scaled.opType === 'Div' ? isScalar(graph, k, SQRT2) : isScalar(graph, k, 1 / SQRT2);
  if (!isScale || soleConsumer(graph, scaled.outputs[0], 'Erf') !== erf) return undefined;
  return withTail(graph, [scaled, erf], x, erf.outputs[0], 'erf', k);
}

/** Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)), then + 1, then the product with x and 0.5. */
function matchTanh(graph: Graph, tanh: Node): Match | undefined {
  const outer = producerOf(graph, tanh.inputs[0], 'Mul');
  if (outer === undefined) return undefined;
  const inner = outer.inputs.map((v) => producerOf(graph, v, 'Add')).find((n) => n !== undefined);
  if (inner === undefined || !isScalar(graph, otherOperand(outer, inner.outputs[0]) ?? '', SQRT_2_OVER_PI)) return undefined;
  for (const i of [0, 1]) {
    const x = inner.inputs[1 - i];
    const cubicTerm = producerOf(graph, inner.inputs[i], 'Mul');
    if (cubicTerm === undefined) continue;
    const cube = cubicTerm.inputs.map((v) => producerOf(graph, v, 'Pow', 'Mul')).find((n) => n !== undefined);
    if (cube === undefined || !isScalar(graph, otherOperand(cubicTerm, cube.outputs[0]) ?? '', TANH_CUBIC)) continue;
    const cubeNodes = cubeOf(graph, cube, x);
    if (cubeNodes === undefined) continue;
    return withTail(graph, [...cubeNodes, cubicTerm, inner, outer, tanh], x, tanh.outputs[0], 'tanh', outer.inputs.find((v) => v !== inner.outputs[0]) ?? '');
  }
  return undefined;
}

/** Nodes computing x^3 as Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x). */
function cubeOf(graph: Graph, cube: Node, x: string): Node[] | undefined {
  if (cube.opType === 'Pow') return cube.inputs[0] === x && isScalar(graph, cube.inputs[1], 3) ? [cube] : undefined;
  const square = otherOperand(cube, x);
  const squareNode = square === undefined ? undefined : producerOf(graph, square, 'Mul');
  if (squareNode === undefined || squareNode.inputs[0] !== x || squareNode.inputs[1] !== x) return undefined;
  return [squareNode, cube];
}

/**
 * From `f` (Erf or Tanh output): Add(f, 1) = t, then y = x * 0.5 * t as (x*t)*0.5, (t*0.5)*x or
 * t*(x*0.5); Div by 2 stands for the multiplication by 0.5.
 */
function withTail(graph: Graph, head: Node[], x: string, f: string, form: Match['form'], typedBy: string): Match | undefined {
  const plusOne = soleConsumer(graph, f, 'Add');
  if (plusOne === undefined || !isScalar(graph, otherOperand(plusOne, f) ?? '', 1)) return undefined;
  const t = plusOne.outputs[0];
  const first = soleConsumer(graph, t, 'Mul');
  const other = first === undefined ? undefined : otherOperand(first, t);
  if (first === undefined || other === undefined) return undefined;
  const halves = (node: Node | undefined, value: string): boolean =>
    node !== undefined &&
    ((node.opType === 'Mul' && isScalar(graph, otherOperand(node, value) ?? '', 0.5)) || (node.opType === 'Div' && node.inputs[0] === value && isScalar(graph, node.inputs[1], 2)));

  let tail: Node[] | undefined;
  if (other === x) {
    const second = soleConsumer(graph, first.outputs[0], 'Mul', 'Div');
    if (halves(second, first.outputs[0])) tail = [first, second as Node];
  } else if (halves(first, t)) {
    const second = soleConsumer(graph, first.outputs[0], 'Mul');
    if (second !== undefined && otherOperand(second, first.outputs[0]) === x) tail = [first, second];
  } else {
    const half = producerOf(graph, other, 'Mul', 'Div');
    if (half?.inputs.includes(x) && halves(half, x)) tail = [half, first];
  }
  if (tail === undefined) return undefined;
  const nodes = [...head, plusOne, ...tail];
  const result = tail[tail.length - 1].outputs[0];
  if (!internalValuesPrivate(graph, nodes, result)) return undefined;
  return { nodes, x, form, result, typedBy };
}
