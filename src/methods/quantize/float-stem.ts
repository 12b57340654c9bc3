// Keeps a network's stem in float when int8 cannot make it faster: a first Conv that reads a graph
// input with 1 or 2 channels, and the MaxPool after it. onnxruntime's QLinearConv needs input
// channels % 4 == 0 for its fast kernel, so such a Conv would be padded to 4 channels (pad-input-
// channels.ts): 2-4x the work, against a float Conv whose NCHWc kernel reads the few channels
// directly. QLinearConv also runs one parallel section per image of the batch, where the float
// Conv runs one for the whole batch: at batch 64 on 2 threads the float stem costs less and
// waits less. Fashion-MNIST CNN, onnxruntime profile at batch 64: the whole int8 model 2.59 ->
// 2.01 ms at 1 thread, 1.45 -> 1.13 ms at 2 (fp32 5.2 / 2.6 ms).
//
// Conv -> Relu -> MaxPool becomes Conv -> MaxPool -> Relu (exact: a max commutes with a
// monotonic function), so that the value quantized for the next layer is the Relu's output.
// With the QuantizeLinear straight after the MaxPool, onnxruntime's QDQ propagation would move
// it above the MaxPool and run a uint8 NCHW MaxPool (3.3 ms, more than the whole model); after a
// Relu it stays, and onnxruntime drops the Relu into the QuantizeLinear (zero point 0).
import { constantValue, isStandardDomain } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Node } from '../../ir/node.js';
import { topologicalSort } from '../../ir/toposort.js';

/** Input channels at or below which a graph-input Conv stays float (padding to 4 at least doubles its work). */
export const FLOAT_STEM_MAX_CHANNELS = 2;

export const FLOAT_STEM_REASON = `float stem: a first Conv with <= ${FLOAT_STEM_MAX_CHANNELS} input channels (and its MaxPool) is faster in float in onnxruntime`;

/**
 * Finds the stems to keep float, reordering Relu -> MaxPool to MaxPool -> Relu where needed;
 * returns the nodes (Conv and MaxPool) that quantization must leave alone.
 */
export function floatStems(graph: Graph): Node[] {
  const kept: Node[] = [];
  const inputs = new Set(graph.inputs.map((i) => i.name));
  for (const conv of [...graph.nodes]) {
    if (conv.opType !== 'Conv' || !isStandardDomain(conv.domain) || conv.attrInt('group', 1) !== 1) continue;
    if (!inputs.has(conv.inputs[0]) || graph.initializer(conv.inputs[0]) !== undefined) continue;
    const weight = constantValue(graph, conv.inputs[1]);
    if (weight === undefined || weight.dataType !== DataType.FLOAT || weight.dims.length < 3 || weight.dims[1] > FLOAT_STEM_MAX_CHANNELS) continue;
    kept.push(conv);
    const pool = stemPool(graph, conv);
    if (pool !== undefined) kept.push(pool);
  }
  if (kept.length > 0) topologicalSort(graph);
  return kept;
}

/** The MaxPool that stays float with `conv`, after making sure a Relu follows it; undefined if none. */
function stemPool(graph: Graph, conv: Node): Node | undefined {
  const first = onlyReader(graph, conv.outputs[0]);
  if (first === undefined) return undefined;
  if (isPool(first)) {
    // Conv -> MaxPool -> Relu already has the order wanted; without a Relu the MaxPool is quantized.
    const after = onlyReader(graph, first.outputs[0]);
    return after !== undefined && after.opType === 'Relu' && isStandardDomain(after.domain) ? first : undefined;
  }
  if (first.opType !== 'Relu' || !isStandardDomain(first.domain)) return undefined;
  const pool = onlyReader(graph, first.outputs[0]);
  if (pool === undefined || !isPool(pool)) return undefined;
  // conv -> relu(a -> r) -> pool(r -> p)  becomes  conv -> pool(a -> r) -> relu(r -> p): every
  // reader of p is unchanged; r now holds the pooled values before the Relu.
  const [a, r, p] = [conv.outputs[0], first.outputs[0], pool.outputs[0]];
  pool.inputs[0] = a;
  pool.outputs[0] = r;
  first.inputs[0] = r;
  first.outputs[0] = p;
  graph.valueInfo = graph.valueInfo.filter((v) => v.name !== r);
  graph.changed();
  return pool;
}

/** A MaxPool without the Indices output (that one has no float fast path to keep). */
function isPool(node: Node): boolean {
  return node.opType === 'MaxPool' && isStandardDomain(node.domain) && (node.outputs.length === 1 || node.outputs[1] === '');
}

/** The one node reading `value`, when it is not also a graph output. */
function onlyReader(graph: Graph, value: string): Node | undefined {
  if (graph.isGraphOutput(value)) return undefined;
  const readers = graph.consumers(value);
  return readers.length === 1 ? readers[0] : undefined;
}
