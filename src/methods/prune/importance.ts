// How much each channel of a group matters, aggregated over every layer the group touches, as
// DepGraph does: a Conv's output rows, the next layer's input columns, a flattened Gemm's blocks
// of columns all count. Per member, the channel's slices are summed (|w| for l1, w² for l2,
// |w·∂L/∂w| for first-order Taylor), then divided by the member's mean over channels so that a
// wide layer does not drown a narrow one; a channel's importance is the mean over its members.
// 'bn' ranks by |γ| of the BatchNormalization in the group (network slimming, Liu et al. 2017).
// 'activation' ranks by the mean |activation| of the channel where each layer of the group
// produces or reads it, measured on samples (activation-importance.ts).
import { constantValue } from '../../ir/constants.js';
import type { ActivationScores } from './activation-importance.js';
import { axisNorms, axisProductNorms } from '../../kernels/sparsity.js';
import type { ChannelAnalysis, ChannelGroup, ChannelMember } from '../../graph-edit/channel-groups.js';

export const IMPORTANCE_NAMES = ['l1', 'l2', 'bn', 'taylor', 'activation'] as const;
export type ImportanceName = (typeof IMPORTANCE_NAMES)[number];

export interface ImportanceInput {
  kind: ImportanceName;
  /** Taylor: ∂L/∂w of the main graph's weights by name, summed over a few batches. */
  gradients?: ReadonlyMap<string, Float32Array>;
  /** Activation: mean |activation| per position of the members measured. */
  activations?: ActivationScores;
}

/** Channel scores of one group, aligned with `group.channels`, and the criterion actually used. */
export interface GroupImportance {
  scores: Float64Array;
  used: ImportanceName;
}

/** Scores of every channel of `group` (higher: keep). Falls back to l2 when the criterion has nothing to read. */
export function groupImportance(analysis: ChannelAnalysis, group: ChannelGroup, input: ImportanceInput): GroupImportance {
  const members = analysis.members.filter((m) => m.atoms.some((a) => analysis.groupOf(a) === group));
  const pick = (kind: ImportanceName): ChannelMember[] => {
    if (kind === 'bn') return members.filter((m) => m.role === 'norm-scale');
    const weights = members.filter((m) => m.role === 'weight' || m.role === 'weight-in');
    if (kind === 'activation') return members.filter((m) => input.activations?.has(m) === true);
    if (kind === 'taylor') return weights.filter((m) => input.gradients?.has(m.name) === true && m.graph.parent === undefined);
    return weights;
  };
  let used = input.kind;
  let chosen = pick(used);
  if (chosen.length === 0 && used !== 'l2') {
    used = 'l2';
    chosen = pick('l2');
  }
  const index = new Map(group.channels.map((c, i) => [c, i]));
  const sums = new Float64Array(group.channels.length);
  const counts = new Float64Array(group.channels.length);
  for (const m of chosen) {
    const perPosition = used === 'activation' ? input.activations?.get(m) : weightScores(m, used, input);
    if (perPosition === undefined) continue;
    // Positions of one channel (a flattened block, tied group positions) add up.
    const perChannel = new Map<number, number>();
    m.atoms.forEach((atom, p) => {
      const channel = index.get(analysis.atoms.find(atom));
      if (channel !== undefined) perChannel.set(channel, (perChannel.get(channel) ?? 0) + perPosition[p]);
    });
    if (perChannel.size === 0) continue;
    const mean = [...perChannel.values()].reduce((a, b) => a + b, 0) / perChannel.size;
    for (const [channel, value] of perChannel) {
      sums[channel] += mean > 0 ? value / mean : 0;
      counts[channel] += 1;
    }
  }
  const scores = sums.map((s, i) => (counts[i] > 0 ? s / counts[i] : 0));
  return { scores, used };
}

/** Per position of a member's axis: the norm of its weight slices, or |w·∂L/∂w| summed (taylor). */
function weightScores(m: ChannelMember, used: ImportanceName, input: ImportanceInput): ArrayLike<number> | undefined {
  const tensor = constantValue(m.graph, m.name);
  if (tensor === undefined) return undefined;
  const values = tensor.data() as Float32Array;
  return used === 'taylor'
    ? axisProductNorms(values, input.gradients?.get(m.name) as Float32Array, tensor.dims, m.axis)
    : axisNorms(values, tensor.dims, m.axis, used === 'l1' || used === 'bn' ? 1 : 2);
}
