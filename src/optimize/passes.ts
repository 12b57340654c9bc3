// The registry of optimizer passes, in the order optimizeModel runs them. `level` says which
// optimization level includes a pass: 'basic' passes only remove what provably does nothing;
// 'full' adds the ones that rewrite weights (folding) or restructure the graph. Opt-in passes run
// only when asked for by name. Passes are listed here explicitly (no registration by import side
// effects), so a browser bundle carries what it imports and nothing else.
import type { Pass } from '../pipeline/pass.js';
import { commonSubexpressionPass } from './common-subexpression.js';
import { constantsToInitializersPass, initializersToConstantsPass } from './constants-to-initializers.js';
import { dedupeInitializersPass } from './dedupe-initializers.js';
import { eliminateDeadNodesPass } from './eliminate-dead-nodes.js';
import { eliminateIdentityPass } from './eliminate-identity.js';
import { eliminateNoopPass } from './eliminate-noop.js';
import { eliminateUnusedInitializersPass } from './eliminate-unused-initializers.js';
import { foldAffineIntoConvPass } from './fold-affine-into-conv.js';
import { foldBatchNormPass } from './fold-batchnorm.js';
import { foldConstants } from './fold-constants.js';
import { fuseAttention } from './fuse-attention.js';
import { fuseCachedAttention, fuseGroupQueryAttention } from './fuse-cached-attention.js';
import { fuseGelu } from './fuse-gelu.js';
import { fuseHardSwish } from './fuse-hardswish.js';
import { fuseLayerNorm } from './fuse-layernorm.js';
import { fuseSkipLayerNorm } from './fuse-skip-layernorm.js';
import { mergeReshapesPass } from './merge-reshapes.js';
import { mergeTransposesPass } from './merge-transposes.js';
import { pushRowGathersPass } from './push-row-gathers.js';
import { topologicalSortPass } from './topological-sort.js';

export type OptimizeLevel = 'basic' | 'full';

export interface OptimizerPassEntry {
  // Passes take their options from optimizeModel; every registered pass runs with its defaults.
  readonly pass: Pass<Record<string, never>>;
  readonly level: OptimizeLevel;
  /** Runs only when named in `passes` (e.g. the inverse of a default pass). */
  readonly optIn?: boolean;
}

export const OPTIMIZER_PASSES: readonly OptimizerPassEntry[] = [
  { pass: eliminateIdentityPass, level: 'basic' },
  { pass: eliminateDeadNodesPass, level: 'basic' },
  { pass: constantsToInitializersPass, level: 'basic' },
  { pass: initializersToConstantsPass, level: 'basic', optIn: true },
  { pass: dedupeInitializersPass, level: 'basic' },
  { pass: eliminateNoopPass, level: 'basic' },
  { pass: commonSubexpressionPass, level: 'basic' },
  // Exact: onnxruntime computes the folded values (needs ctx.ort; without it only shapes fold).
  { pass: foldConstants, level: 'basic' },
  { pass: foldBatchNormPass, level: 'full' },
  { pass: foldAffineIntoConvPass, level: 'full' },
  { pass: mergeTransposesPass, level: 'full' },
  { pass: mergeReshapesPass, level: 'full' },
  { pass: fuseLayerNorm, level: 'full' },
  { pass: fuseAttention, level: 'full' },
  // Opt-in: decoders with a KV cache into onnxruntime's fused forms (the form a deployment picks;
  // GroupQueryAttention drops the model's mask for its own causal one).
  { pass: fuseCachedAttention, level: 'full', optIn: true },
  { pass: fuseGroupQueryAttention, level: 'full', optIn: true },
  // Opt-in: onnxruntime 1.30's CPU SkipLayerNormalization ran slower than the Add and
  // LayerNormalization it replaces on spam-bert (the whole model 0.67-0.71x at batch 8 x 128 with
  // it, 0.84-1.09x without it on a loaded machine).
  { pass: fuseSkipLayerNorm, level: 'full', optIn: true },
  { pass: fuseGelu, level: 'full' },
  { pass: fuseHardSwish, level: 'full' },
  // After the fusions: MultiHeadAttention's query rows are independent, the exported ops' are not.
  { pass: pushRowGathersPass, level: 'full' },
  { pass: eliminateUnusedInitializersPass, level: 'basic' },
  { pass: topologicalSortPass, level: 'basic' },
];

/** A registered pass by name, or undefined. */
export function optimizerPass(name: string): OptimizerPassEntry | undefined {
  return OPTIMIZER_PASSES.find((entry) => entry.pass.name === name);
}
