// BatchNormalization at inference computes y = scale * (x - mean) / sqrt(var + epsilon) + B per
// channel: an affine map that the preceding Conv, ConvTranspose, Gemm or MatMul absorbs into its
// weights and bias (see util/channel-affine.ts for the layouts). The producer then writes the
// BatchNormalization's output itself. Folding must happen before quantization or pruning, which
// would otherwise see the unscaled weights.
import { constantValue } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { channelLayout, foldChannelAffine } from './util/channel-affine.js';
import { allGraphs, isOp, isRead, onlyReader } from './util/graph-queries.js';
import { PassResult } from './util/report.js';
import { floatValues, isFoldableFloat } from './util/tensor-math.js';

export const foldBatchNormPass: Pass = {
  name: 'fold-batchnorm',
  description: 'folds BatchNormalization into the weights of the preceding Conv, ConvTranspose, Gemm or MatMul',
  run(model) {
    const result = new PassResult(['nodesRemoved', 'batchNormsFolded']);
    for (const graph of allGraphs(model.graph)) {
      for (const node of [...graph.nodes]) {
        if (!isOp(node, 'BatchNormalization')) continue;
        const why = fold(model, graph, node);
        if (why !== undefined) {
          result.warn('batchnorm-kept', `BatchNormalization '${node.label}' not folded: ${why}`, { node: node.label });
          continue;
        }
        result.count('nodesRemoved');
        result.count('batchNormsFolded');
      }
    }
    return result.done();
  },
};

function fold(model: Model, graph: Graph, bn: Node): string | undefined {
  if (bn.attrInt('training_mode', 0) !== 0) return 'training_mode is set';
  const opset = model.opset('') ?? 0;
  if (opset < 7 && bn.attrInt('is_test', 0) === 0) return 'is_test is 0 (training mode)';
  if (opset < 9 && bn.attrInt('spatial', 1) === 0) return 'spatial is 0 (statistics per element, not per channel)';
  for (const extra of bn.outputs.slice(1)) if (extra !== '' && isRead(graph, extra)) return `its training output '${extra}' is read`;

  const x = bn.inputs[0];
  const producer = graph.producer(x);
  if (producer === undefined) return `its input '${x}' is not computed by a node of this graph`;
  const layout = channelLayout(graph, producer);
  if (typeof layout === 'string') return layout;
  // BatchNormalization's channels are on axis 1; for MatMul they sit on the last axis.
  if (layout.axis !== 1) return `the channels of '${producer.label}' are not known to be on axis 1 (input rank unknown or not 2)`;
  if (!onlyReader(graph, x, bn)) return `'${x}' has other readers besides the BatchNormalization`;

  const params: Float64Array[] = [];
  for (const [i, what] of ['scale', 'B', 'input_mean', 'input_var'].entries()) {
    const name = bn.inputs[i + 1] ?? '';
    const tensor = name === '' ? undefined : constantValue(graph, name);
    if (tensor === undefined) return `its ${what} '${name}' is not a constant`;
    if (!isFoldableFloat(tensor.dataType)) return `its ${what} '${name}' is not a float tensor`;
    if (tensor.elementCount !== layout.channels) return `its ${what} '${name}' has ${tensor.elementCount} values, '${producer.label}' ${layout.channels} channels`;
    params.push(floatValues(tensor));
  }
  const [gamma, beta, mean, variance] = params;
  const epsilon = bn.attrFloat('epsilon', 1e-5);
  const scale = new Float64Array(layout.channels);
  const shift = new Float64Array(layout.channels);
  for (let c = 0; c < layout.channels; c++) {
    scale[c] = gamma[c] / Math.sqrt(variance[c] + epsilon);
    shift[c] = beta[c] - mean[c] * scale[c];
  }
  const refused = foldChannelAffine(model, graph, producer, scale, shift);
  if (refused !== undefined) return refused;
  graph.removeNode(bn);
  producer.outputs = producer.outputs.map((o) => (o === x ? bn.outputs[0] : o));
  graph.valueInfo = graph.valueInfo.filter((v) => v.name !== x);
  graph.changed();
  return undefined;
}
