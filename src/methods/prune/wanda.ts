// Wanda as a prune pass: each layer's weights scored by |W_ij|·‖X_j‖ over calibration inputs and
// the smallest of every output row (or of every run of M, for N:M) set to zero; no weight update.
import type { OneShotTarget } from '../../kernels/sparsegpt.js';
import { wandaMask } from '../../kernels/wanda.js';
import type { Pass } from '../../pipeline/pass.js';
import { type LayerSolver, type OneShotOptions, oneShotPrune } from './one-shot.js';

function wanda(target: OneShotTarget): LayerSolver {
  return {
    method: 'wanda',
    statistic: 'norms',
    solve(layer, weights, norms) {
      const mask = wandaMask(weights, layer.rows, layer.cols, norms, target);
      return { weights: weights.map((v, i) => (mask[i] === 1 ? v : 0)), mask };
    },
  };
}

export const wandaPass: Pass<OneShotOptions> = {
  name: 'prune-wanda',
  description: 'zero the weights of smallest |W|·‖X‖ in each output row, from calibration activations (Wanda)',
  run: (model, options, ctx) => oneShotPrune(model, options, wanda(options), ctx),
};
