// Relu then MaxPool becomes MaxPool then Relu in the training graph. Relu is monotonic, so the
// pooled values are the same, and so is the gradient: where a window's maximum is positive both
// orders route dY to the same element (the first maximum), and where it is not, both give zero.
// The Relu and its backward pass then touch a tensor a quarter the size (2x2 windows).
import { isStandardDomain } from '../../ir/constants.js';
import type { Graph } from '../../ir/graph.js';
import type { TrainingRewrite } from './rewrite.js';

export const reluAfterMaxPool: TrainingRewrite = {
  name: 'relu-after-maxpool',
  description: 'Relu -> MaxPool becomes MaxPool -> Relu (same values and gradients, a smaller Relu)',
  run(graph: Graph): number {
    let count = 0;
    for (const pool of [...graph.nodes]) {
      if (pool.opType !== 'MaxPool' || !isStandardDomain(pool.domain) || pool.outputs.length !== 1) continue;
      const relu = graph.producer(pool.inputs[0]);
      if (relu === undefined || relu.opType !== 'Relu' || !isStandardDomain(relu.domain)) continue;
      const between = relu.outputs[0];
      if (graph.consumers(between).length !== 1 || graph.isGraphOutput(between)) continue;
      const pooled = graph.uniqueName(`${pool.outputs[0]}/before_relu`);
      const output = pool.outputs[0];
      pool.inputs = [relu.inputs[0]];
      pool.outputs = [pooled];
      relu.inputs = [pooled];
      relu.outputs = [output];
      // The value between them is gone (its declared shape with it); the pool now runs first.
      graph.valueInfo = graph.valueInfo.filter((v) => v.name !== between);
      const [r, p] = [graph.nodes.indexOf(relu), graph.nodes.indexOf(pool)];
      graph.nodes[r] = pool;
      graph.nodes[p] = relu;
      graph.changed();
      count++;
    }
    return count;
  },
};
