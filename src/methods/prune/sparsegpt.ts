// SparseGPT as a prune pass: each layer pruned with the OBS update from its calibration Hessian
// XᵀX (kernels/sparsegpt.ts), damping 0.01 of the mean diagonal, blocks of 128 columns; the kept
// weights change to make up for the removed ones.
import { type SparseGptOptions, sparseGpt } from '../../kernels/sparsegpt.js';
import type { Pass } from '../../pipeline/pass.js';
import { type LayerSolver, type OneShotOptions, oneShotPrune } from './one-shot.js';

export interface SparseGptPassOptions extends OneShotOptions {
  /** Columns per block (default 128). */
  blockSize?: number;
  /** Share of the mean diagonal of XᵀX added to it (default 0.01). */
  damping?: number;
}

function sparseGptSolver(options: SparseGptOptions): LayerSolver {
  return {
    method: 'sparsegpt',
    statistic: 'gram',
    solve(layer, weights, hessian) {
      const { weights: pruned, mask } = sparseGpt(weights, layer.rows, layer.cols, hessian, options);
      return { weights: pruned, mask };
    },
  };
}

export const sparseGptPass: Pass<SparseGptPassOptions> = {
  name: 'prune-sparsegpt',
  description: 'prune each layer with the OBS weight update from calibration Hessians XᵀX (SparseGPT)',
  run: (model, options, ctx) => oneShotPrune(model, options, sparseGptSolver(options), ctx),
};
