// Weight sharing by k-means (Deep Compression, Han, Mao & Dally 2016, section 3): the values of a
// weight are replaced by at most 2^bits shared centroids, stored as uint8 codes plus a float
// codebook and decoded in standard ONNX ops that onnxruntime runs (Cast + Gather, or
// DequantizeLinear when the codebook happens to be a uniform grid). One codebook per tensor, per
// output channel (`grouping: 'channel'`) or per N output channels (`channelsPerGroup`).
//
// For the pack and other readers, the layout a clustered weight W takes (decode-graph.ts has it in
// full; `findClusters` finds it again):
//   W_codes            uint8 [dims of W], codes < 2^bits
//   W_codebook         float32 [G * 2^bits], G groups of 2^bits centroids, ascending (unused slots
//                      repeat the group's last centroid; fine-tuned centroids may leave that order)
//   W_codebook_offsets int32, 1 everywhere but the channel axis: g(c) * 2^bits   (G > 1 only)
//   W_clustered        = Gather(W_codebook, Cast(W_codes, INT32) [+ W_codebook_offsets], axis 0)
// The uniform case writes W_codes (shifted), W_codes_scale, W_codes_zero_point and a
// DequantizeLinear. The report names the constants of each weight.
//
// Pruned weights (exact zeros in at least `PRUNED_SHARE` of a tensor, or `keepZeros: true`): zeros
// stay out of k-means and keep a centroid of exactly 0, so the zero pattern survives and
// Deep Compression's prune -> cluster order keeps its sparsity. Optional activation importance
// (importance.ts) weighs each value by the mean square of the input it multiplies.
import type { SampleSource } from '../../eval/samples.js';
import type { Node } from '../../ir/node.js';
import type { KMeansInit } from '../../kernels/kmeans.js';
import type { Pass, PassWarning } from '../../pipeline/pass.js';
import type { LayerChoice } from '../prune/layers.js';
import { type NodeSelector, nodeSelector } from '../quantize/node-selector.js';
import { buildCodebook, type Codebook, MAX_MANTISSA_BITS, uniformGrid } from './codebook.js';
import { assignObsCodes, obsLayer, type PendingCodes } from './obs-assignment.js';
import type { LayerMatrix } from '../prune/layer-matrix.js';
import { writeDequantizeForm, writeGatherForm } from './decode-graph.js';
import { activationImportance } from './importance.js';
import { clusterTargets } from './targets.js';
import { buildUniformCodes, UNIFORM_STRIDE } from './uniform-codes.js';
import { upgradeOpset } from '../../optimize/upgrade-opset.js';

/** Share of exact zeros from which a tensor counts as pruned (auto keepZeros). */
export const PRUNED_SHARE = 0.05;

export const MIN_BITS = 2;
export const MAX_BITS = 8;

