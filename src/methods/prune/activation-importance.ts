// Activation importance for channel pruning: a channel matters as much as it fires on real
// samples. For every layer of a group, the mean |activation| of each of its channels is measured on
// the calibration samples: a producing layer's output (Conv/ConvTranspose/Gemm/MatMul rows), and a
// reading layer's input (the columns it reads). importance.ts aggregates these over the group's
// members as it does weight norms. Weights alone miss what the data does: PP-OCR's BatchNorm
// shifts and HardSwish leave small-weight channels carrying large values, and the reverse.
import { collectActivations } from '../../eval/activation-stats.js';
import { ChannelMeans } from '../../eval/channel-means.js';
import type { SampleSource } from '../../eval/samples.js';
import type { ChannelAnalysis, ChannelMember } from '../../graph-edit/channel-groups.js';
import { constantValue } from '../../ir/constants.js';
import type { Model } from '../../ir/model.js';
import type { OrtModule } from '../../runtime/ort-types.js';

/** Mean |activation| per position of a member's channel axis, by member. */
export type ActivationScores = ReadonlyMap<ChannelMember, Float64Array>;

const LAYERS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/** The activation a member's positions lie on, one channel per position, or undefined when they do not. */
function watchedValue(member: ChannelMember): { value: string; axis: number } | undefined {
  const node = member.node;
  if (!LAYERS.has(node.opType) || member.graph.parent !== undefined || member.input !== 1) return undefined;
  if (member.role === 'weight') return { value: node.outputs[0], axis: node.opType === 'MatMul' ? -1 : 1 };
  if (member.role !== 'weight-in') return undefined;
  // Grouped convolutions read group x positions channels: their positions are not the input's channels.
  if ((node.opType === 'Conv' || node.opType === 'ConvTranspose') && node.attrInt('group', 1) !== 1) return undefined;
  const input = node.inputs[0];
  if (constantValue(member.graph, input) !== undefined) return undefined;
  const axis = node.opType === 'MatMul' ? -1 : node.opType === 'Gemm' ? (node.attrInt('transA', 0) !== 0 ? 0 : 1) : 1;
  return { value: input, axis };
}

/**
 * Mean |activation| of every channel of every member of `analysis` that a layer produces or reads,
 * over `samples` (at most `limit`, default 64), on `model` as analysed (before pruning). Members
 * whose measured channel count differs from their positions are left out (importance falls back).
 */
export async function activationScores(ort: OrtModule, model: Model, analysis: ChannelAnalysis, samples: SampleSource, options: { threads?: number; limit?: number } = {}): Promise<ActivationScores> {
  const watched = new Map<ChannelMember, ChannelMeans>();
  const accumulators = new Map<string, ChannelMeans>();
  for (const member of analysis.members) {
    const at = watchedValue(member);
    if (at === undefined) continue;
    const key = `${at.value}\u0000${at.axis}`;
    let accumulator = accumulators.get(key);
    if (accumulator === undefined) {
      accumulator = new ChannelMeans(at.value, at.axis, true);
      accumulators.set(key, accumulator);
    }
    watched.set(member, accumulator);
  }
  await collectActivations(ort, model, [...accumulators.values()], samples, { threads: options.threads, limit: options.limit ?? 64, purpose: 'activation importance' });
  const scores = new Map<ChannelMember, Float64Array>();
  for (const [member, accumulator] of watched) {
    const means = accumulator.means();
    if (means.length === member.atoms.length) scores.set(member, means);
  }
  return scores;
}
