// LSTM with constant float32 weights -> com.microsoft DynamicQuantizeLSTM: W and R as int8/uint8
// codes, the input and hidden state quantized at run time inside the kernel. Layout (ORT
// ContribOperators.md, DynamicQuantizeLSTM): W [num_directions, input_size, 4*hidden_size] and R
// [num_directions, hidden_size, 4*hidden_size], i.e. ONNX LSTM's W and R with the last two axes
// swapped; W_scale / W_zero_point (and R's) are [num_directions] (per tensor, one per direction)
// or [num_directions, 4*hidden_size] (per gate column). B, sequence_lens, initial_h, initial_c and
// P pass through unchanged. Silero's weights reach the LSTM through Unsqueeze, which is read
// through (dynamic-int8-graph.ts).

import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { addNamedConstant, dropUnreadChain, readWeightThroughShapeOps, replaceNode } from './dynamic-int8-graph.js';
import type { RewriteOutcome } from './dynamic-int8-matmul.js';
import { codeTensor, groupByAxes, type LinearWeightOptions, type QuantizedWeight, quantizeLinearWeight } from './dynamic-int8-weights.js';
import { MS_DOMAIN } from './weight-tensors.js';

export interface DynamicLstmSettings {
  weights: LinearWeightOptions;
  perChannel: boolean;
}

/** [dirs, rows, cols] -> [dirs, cols, rows]. */
function swapLastAxes(values: Float32Array, dirs: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let d = 0; d < dirs; d++) {
    const base = d * rows * cols;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[base + c * rows + r] = values[base + r * cols + c];
  }
  return out;
}

export function rewriteLstm(model: Model, graph: Graph, node: Node, settings: DynamicLstmSettings): RewriteOutcome {
  if (node.attrInt('layout', 0) !== 0)
    return {
      done: false,
      code: 'lstm-layout',
      reason: 'DynamicQuantizeLSTM has no batch-first layout (layout = 1)',
    };
  const hidden = node.attrInt('hidden_size', 0);
  const direction = node.attrString('direction', 'forward');
  const dirs = direction === 'bidirectional' ? 2 : 1;
  const w = readWeightThroughShapeOps(graph, node.inputs[1]);
  const r = readWeightThroughShapeOps(graph, node.inputs[2]);
  if ('reason' in w) return { done: false, code: 'weight-not-constant-float', reason: w.reason };
  if ('reason' in r) return { done: false, code: 'weight-not-constant-float', reason: r.reason };
  if (w.tensor.dataType !== DataType.FLOAT || r.tensor.dataType !== DataType.FLOAT)
    return {
      done: false,
      code: 'weight-not-float32',
      reason: 'LSTM weights are not float32',
    };
  const gates = 4 * hidden;
  if (hidden <= 0 || r.values.length !== dirs * gates * hidden || w.values.length % (dirs * gates) !== 0) {
    return {
      done: false,
      code: 'weight-shape',
      reason: `W/R sizes (${w.values.length}, ${r.values.length}) do not fit hidden_size ${hidden} and ${dirs} direction(s)`,
    };
  }
  const inputSize = w.values.length / (dirs * gates);
  const keep = settings.perChannel ? [0, 2] : [0];
  const scaleDims = settings.perChannel ? [dirs, gates] : [dirs];
  const label = node.label.replace(/[^A-Za-z0-9_./-]/g, '_');
  const quantize = (values: Float32Array, rows: number, base: string): { names: string[]; q: QuantizedWeight } => {
    const dims = [dirs, rows, gates];
    const q = quantizeLinearWeight(swapLastAxes(values, dirs, gates, rows), groupByAxes(dims, keep), settings.weights);
    return {
      q,
      names: [
        addNamedConstant(model, graph, codeTensor('', settings.weights.type, dims, q.codes), `${base}_quantized`, node),
        addNamedConstant(model, graph, Tensor.fromArray('', DataType.FLOAT, scaleDims, q.scales), `${base}_scale`, node),
        addNamedConstant(model, graph, codeTensor('', settings.weights.type, scaleDims, q.zeroPoints), `${base}_zero_point`, node),
      ],
    };
  };
  const qw = quantize(w.values, inputSize, `${label}_W`);
  const qr = quantize(r.values, hidden, `${label}_R`);
  const rest = [...node.inputs.slice(3, 8)];
  while (rest.length < 5) rest.push('');
  const replacement = new Node({
    opType: 'DynamicQuantizeLSTM',
    domain: MS_DOMAIN,
    name: graph.uniqueName(`${label}_DynamicQuantizeLSTM`),
    inputs: [node.inputs[0], qw.names[0], qr.names[0], ...rest, qw.names[1], qw.names[2], qr.names[1], qr.names[2]],
    outputs: [...node.outputs],
    attributes: node.attributes.filter((a) => a.name !== 'layout'),
  });
  const [wName, rName] = [node.inputs[1], node.inputs[2]];
  replaceNode(graph, node, [replacement]);
  dropUnreadChain(graph, wName);
  dropUnreadChain(graph, rName);
  const count = w.values.length + r.values.length;
  const params = 2 * scaleDims.reduce((a, b) => a * b, 1);
  const sqnr =
    10 *
    Math.log10(
      (energy(w.values) + energy(r.values)) /
        (noise(swapLastAxes(w.values, dirs, gates, inputSize), qw.q.dequantized) + noise(swapLastAxes(r.values, dirs, gates, hidden), qr.q.dequantized)),
    );
  return {
    done: true,
    tensor: {
      name: `${wName}, ${rName}`,
      op: 'LSTM',
      bytesBefore: count * 4,
      bytesAfter: count + params * 5,
      sqnrDb: sqnr,
    },
  };
}

function energy(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return sum;
}

function noise(exact: Float32Array, approx: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < exact.length; i++) sum += (exact[i] - approx[i]) ** 2;
  return sum;
}
