// Every rewrite applied to the forward graph before the loss and autodiff (training-graph.ts),
// in order.
import { reluAfterMaxPool } from './relu-after-maxpool.js';
import type { TrainingRewrite } from './rewrite.js';

export const FORWARD_REWRITES: readonly TrainingRewrite[] = [reluAfterMaxPool];