export interface ClusterOptions extends LayerChoice {
  /** Codes of this many bits: at most 2^bits centroids per codebook (2..8). */
  bits: number;
  /** One codebook per tensor (default) or per output channel; `channelsPerGroup` > 1 shares one among that many channels. */
  grouping?: 'tensor' | 'channel';
  channelsPerGroup?: number;
  /** k-means start (default linear, as Deep Compression found best). */
  init?: KMeansInit;
  seed?: number;
  /** Keep exact zeros exact: 'auto' (default) when PRUNED_SHARE of the tensor is zero. */
  keepZeros?: 'auto' | boolean;
  /** Write uniform codebooks as DequantizeLinear (default true). Centroid fine-tuning turns it off: it trains through Gather. */
  foldUniform?: boolean;
  /** Calibration samples: weigh values by activation importance. */
  calibration?: SampleSource;
  /**
   * Per-layer settings (mixed precision): the bits and/or the channels per codebook of the layers a
   * pattern matches (an op type or a node-name regex, as --only; for each of the two, the first
   * matching entry that sets it wins),
   * e.g. more bits for a sensitive classifier head, a codebook per channel for depthwise convs.
   * A weight goes by its first reader. Layers no entry matches take `bits` and the grouping.
   */
  layers?: readonly LayerSetting[];
  /** Centroids rounded to float16 values, stored as float32 (see codebook.ts): smaller packs. */
  halfCodebooks?: boolean;
  /**
   * k-means centroids rounded to this many mantissa bits (1-23, stored as float32; codebook.ts
   * roundMantissa): at 6 bits a pack stores a centroid in about 1.2 bytes instead of float16's
   * 2.1, for a relative error of at most 2^-7. Uniform codes' steps are not rounded by it.
   */
  codebookMantissaBits?: number;
  /**
   * Uniform codes instead of k-means (uniform-codes.ts): each group's values round to multiples of
   * `step` * the group's RMS, up to 256 levels, written as DequantizeLinear (one scale per group).
   * `bits` is then unused for these layers; a pack entropy-codes the codes.
   */
  step?: number;
  /** Steps fixed per weight name (one per group), e.g. the ones training saw: they override `step`. */
  fixedSteps?: ReadonlyMap<string, Float32Array>;
  /**
   * How codes are chosen once the codebooks are fitted: the nearest centroid (default), or 'obs':
   * the GPTQ column sweep on each layer's calibration inputs (`codeCalibration`; obs-assignment.ts),
   * which keeps the layer's outputs rather than its weights.
   */
  codes?: 'nearest' | 'obs';
  codeCalibration?: SampleSource;
  /** Samples of `codeCalibration` used (default OBS_CODE_SAMPLES). */
  codeSamples?: number;
  /** Share of the Hessian's mean diagonal added to it (default 0.01). */
  codeDamping?: number;
  /** Sweep the most-used input features first (GPTQ's act-order; default false). */
  codeActOrder?: boolean;
  /**
   * What each layer's OBS codes keep: 'layer' (its own float outputs on the inputs the model as
   * clustered so far gives it) or 'original' (the unclustered model's outputs of that layer on the
   * original's inputs: asymmetric calibration, which also takes out the drift of the layers before).
   */
  codeTarget?: 'layer' | 'original';
  /** Samples of `calibration` used (default 64). */
  calibrationLimit?: number;
  threads?: number;
}

export interface LayerSetting {
  pattern: string;
  bits?: number;
  /** Uniform codes at this step relative to each group's RMS (see ClusterOptions.step). */
  step?: number;
  /** Channels per codebook (1: per channel). */
  group?: number;
  /** Mantissa bits of these layers' centroids (see ClusterOptions.codebookMantissaBits). */
  mantissaBits?: number;
}

export interface ClusteredTensor {
  name: string;
  /** The layer reading it (the first, when several do). */
  node: string;
  op: string;
  dims: number[];
  bits: number;
  /** Codebooks (1 per tensor, or one per channel / group of channels). */
  groups: number;
  /** Centroids in use, summed over the codebooks. */
  centroids: number;
  sqnrDb: number;
  /** Mantissa bits its centroids were rounded to (undefined: float32's, or float16's with halfCodebooks). */
  mantissaBits?: number;
  /** float32 bytes of the weight. */
  bytesDense: number;
  /** Bytes as written: uint8 codes, the codebook (and offsets, or scales and zero points). */
  bytesStored: number;
  /** Bytes with codes packed at `bits` each (what a pack stores before entropy coding). */
  bytesPacked: number;
  zerosKept: boolean;
  /** Exact zeros before and after. */
  zerosBefore: number;
  zerosAfter: number;
  importance: boolean;
  form: 'gather' | 'dequantize-linear';
  codes: string;
  codebook: string;
  /** The decoded value the layers read. */
  output: string;
  /** Codes chosen by the OBS sweep (ClusterOptions.codes 'obs'). */
  obs?: boolean;
  /** Uniform codes: the step relative to RMS, the axis of the groups and each group's step. */
  uniform?: { step: number; axis: number | undefined; steps: Float32Array; levels: number };
}

export interface ClusterDetails {
  tensors: ClusteredTensor[];
  skipped: { node: string; reason: string }[];
  importance?: { samples: number; unmeasured: { tensor: string; reason: string }[] };
}

