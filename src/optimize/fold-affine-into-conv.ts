// Mul, Add, Sub or Div by a constant that is the same across everything but the output channels
// (a scalar, or [C,1,1] after a Conv, [N] after a Gemm) is an affine map per channel, which the
// producing Conv, ConvTranspose, Gemm or MatMul absorbs into its weights and bias. Exporters leave
// these behind from scaling layers, normalization written by hand, and x/6 style constants.
import { constantValue } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { LINEAR_PRODUCERS, channelLayout, foldChannelAffine } from './util/channel-affine.js';
import { allGraphs, isOp, onlyReader } from './util/graph-queries.js';
import { PassResult } from './util/report.js';
import { perChannel } from './util/tensor-math.js';

export const foldAffineIntoConvPass: Pass = {
  name: 'fold-affine-into-conv',
  description: 'folds Mul/Add/Sub/Div by per-channel constants into the preceding Conv, ConvTranspose, Gemm or MatMul',
  run(model) {
    const result = new PassResult(['nodesRemoved']);
    for (const graph of allGraphs(model.graph)) {
      for (const node of [...graph.nodes]) {
        if (!isOp(node, 'Mul', 'Add', 'Sub', 'Div')) continue;
        const outcome = fold(model, graph, node);
        if (outcome === 'not-applicable') continue;
        if (outcome !== undefined) {
          result.warn('affine-kept', `${node.opType} '${node.label}' not folded: ${outcome}`, { node: node.label });
          continue;
        }
        result.count('nodesRemoved');
        result.count(`${node.opType}Folded`);
      }
    }
    return result.done();
  },
};

/** undefined when folded; 'not-applicable' when the node is not this pattern; else why not. */
function fold(model: Model, graph: Graph, node: Node): string | undefined {
  const [a, b] = node.inputs;
  if (a === undefined || b === undefined) return 'not-applicable';
  // Which operand is the linear layer's output and which the constant.
  const producerA = graph.producer(a);
  const producerB = graph.producer(b);
  let variableFirst: boolean;
  if (isOp(producerA, ...LINEAR_PRODUCERS) && constantValue(graph, b) !== undefined) variableFirst = true;
  else if (isOp(producerB, ...LINEAR_PRODUCERS) && constantValue(graph, a) !== undefined && node.opType !== 'Div') variableFirst = false;
  else return 'not-applicable';
  const value = variableFirst ? a : b;
  const producer = (variableFirst ? producerA : producerB) as Node;
  const constant = constantValue(graph, variableFirst ? b : a);
  if (constant === undefined) return 'not-applicable';

  const layout = channelLayout(graph, producer);
  if (typeof layout === 'string') return layout;
  if (constant.dataType !== layout.weight.dataType) return `the constant '${constant.name}' differs in type from the weights of '${producer.label}'`;
  // With the output rank unknown (MatMul), only a constant of rank <= 1 is sure to align with the last axis.
  const rank = layout.rank ?? (constant.dims.length <= 1 ? 1 : undefined);
  const axis = layout.axis ?? (rank === undefined ? undefined : rank - 1);
  if (rank === undefined || axis === undefined) return `the output rank of '${producer.label}' is unknown`;
  const values = perChannel(constant, rank, axis, layout.channels);
  if (values === undefined) return `the constant '${constant.name}' [${constant.dims.join(',')}] is not one value per output channel of '${producer.label}'`;
  if (!onlyReader(graph, value, node)) return `'${value}' has other readers`;

  const channels = layout.channels;
  const scale = new Float64Array(channels).fill(1);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const k = values[c];
    if (node.opType === 'Mul') scale[c] = k;
    else if (node.opType === 'Div') scale[c] = 1 / k;
    else if (node.opType === 'Add') shift[c] = k;
    else if (variableFirst) shift[c] = -k;
    else {
      // k - P(x): negate the weights, then add k.
      scale[c] = -1;
      shift[c] = k;
    }
  }
  if (node.opType === 'Div' && values.some((k) => k === 0 || !Number.isFinite(1 / k))) return 'it divides by zero';
  const refused = foldChannelAffine(model, graph, producer, scale, shift);
  if (refused !== undefined) return refused;
  graph.removeNode(node);
  producer.outputs = producer.outputs.map((o) => (o === value ? node.outputs[0] : o));
  graph.valueInfo = graph.valueInfo.filter((v) => v.name !== value);
  graph.changed();
  return undefined;
}
