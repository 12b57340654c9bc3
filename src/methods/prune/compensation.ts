// Mean compensation for removed channels. A removed channel rarely carries zeros: after a
// BatchNorm shift, HardSwish and the learnable affine of PP-OCR's blocks it carries a value near a
// constant, and the next layer summed that constant into every output. Removing the channel drops
// it, a bias shift that wrecks detection heads even when the channel's weights were small. Here
// the mean of every channel a layer reads is measured on the calibration samples, and for each
// removed input channel mean × (the layer's weights on it) is folded into the layer's bias (a bias
// input is added where the layer has none; a MatMul gets an Add). Exact for a constant channel and
// a layer without zero padding at the borders; the mean otherwise. Mode 'lstsq' replaces the mean
// by a fit from the kept channels where the reader mixes channels (lstsq-compensation.ts).
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { collectActivations } from '../../eval/activation-stats.js';
import { ChannelCovariance } from '../../eval/channel-covariance.js';
import { ChannelMeans } from '../../eval/channel-means.js';
import type { SampleSource } from '../../eval/samples.js';
import type { ChannelAnalysis, ChannelMember } from '../../graph-edit/channel-groups.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import type { OrtModule } from '../../runtime/ort-types.js';
import { addLayerBias } from './layer-bias.js';
import { type ChannelFit, fitDroppedChannels, foldFit, type ReaderLayout } from './lstsq-compensation.js';

/** What replaces a removed channel: its mean ('mean'), or its least-squares fit from the kept channels ('lstsq'). */
export type CompensationMode = 'mean' | 'lstsq';

/** Activations wider than this keep mean compensation under 'lstsq' (a C x C covariance, a K³ solve). */
const LSTSQ_MAX_CHANNELS = 2048;
/** Positions measured per channel below which an activation keeps mean compensation. */
const LSTSQ_ROWS_PER_CHANNEL = 2;

/** A layer reading removed channels, and the axis of its input they lie on. */
interface Reader {
  member: ChannelMember;
  /** Positions of the weight's input axis that go. */
  dropped: number[];
  /** Channel axis of the activation it reads. */
  axis: number;
  /** Under 'lstsq': how its weight mixes the channels (undefined: it cannot mix them, the mean it is). */
  layout?: ReaderLayout;
}

/** What compensation did: layers whose bias absorbed removed channels, and those it could not reach. */
export interface CompensationReport {
  layers: number;
  /** Of those, the layers whose weights took a least-squares fit ('lstsq'). */
  fitted: number;
  skipped: { node: string; reason: string }[];
  samples: number;
}

const SUPPORTED = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/**
 * Folds the means (over `samples`) of the channels `removed` will take into the biases of the
 * layers reading them, in `model` (the model `analysis` was made on, not yet pruned: the means are
 * measured on it first). Call before removeChannels, then analyse again: biases added here are
 * members of their groups.
 */
export async function compensateRemovedChannels(
  ort: OrtModule,
  model: Model,
  analysis: ChannelAnalysis,
  removed: ReadonlySet<number>,
  samples: SampleSource,
  options: { threads?: number; limit?: number; mode?: CompensationMode; positionsPerSample?: number; damping?: number } = {},
): Promise<CompensationReport> {
  const lstsq = options.mode === 'lstsq';
  const skipped: { node: string; reason: string }[] = [];
  const readers: Reader[] = [];
  for (const member of analysis.members) {
    if (member.role !== 'weight-in') continue;
    const dropped: number[] = [];
    member.atoms.forEach((a, p) => {
      if (removed.has(analysis.atoms.find(a))) dropped.push(p);
    });
    if (dropped.length === 0) continue;
    const node = member.node;
    if (dropped.some((p) => analysis.groupOf(member.atoms[p]).heads)) {
      // Measured on spam-bert: a removed head's mean output in its place cost 2-19 accuracy points
      // where leaving it out cost 0-0.4 (bench/results/prune-heads.md).
      skipped.push({ node: node.label, reason: 'it reads attention heads, whose mean outputs hurt more than they help' });
      continue;
    }
    if (!SUPPORTED.has(node.opType) || member.graph.parent !== undefined) {
      skipped.push({ node: node.label, reason: member.graph.parent !== undefined ? 'inside a subgraph' : `${node.opType} not compensated` });
      continue;
    }
    const axis = node.opType === 'Gemm' ? (node.attrInt('transA', 0) !== 0 ? 0 : 1) : node.opType === 'MatMul' ? -1 : 1;
    const layout = lstsq ? mixingLayout(node, member.name, constantValue(member.graph, member.name), member.atoms.length) : undefined;
    readers.push({ member, dropped, axis, ...(layout === undefined ? {} : { layout }) });
  }
  const keyOf = (r: Reader) => `${r.member.node.inputs[0]}\u0000${r.axis}`;
  const accumulators = new Map<string, ChannelMeans | ChannelCovariance>();
  for (const r of readers) {
    const key = keyOf(r);
    if (r.layout !== undefined && !(accumulators.get(key) instanceof ChannelCovariance)) {
      accumulators.set(key, new ChannelCovariance(r.member.node.inputs[0], r.axis, { ort, threads: options.threads, positionsPerSample: options.positionsPerSample }));
    } else if (!accumulators.has(key)) accumulators.set(key, new ChannelMeans(r.member.node.inputs[0], r.axis));
  }
  const collected = await collectActivations(ort, model, [...accumulators.values()], samples, { threads: options.threads, limit: options.limit ?? 64, purpose: lstsq ? 'channel covariances' : 'channel means' });
  // One fit per activation and removed set, shared by its readers.
  const fits = new Map<string, ChannelFit>();
  let layers = 0;
  let fitted = 0;
  for (const r of readers) {
    const accumulator = accumulators.get(keyOf(r));
    const means = accumulator?.means();
    if (accumulator === undefined || means === undefined || means.length === 0) {
      skipped.push({ node: r.member.node.label, reason: 'its input was not measured' });
      continue;
    }
    const weight = constantValue(r.member.graph, r.member.name) as Tensor;
    // A fit needs more positions than channels: fewer (a Flatten into a Gemm, one position per sample) fit noise.
    if (r.layout !== undefined && accumulator instanceof ChannelCovariance && means.length === r.member.atoms.length && accumulator.rows >= LSTSQ_ROWS_PER_CHANNEL * means.length) {
      const fitKey = `${keyOf(r)}\u0000${r.dropped.join(',')}`;
      let fit = fits.get(fitKey);
      if (fit === undefined) {
        fit = fitDroppedChannels(accumulator.covariance(), means, r.dropped, options.damping);
        fits.set(fitKey, fit);
      }
      const folded = foldFit(r.layout, weight.data() as Float32Array, means.length, fit);
      const node = r.member.node;
      const at = node.inputs.indexOf(r.member.name);
      if (addLayerBias(model, r.member.graph, node, folded.bias)) {
        replaceConstant(model, r.member.graph.scopeOf(r.member.name) ?? r.member.graph, r.member.name, Tensor.fromArray(r.member.name, DataType.FLOAT, weight.dims, folded.weight), [{ graph: r.member.graph, node, input: at }]);
        layers++;
        fitted++;
        continue;
      }
    }
    const delta = biasDelta(r, means, weight);
    if (delta === undefined || !addLayerBias(model, r.member.graph, r.member.node, delta)) {
      skipped.push({ node: r.member.node.label, reason: 'its bias layout is not handled' });
      continue;
    }
    layers++;
  }
  return { layers, fitted, skipped, samples: collected.samples };
}