/** Why `bits` / `channelsPerGroup` cannot work, or undefined. */
export function clusterSettingsError(options: Pick<ClusterOptions, 'bits' | 'channelsPerGroup' | 'layers' | 'step' | 'codebookMantissaBits'>): string | undefined {
  const badBits = (bits: number) => !(Number.isInteger(bits) && bits >= MIN_BITS && bits <= MAX_BITS);
  const badGroup = (group: number | undefined) => group !== undefined && !(Number.isInteger(group) && group >= 1);
  const badStep = (step: number | undefined) => step !== undefined && !(Number.isFinite(step) && step > 0);
  const badMantissa = (bits: number | undefined) => bits !== undefined && !(Number.isInteger(bits) && bits >= 1 && bits <= MAX_MANTISSA_BITS);
  const mantissaRange = `a whole number from 1 to ${MAX_MANTISSA_BITS}`;
  if (badBits(options.bits)) return `bits must be a whole number from ${MIN_BITS} to ${MAX_BITS}, got ${options.bits}`;
  if (badGroup(options.channelsPerGroup)) return `group must be a whole number of channels >= 1, got ${options.channelsPerGroup}`;
  if (badStep(options.step)) return `step must be a number > 0 (relative to each group's RMS), got ${options.step}`;
  if (badMantissa(options.codebookMantissaBits)) return `codebook mantissa bits must be ${mantissaRange}, got ${options.codebookMantissaBits}`;
  for (const layer of options.layers ?? []) {
    if (layer.bits === undefined && layer.group === undefined && layer.step === undefined && layer.mantissaBits === undefined) return `layer setting '${layer.pattern}' sets none of bits, step, group and mantissa bits`;
    if (badMantissa(layer.mantissaBits)) return `mantissa bits of '${layer.pattern}' must be ${mantissaRange}, got ${layer.mantissaBits}`;
    if (badStep(layer.step)) return `step of '${layer.pattern}' must be a number > 0, got ${layer.step}`;
    if (layer.bits !== undefined && badBits(layer.bits)) return `bits of '${layer.pattern}' must be a whole number from ${MIN_BITS} to ${MAX_BITS}, got ${layer.bits}`;
    if (badGroup(layer.group)) return `group of '${layer.pattern}' must be a whole number of channels >= 1, got ${layer.group}`;
  }
  return undefined;
}

/** The bits and grouping of one weight: its first reader's matching layer setting, else the options'. */
function settingsOf(reader: Node, layers: readonly { selector: NodeSelector; setting: LayerSetting }[], options: ClusterOptions): { bits: number; step: number | undefined; perChannel: boolean; perGroup: number; mantissaBits: number | undefined } {
  const matching = layers.filter((l) => l.selector.matches(reader)).map((l) => l.setting);
  // A layer entry's bits or step wins over the options' either: the first entry setting one decides.
  const own = matching.find((l) => l.bits !== undefined || l.step !== undefined);
  const bits = own?.bits ?? options.bits;
  const step = own === undefined ? options.step : own.step;
  const mantissaBits = matching.find((l) => l.mantissaBits !== undefined)?.mantissaBits ?? options.codebookMantissaBits;
  const group = matching.find((l) => l.group !== undefined)?.group;
  if (group !== undefined) return { bits, step, perChannel: true, perGroup: group, mantissaBits };
  return { bits, step, perChannel: options.grouping === 'channel' || (options.channelsPerGroup ?? 1) > 1, perGroup: options.channelsPerGroup ?? 1, mantissaBits };
}

const zeroCount = (v: Float32Array) => v.reduce((n, x) => n + (x === 0 ? 1 : 0), 0);

