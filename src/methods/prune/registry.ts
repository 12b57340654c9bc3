// The pruning methods shrink offers, in one list: name, what it does, whether it removes channels
// (a smaller, faster graph) or only zeroes weights (a smaller compressed download), the pass, and
// how the shared settings become that pass's options. Wanda and SparseGPT take `calibration`
// samples and a sparsity or an N:M pattern.
import type { SampleSource } from '../../eval/samples.js';
import type { Dim } from '../../ir/value-info.js';
import type { Model } from '../../ir/model.js';
import { type Pass, type PassContext, type PassReport, runPass } from '../../pipeline/pass.js';
import { channelsPass, type LayerRatio } from './channels.js';
import type { ImportanceName } from './importance.js';
import { dropLayersPass } from './drop-layers.js';
import { magnitudePass } from './magnitude.js';
import { nmPass } from './nm.js';
import type { OneShotOptions } from './one-shot.js';
import { sparseGptPass } from './sparsegpt.js';
import { wandaPass } from './wanda.js';

export const PRUNE_METHOD_NAMES = ['magnitude', 'nm', 'channels', 'wanda', 'sparsegpt', 'layers'] as const;
export type PruneMethodName = (typeof PRUNE_METHOD_NAMES)[number];

/** Settings every method reads what applies to it from (the command line and recipe files fill them). */
export interface PruneSettings {
  /** Share removed: of each layer's weights (magnitude), of each group's channels (channels). Ignored by nm. */
  sparsity?: number;
  /** magnitude, channels: rank per layer (default) or across layers. */
  scope?: 'layer' | 'global';
  /** nm, wanda, sparsegpt: N kept of every M along the reduction axis. */
  pattern?: { n: number; m: number };
  /** channels: how channels are ranked (default l2). */
  importance?: ImportanceName;
  /** channels: keep channel counts multiples of this. */
  roundTo?: number;
  /** channels: 'up' (default) rounds kept counts up; 'nearest' to the nearest multiple, the share removed held. */
  roundMode?: 'up' | 'nearest';
  /** channels: at most this share of any group's channels goes. */
  maxRatio?: number;
  /** channels: groups' own shares by layer pattern (the first match wins). */
  layerRatios?: readonly LayerRatio[];
  /** channels, gradual pruning: each group's width before the first round (shares are of these). */
  widthsBefore?: ReadonlyMap<string, number>;
  /** Op types or node-name regexes left alone (channels: their output channels are kept). */
  exclude?: readonly string[];
  /** When given, only these nodes are pruned. */
  only?: readonly string[];
  /** channels: concrete input shapes for the analysis. */
  inputShapes?: Record<string, Dim[]>;
  /** channels with taylor importance: ∂L/∂w by weight name (the recipe step computes them). */
  gradients?: ReadonlyMap<string, Float32Array>;
  /** channels: real samples for mean compensation; wanda, sparsegpt: calibration samples. */
  calibration?: SampleSource;
  /** channels: fold the removed channels' means into the next layers' biases (default true with calibration). */
  compensate?: boolean;
  /** channels: 'mean' (default) or 'lstsq' (each removed channel fitted from the kept ones of its activation). */
  compensation?: 'mean' | 'lstsq';
  /** channels, 'lstsq': ridge damping as a share of the kept channels' mean variance (default 1e-3). */
  lstsqDamping?: number;
  /** channels: refit every matrix layer to the original's outputs of that layer by least squares (needs calibration). */
  reconstruct?: boolean;
  /** wanda, sparsegpt: calibration samples used (default 128). */
  calibrationSamples?: number;
  /** wanda, sparsegpt: calibrate each layer on the model pruned so far (default true). */
  sequential?: boolean;
  /** layers: node names of the residual blocks (their Add) or shape-preserving layers removed. */
  dropLayers?: readonly string[];
}

export interface PruneMethod {
  readonly name: PruneMethodName;
  readonly description: string;
  /** True when the method removes channels (shapes shrink); false when it only zeroes weights. */
  readonly structured: boolean;
  /** Runs the method's pass on `model` (changed in place); undefined while the method is not implemented. */
  readonly run: ((model: Model, settings: PruneSettings, ctx: PassContext) => Promise<PassReport>) | undefined;
}

/** A method's run: its pass with the options it takes from the shared settings (typed end to end, no casts). */
function passRun<O>(pass: Pass<O>, options: (settings: PruneSettings) => O): NonNullable<PruneMethod['run']> {
  return (model, settings, ctx) => runPass(pass, model, options(settings), ctx);
}

const sparsity = (s: PruneSettings) => s.sparsity ?? 0;

/** Wanda's and SparseGPT's options: N:M when a pattern is given, else the sparsity. */
const oneShotOptions = (s: PruneSettings): OneShotOptions => ({
  ...(s.pattern === undefined ? { sparsity: sparsity(s) } : { pattern: s.pattern }),
  calibration: s.calibration,
  samples: s.calibrationSamples,
  sequential: s.sequential,
  exclude: s.exclude,
  only: s.only,
});

export const PRUNE_METHODS: readonly PruneMethod[] = [
  {
    name: 'magnitude',
    description: 'zero the smallest weights of Conv/MatMul/Gemm layers, per layer or globally (unstructured)',
    structured: false,
    run: passRun(magnitudePass, (s) => ({ sparsity: sparsity(s), scope: s.scope, exclude: s.exclude, only: s.only })),
  },
  {
    name: 'nm',
    description: 'keep N of every M weights along the reduction axis (2:4, 4:8)',
    structured: false,
    run: passRun(nmPass, (s) => ({ ...(s.pattern ?? { n: 2, m: 4 }), exclude: s.exclude, only: s.only })),
  },
  {
    name: 'channels',
    description: 'remove whole channels of every coupled group: a smaller, faster graph',
    structured: true,
    run: passRun(channelsPass, (s) => ({
      sparsity: sparsity(s),
      scope: s.scope,
      importance: s.importance,
      gradients: s.gradients,
      roundTo: s.roundTo,
      roundMode: s.roundMode,
      maxRatio: s.maxRatio,
      layerRatios: s.layerRatios,
      widthsBefore: s.widthsBefore,
      exclude: s.exclude,
      only: s.only,
      inputShapes: s.inputShapes,
      calibration: s.calibration,
      compensate: s.compensate,
      compensation: s.compensation,
      lstsqDamping: s.lstsqDamping,
      reconstruct: s.reconstruct,
      reconstructSamples: s.calibrationSamples,
    })),
  },
  {
    name: 'wanda',
    description: 'one-shot: zero the weights of smallest |W|·‖X‖ per output, from calibration activations (unstructured or N:M)',
    structured: false,
    run: passRun(wandaPass, oneShotOptions),
  },
  {
    name: 'sparsegpt',
    description: 'one-shot: prune layer by layer with the OBS weight update from calibration Hessians XᵀX (unstructured or N:M)',
    structured: false,
    run: passRun(sparseGptPass, oneShotOptions),
  },
  {
    name: 'layers',
    description: 'remove whole residual blocks or shape-preserving layers by name (--drop-layers): a shallower student',
    structured: true,
    run: passRun(dropLayersPass, (s) => ({ layers: s.dropLayers ?? [], inputShapes: s.inputShapes })),
  },
];

export function pruneMethod(name: PruneMethodName): PruneMethod {
  const method = PRUNE_METHODS.find((m) => m.name === name);
  if (method === undefined) throw new Error(`prune: unknown method '${name}' (known: ${PRUNE_METHOD_NAMES.join(', ')})`);
  return method;
}
