// QDQ -> QOperator: for runtimes that want explicit integer ops instead of fusing Q/DQ patterns
// themselves (older onnxruntime builds, some NPUs), rewrite
//   DQ(x), DQ(w)[, DQ(bias int32)] -> Conv [-> Relu] -> Q      as  QLinearConv
//   DQ(a), DQ(b)                   -> MatMul [-> Relu] -> Q    as  QLinearMatMul
// with the same codes, scales and zero points (ONNX QLinearConv/QLinearMatMul, opset 10). A Relu
// between the op and the Q is dropped only when the Q's zero point is its lowest code, where the
// Q's saturation already clips negatives to 0. DequantizeLinear nodes nobody else reads go away.
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import { Node } from '../../ir/node.js';
import { isOp, isRead } from '../../optimize/util/graph-queries.js';

/** Rewrites the main graph's fusable QDQ Conv and MatMul groups; returns how many were converted. */
export function toQOperators(graph: Graph): { converted: number } {
  let converted = 0;
  for (const node of [...graph.nodes]) {
    if (!isOp(node, 'Conv', 'MatMul')) continue;
    const group = matchGroup(graph, node);
    if (group === undefined) continue;
    const [x, w] = group.inputs;
    const inputs =
      node.opType === 'Conv'
        ? [...x.inputs, ...w.inputs, ...group.q.inputs.slice(1), ...(group.bias === undefined ? [] : [group.bias.inputs[0]])]
        : [...x.inputs, ...w.inputs, ...group.q.inputs.slice(1)];
    const replacement = new Node({
      opType: node.opType === 'Conv' ? 'QLinearConv' : 'QLinearMatMul',
      inputs,
      outputs: [group.q.outputs[0]],
      name: graph.uniqueName(`${node.label}_quantized`),
      attributes: node.opType === 'Conv' ? node.attributes : [],
    });
    graph.addNode(replacement, graph.nodes.indexOf(node));
    for (const gone of [group.q, ...group.relu, node]) graph.removeNode(gone);
    graph.changed();
    for (const dq of [...group.inputs, ...(group.bias === undefined ? [] : [group.bias])]) {
      if (!isRead(graph, dq.outputs[0]) && graph.nodes.includes(dq)) graph.removeNode(dq);
    }
    graph.changed();
    converted++;
  }
  return { converted };
}

interface Group {
  inputs: [Node, Node];
  bias?: Node;
  relu: Node[];
  q: Node;
}

function matchGroup(graph: Graph, node: Node): Group | undefined {
  const x = graph.producer(node.inputs[0]);
  const w = graph.producer(node.inputs[1]);
  if (!isOp(x, 'DequantizeLinear') || !isOp(w, 'DequantizeLinear')) return undefined;
  // QLinear ops take explicit zero points, and one scale for x (per-axis x is not allowed).
  if (x.inputs.length < 3 || w.inputs.length < 3 || x.attribute('axis') !== undefined) return undefined;
  let bias: Node | undefined;
  if (node.inputs.length > 2 && node.inputs[2] !== '') {
    const b = graph.producer(node.inputs[2]);
    if (!isOp(b, 'DequantizeLinear') || constantValue(graph, b.inputs[0])?.dataType !== DataType.INT32) return undefined;
    bias = b;
  }
  if (node.opType === 'MatMul' && w.attribute('axis') !== undefined && constantValue(graph, w.inputs[0])?.dims.length !== 2) return undefined;
  const relu: Node[] = [];
  let out = node.outputs[0];
  for (;;) {
    if (graph.isGraphOutput(out)) return undefined;
    const readers = graph.consumers(out);
    if (readers.length !== 1) return undefined;
    const next = readers[0];
    if (next.opType === 'QuantizeLinear' && isOp(next, 'QuantizeLinear')) {
      if (relu.length > 0 && !zeroAtLowestCode(graph, next)) return undefined;
      return { inputs: [x, w], bias, relu, q: next };
    }
    if (next.opType !== 'Relu' || next.domain !== '') return undefined;
    relu.push(next);
    out = next.outputs[0];
  }
}

function zeroAtLowestCode(graph: Graph, q: Node): boolean {
  const zero = q.inputs[2] === undefined ? undefined : constantValue(graph, q.inputs[2]);
  if (zero === undefined) return false;
  const value = (zero.data() as Int8Array | Uint8Array)[0];
  return zero.dataType === DataType.UINT8 ? value === 0 : value === -128;
}