/**
 * How `node`'s weight mixes its input channels, when least squares can fold into it: a float32
 * weight of a Conv or ConvTranspose of group 1, a Gemm without transA or a MatMul reading a 2-D
 * weight second, over at most LSTSQ_MAX_CHANNELS channels.
 */
function mixingLayout(node: Node, name: string, weight: Tensor | undefined, channels: number): ReaderLayout | undefined {
  if (weight === undefined || weight.dataType !== DataType.FLOAT || channels > LSTSQ_MAX_CHANNELS) return undefined;
  const dims = weight.dims;
  const taps = dims.slice(2).reduce((a, b) => a * b, 1);
  if (node.opType === 'Conv' || node.opType === 'ConvTranspose') {
    if (node.attrInt('group', 1) !== 1 || dims.length < 3) return undefined;
    if (node.opType === 'Conv') return dims[1] === channels ? { kind: 'conv', outputs: dims[0], taps } : undefined;
    const strides = (node.attrInts('strides') ?? []).reduce((a, b) => a * b, 1);
    return dims[0] === channels ? { kind: 'conv-transpose', outputs: dims[1], taps, strides } : undefined;
  }
  // MatMul [K, N]; Gemm [K, N] or [N, K] (transB), read as the second input.
  if (dims.length !== 2 || node.inputs[1] !== name || (node.opType === 'Gemm' && node.attrInt('transA', 0) !== 0)) return undefined;
  const transposed = node.opType === 'Gemm' && node.attrInt('transB', 0) !== 0;
  const [K, N] = transposed ? [dims[1], dims[0]] : dims;
  return K === channels ? { kind: 'matrix', outputs: N, transposed } : undefined;
}

/** Per output channel of the reader: the removed inputs' means times the weights on them. */
function biasDelta(r: Reader, means: Float64Array, weight: Tensor): Float32Array | undefined {
  const node = r.member.node;
  const w = weight.data() as Float32Array;
  const dims = weight.dims;
  if (node.opType === 'Conv') {
    const [M, perGroup] = dims;
    const kernel = dims.slice(2).reduce((a, b) => a * b, 1);
    const groups = node.attrInt('group', 1);
    const perGroupOut = M / groups;
    const delta = new Float32Array(M);
    for (let o = 0; o < M; o++) {
      const g = Math.floor(o / perGroupOut);
      let sum = 0;
      for (const p of r.dropped) {
        let taps = 0;
        for (let k = 0; k < kernel; k++) taps += w[(o * perGroup + p) * kernel + k];
        sum += means[g * perGroup + p] * taps;
      }
      delta[o] = sum;
    }
    return delta;
  }
  if (node.opType === 'ConvTranspose') {
    // Each output pixel sees on average kernel / prod(strides) taps of each input channel.
    const [, M] = dims;
    const kernel = dims.slice(2).reduce((a, b) => a * b, 1);
    const strides = (node.attrInts('strides') ?? []).reduce((a, b) => a * b, 1);
    const delta = new Float32Array(M);
    for (let m = 0; m < M; m++) {
      let sum = 0;
      for (const c of r.dropped) {
        let taps = 0;
        for (let k = 0; k < kernel; k++) taps += w[(c * M + m) * kernel + k];
        sum += (means[c] * taps) / strides;
      }
      delta[m] = sum;
    }
    return delta;
  }
  // MatMul W [K, N]; Gemm W [K, N] or [N, K] (transB).
  const transposed = node.opType === 'Gemm' && node.attrInt('transB', 0) !== 0;
  if (dims.length !== 2) return undefined;
  const N = transposed ? dims[0] : dims[1];
  const K = transposed ? dims[1] : dims[0];
  const delta = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let sum = 0;
    for (const p of r.dropped) sum += means[p] * w[transposed ? n * K + p : p * N + n];
    delta[n] = sum;
  }
  return delta;
}
