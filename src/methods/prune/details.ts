// What a prune pass reports beyond its counters: each weight it changed, and for structured
// pruning each channel group with its widths before and after (or why it was left whole).
// Library-level names are camelCase; the recipe step's report turns them into snake_case JSON.
import type { ChannelBlock } from '../../graph-edit/channel-groups.js';
import type { PassReport } from '../../pipeline/pass.js';

export interface PrunedTensor {
  name: string;
  /** The layer reading it (the first, when several do). */
  node: string;
  op: string;
  dimsBefore: number[];
  dimsAfter: number[];
  /** Exact zeros before and after (unstructured and N:M). */
  zerosBefore: number;
  zerosAfter: number;
}

export interface PrunedGroup {
  id: number;
  /** Layers whose output channels the group holds. */
  sources: string[];
  channelsBefore: number;
  channelsAfter: number;
  /** Why the group kept every channel: blocked by a coupling node, excluded, protected by the ratio cap. */
  kept?: string;
  blocked?: ChannelBlock;
}

export interface PruneDetails {
  tensors: PrunedTensor[];
  groups?: PrunedGroup[];
  /** Layers left alone and why (excluded, --only, unsupported weight type, not compensated). */
  skipped: { node: string; reason: string }[];
  /** Channels: layers whose biases absorbed the removed channels' means, measured on this many samples. */
  compensation?: { layers: number; fitted?: number; samples: number };
  /** Matrix layers refitted to the original's outputs (reconstruct.ts), in rounds by depth. */
  reconstruction?: { layers: number; rounds: number; samples: number };
  /** Layers: the named nodes removed, and the value their readers read now. */
  dropped?: { node: string; op: string; kind: 'residual' | 'layer'; kept: string }[];
}

/** A prune pass's report: the counters and warnings of every pass, plus the details. */
export type PrunePassReport = PassReport & { details: PruneDetails };
