// `--method layers --drop-layers LIST`: a student derived by removing whole residual blocks or
// shape-preserving layers (graph-edit/drop-layers.ts), trained back by the prune step's recovery
// (distillation from the original without labels) like the other methods.
import { dropLayers } from '../../graph-edit/drop-layers.js';
import type { Dim } from '../../ir/value-info.js';
import type { Pass } from '../../pipeline/pass.js';
import type { PruneDetails } from './details.js';

export interface DropLayersOptions {
  layers: readonly string[];
  inputShapes?: Record<string, Dim[]>;
}

export const dropLayersPass: Pass<DropLayersOptions> = {
  name: 'prune-layers',
  description: 'remove the named residual blocks (their Add) or shape-preserving layers, and what only they read',
  run(model, options) {
    if (options.layers.length === 0) throw new Error('prune: --method layers needs the layers to drop: give --drop-layers NAME[,NAME...]');
    const result = dropLayers(model, options.layers, { inputShapes: options.inputShapes });
    const details: PruneDetails = {
      tensors: [],
      skipped: [],
      dropped: result.dropped.map((d) => ({ node: d.node, op: d.op, kind: d.kind, kept: d.kept })),
    };
    return { stats: { droppedLayers: result.dropped.length, nodesRemoved: result.nodesRemoved }, warnings: [], details };
  },
};
