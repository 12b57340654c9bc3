// The built-in `deep-compression` recipe (Han, Mao, Dally 2016): magnitude pruning per layer in
// three rounds of pruning and recovery training (the paper's iterative pruning; the sparsity rises
// on a cubic schedule), k-means weight sharing per tensor with centroid fine-tuning, then the
// entropy-coded pack. The paper's LeNet settings were about 92% pruned and 5-6 bits; 0.9 and 5 are
// the defaults here, each overridable (`shrink compress --sparsity --bits --epochs`). Pruning once
// and training after cost LeNet-300-100 0.65 points on Fashion-MNIST where three rounds cost none
// (bench/results/deep-compression.md and its history).
import { type Recipe, recipeFromData } from '../recipe.js';

export interface DeepCompressionSettings {
  /** Share of each layer's weights zeroed (default 0.9). */
  sparsity?: number;
  /** Codebook bits per tensor (default 5). */
  bits?: number;
  /** Recovery epochs after each of the 3 pruning rounds (default 2); centroid fine-tuning gets half, at least 1. */
  epochs?: number;
}

export const DEEP_COMPRESSION = { sparsity: 0.9, bits: 5, pruneRounds: 3, pruneEpochs: 2, clusterEpochs: 1 } as const;

/** The recipe as a recipe file would say it (snake_case keys), so it is checked like one. */
export function deepCompressionRecipe(settings: DeepCompressionSettings = {}): Recipe {
  const pruneEpochs = settings.epochs ?? DEEP_COMPRESSION.pruneEpochs;
  const clusterEpochs = settings.epochs === undefined ? DEEP_COMPRESSION.clusterEpochs : Math.max(1, Math.round(settings.epochs / 2));
  return recipeFromData(
    {
      description: 'Deep Compression: prune (magnitude per layer, recovery), cluster (k-means per tensor, centroid fine-tuning), pack',
      steps: [
        { prune: { method: 'magnitude', sparsity: settings.sparsity ?? DEEP_COMPRESSION.sparsity, scope: 'layer', epochs: pruneEpochs, rounds: DEEP_COMPRESSION.pruneRounds } },
        { cluster: { bits: settings.bits ?? DEEP_COMPRESSION.bits, epochs: clusterEpochs } },
        { pack: {} },
      ],
    },
    'deep-compression',
  );
}
