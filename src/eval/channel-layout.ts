// Where the channels of one axis lie in a row-major batch of an activation: `outer` blocks, each of
// `channels` runs of `inner` contiguous values. Shared by the per-channel accumulators (norms,
// maxima and sums, means), which fold batch after batch and must see the same channel count each time.

export interface ChannelLayout {
  channels: number;
  inner: number;
  outer: number;
}

/**
 * The layout of `axis` (negative counts from the end) in `dims`. `what` names the accumulator in
 * errors; `previous` is the channel count earlier batches had, which this one must match.
 */
export function channelLayout(what: string, axis: number, dims: readonly number[], previous?: number): ChannelLayout {
  const at = axis < 0 ? dims.length + axis : axis;
  if (at < 0 || at >= dims.length) throw new Error(`${what}: axis ${axis} is outside its dims [${dims.join(',')}]`);
  const channels = dims[at];
  if (previous !== undefined && previous !== channels) throw new Error(`${what}: axis ${axis} has ${channels} channels in this batch, ${previous} before`);
  return { channels, inner: dims.slice(at + 1).reduce((a, b) => a * b, 1), outer: dims.slice(0, at).reduce((a, b) => a * b, 1) };
}
