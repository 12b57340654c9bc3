// Unstructured magnitude pruning (torch.nn.utils.prune.l1_unstructured and global_unstructured):
// the weights of smallest magnitude are set to zero, a share `sparsity` of each layer's weight
// (scope 'layer') or of all selected weights ranked together (scope 'global'). The graph keeps
// its shapes: onnxruntime has no sparse kernels, so this buys a smaller compressed download only.
import { Tensor } from '../../ir/tensor.js';
import { globalMagnitudeMasks, magnitudeMask, zeroCount } from '../../kernels/sparsity.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import type { Pass } from '../../pipeline/pass.js';
import type { PruneDetails, PrunedTensor } from './details.js';
import { type LayerChoice, pruneTargets } from './layers.js';

export interface MagnitudeOptions extends LayerChoice {
  /** Share of the weights set to zero, in [0, 1). */
  sparsity: number;
  /** Rank each layer's weights on their own (default) or all together. */
  scope?: 'layer' | 'global';
}

export const magnitudePass: Pass<MagnitudeOptions> = {
  name: 'prune-magnitude',
  description: 'set the smallest-magnitude weights of Conv/MatMul/Gemm layers to zero (per layer or ranked globally)',
  run(model, options) {
    const { targets, skipped } = pruneTargets(model, options);
    const values = targets.map((t) => t.weight.data() as Float32Array | Float64Array);
    const masks = options.scope === 'global' ? globalMagnitudeMasks(values, options.sparsity) : values.map((v) => magnitudeMask(v, options.sparsity));
    const tensors: PrunedTensor[] = [];
    targets.forEach((target, i) => {
      const data = values[i].slice();
      const mask = masks[i];
      for (let j = 0; j < data.length; j++) if (mask[j] === 0) data[j] = 0;
      const zerosBefore = zeroCount(values[i]);
      replaceConstant(model, target.scope, target.name, Tensor.fromArray(target.name, target.weight.dataType, target.weight.dims, data), target.readers);
      const reader = target.readers[0].node;
      tensors.push({ name: target.name, node: reader.label, op: reader.opType, dimsBefore: [...target.weight.dims], dimsAfter: [...target.weight.dims], zerosBefore, zerosAfter: zeroCount(data) });
    });
    const details: PruneDetails = { tensors, skipped };
    return { stats: { tensors: tensors.length, zeroed: tensors.reduce((n, t) => n + t.zerosAfter - t.zerosBefore, 0), skipped: skipped.length }, warnings: [], details };
  },
};