export const clusterPass: Pass<ClusterOptions> = {
  name: 'cluster',
  description: 'share weights: k-means codebooks of 2^bits centroids per tensor, channel or group, decoded by Gather (or DequantizeLinear when uniform)',
  async run(model, options, ctx) {
    const error = clusterSettingsError(options);
    if (error !== undefined) throw new Error(`cluster: ${error}`);
    // Uniform codes are always written as DequantizeLinear, per channel: that needs opset 13.
    const uniformWanted = options.step !== undefined || options.fixedSteps !== undefined || (options.layers ?? []).some((l) => l.step !== undefined);
    if (uniformWanted && (model.opset('') ?? 1) < 13) upgradeOpset(model, { to: 13 });
    // The model as it came, for OBS codes fitted to its layers' outputs (codeTarget 'original').
    const reference = options.codes === 'obs' && options.codeTarget === 'original' ? model.clone() : undefined;
    const { targets, skipped } = clusterTargets(model, options);
    const warnings: PassWarning[] = [];
    let importance: Awaited<ReturnType<typeof activationImportance>> | undefined;
    if (options.calibration !== undefined) {
      if (ctx.ort === undefined) throw new Error('cluster: activation importance needs onnxruntime (ctx.ort)');
      importance = await activationImportance(ctx.ort, model, targets, options.calibration, { limit: options.calibrationLimit, threads: options.threads });
      for (const u of importance.unmeasured) warnings.push({ code: 'importance-not-measured', message: `'${u.tensor}' is clustered with equal weights: ${u.reason}`, tensor: u.tensor });
    }
    const opset = model.opset('') ?? 1;
    const layers = (options.layers ?? []).map((setting) => ({ selector: nodeSelector(setting.pattern, 'cluster layer setting'), setting }));
    const tensors: ClusteredTensor[] = [];
    // Each weight's codebook is fitted first; `write` puts it into the graph (with the codes OBS
    // assignment chose, when it runs) and reports it.
    const planned: (PendingCodes & { write: (book: Codebook) => void; uniform: boolean })[] = [];
    for (const target of targets) {
      const reader = target.readers[0];
      const settings = settingsOf(reader.node, layers, options);
      const { perChannel, perGroup } = settings;
      const fixed = options.fixedSteps?.get(target.name);
      const step = fixed === undefined ? settings.step : (settings.step ?? 1);
      const bits = step === undefined ? settings.bits : 8;
      const values = target.weight.data() as Float32Array;
      const dims = [...target.weight.dims];
      let axis = perChannel ? reader.axes?.output : undefined;
      if (perChannel && (axis === undefined || target.readers.some((r) => r.axes?.output !== axis))) {
        warnings.push({ code: 'per-tensor-fallback', message: `'${target.name}' [${dims}] has no single output-channel axis for its readers: one codebook for the tensor`, tensor: target.name, node: reader.node.label });
        axis = undefined;
      }
      const K = step === undefined ? 2 ** bits : UNIFORM_STRIDE;
      const channels = axis === undefined ? 1 : dims[axis];
      const groups = axis === undefined ? 1 : Math.ceil(channels / perGroup);
      const offsetsBytes = groups > 1 ? 4 * channels : 0;
      // Uniform codes store one scale and zero point per group, never a codebook.
      const storedEstimate = step === undefined ? values.length + groups * K * 4 + offsetsBytes : values.length + groups * 5;
      if (storedEstimate >= values.length * 4) {
        skipped.push({ node: reader.node.label, reason: `'${target.name}' would not shrink: ${values.length} values, ${groups} codebook${groups === 1 ? '' : 's'} of ${K}` });
        continue;
      }
      const zerosBefore = zeroCount(values);
      const keepZeros = options.keepZeros === 'auto' || options.keepZeros === undefined ? zerosBefore >= PRUNED_SHARE * values.length : options.keepZeros;
      const weights = importance?.byWeight.get(target.name);
      const uniform = step === undefined ? undefined : buildUniformCodes(values, dims, { step, axis, channelsPerGroup: perGroup, steps: fixed, half: options.halfCodebooks });
      const mantissaBits = uniform === undefined ? settings.mantissaBits : undefined;
      const fitted = uniform ?? buildCodebook(values, dims, { bits, axis, channelsPerGroup: perGroup, init: options.init, seed: options.seed, importance: weights, keepZeros, half: options.halfCodebooks, mantissaBits });
      const write = (book: Codebook) => {
        // Uniform codes are written with their steps exactly (uniformGrid would recompute them) and
        // always folded: their training goes through fake quantization, not a Gather.
        const grid = uniform !== undefined ? { scales: uniform.steps, zeroPoints: new Uint8Array(book.groups).fill(-uniform.lowest), shifts: new Int32Array(book.groups) } : options.foldUniform === false ? undefined : uniformGrid(book);
        // DequantizeLinear: per-tensor since opset 10, per-axis since 13.
        const canFold = grid !== undefined && opset >= (groups > 1 ? 13 : 10);
        if (uniform !== undefined && !canFold) throw new Error(`cluster: uniform codes of '${target.name}' need DequantizeLinear (opset ${groups > 1 ? 13 : 10}; the model has ${opset})`);
        const written = canFold
          ? writeDequantizeForm(model, target.scope, target.name, dims, book, grid, axis, target.readers)
          : writeGatherForm(model, target.scope, target.name, dims, book, axis, target.readers);
        let zerosAfter = 0;
        for (let i = 0; i < book.codes.length; i++) {
          const g = axis === undefined || book.groupOfChannel === undefined ? 0 : book.groupOfChannel[Math.floor(i / dims.slice(axis + 1).reduce((a, b) => a * b, 1)) % dims[axis]];
          if (book.codebook[g * K + book.codes[i]] === 0) zerosAfter++;
        }
        tensors.push({
          name: target.name,
          node: reader.node.label,
          op: reader.node.opType,
          dims,
          bits,
          groups: book.groups,
          centroids: book.used.reduce((a, b) => a + b, 0),
          sqnrDb: book.sqnrDb,
          ...(mantissaBits === undefined ? {} : { mantissaBits }),
          bytesDense: values.length * 4,
          bytesStored: written.bytes,
          bytesPacked: Math.ceil((values.length * bits) / 8) + written.bytes - values.length,
          zerosKept: keepZeros,
          zerosBefore,
          zerosAfter,
          importance: weights !== undefined,
          form: written.form,
          codes: written.codes,
          codebook: written.codebook,
          output: written.output,
          ...(book === fitted || options.codes !== 'obs' ? {} : { obs: true }),
          ...(uniform === undefined || step === undefined ? {} : { uniform: { step, axis, steps: uniform.steps, levels: uniform.used[0] } }),
        });
      };
      planned.push({ target, book: fitted, axis, keepZeros, write, uniform: uniform !== undefined });
    }
    let obs: { rounds: number; samples: number; layers: number; asymmetric: number } | undefined;
    if (options.codes === 'obs') {
      if (options.codeCalibration === undefined) throw new Error('cluster: OBS codes fit each layer to calibration inputs: give samples (--data or --calib)');
      // Uniform codes keep their rounding (they are trained under fake quantization afterwards).
      const swept: { pending: (typeof planned)[number]; view: LayerMatrix }[] = [];
      for (const p of planned) {
        const view = p.uniform ? { reason: 'uniform codes' } : obsLayer(p, model.graph);
        if ('reason' in view) {
          p.write(p.book);
          if (!p.uniform) warnings.push({ code: 'obs-codes-nearest', message: `'${p.target.name}' keeps nearest-centroid codes: ${view.reason}`, tensor: p.target.name, node: p.target.readers[0].node.label });
        } else swept.push({ pending: p, view });
      }
      const outcome = await assignObsCodes(model, swept, { calibration: options.codeCalibration, samples: options.codeSamples, damping: options.codeDamping, actOrder: options.codeActOrder, reference }, ctx, (pending, book) => pending.write(book));
      for (const s of outcome.skipped) warnings.push({ code: 'obs-codes-nearest', message: `'${s.node}' keeps nearest-centroid codes: ${s.reason}`, node: s.node });
      obs = { rounds: outcome.rounds, samples: outcome.samples, layers: swept.length - outcome.skipped.length, asymmetric: options.codeTarget === 'original' ? 1 : 0 };
    } else {
      for (const p of planned) p.write(p.book);
    }
    const details: ClusterDetails = { tensors, skipped, ...(importance === undefined ? {} : { importance: { samples: importance.samples, unmeasured: importance.unmeasured } }) };
    return {
      stats: {
        tensors: tensors.length,
        skipped: skipped.length,
        folded: tensors.filter((t) => t.form === 'dequantize-linear').length,
        bytesDense: tensors.reduce((n, t) => n + t.bytesDense, 0),
        bytesStored: tensors.reduce((n, t) => n + t.bytesStored, 0),
        ...(obs === undefined ? {} : { obs_layers: obs.layers, obs_rounds: obs.rounds, obs_samples: obs.samples, obs_asymmetric: obs.asymmetric }),
      },
      warnings,
      details,
    };
  },
};
