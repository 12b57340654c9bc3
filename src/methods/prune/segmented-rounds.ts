// calibrateInRounds (one-shot.ts) for models too large to run whole: the model is cut into pieces
// at its narrowest points (graph-edit/segments.ts: a decoder's residual stream between the
// attention and MLP halves of each layer), and the pieces run one after another as models of their
// own, their weights read in place from the external data. Inside a piece, layers go in rounds by
// depth as before; once its layers are done, the piece (with its solved weights) runs once more on
// its inputs, and its outputs feed the next piece. So every layer is calibrated on the outputs of
// the layers before it as already solved (the papers' sequential order, the same inputs the whole
// model would give it), and memory holds one piece's weights plus the calibration activations at
// the cuts (a few sequences: 4 x 128 tokens x 4096 features is 8 MB per value).
import type { Sample, SampleSource } from '../../eval/samples.js';
import { modelSignature } from '../../eval/match-inputs.js';
import { checkedSamples, firstSamples, sampleFeeds, tensorSamples } from '../../eval/samples.js';
import { type Segment, graphSegments, segmentModel } from '../../graph-edit/segments.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import type { Tensor } from '../../ir/tensor.js';
import { makeValueInfo } from '../../ir/value-info.js';
import type { PassContext } from '../../pipeline/pass.js';
import { ModelSession, fromOrtTensor } from '../../runtime/session.js';
import type { LayerMatrix } from './layer-matrix.js';
import { calibrateInRounds, ONE_SHOT_SAMPLES, type RoundOptions } from './one-shot.js';

export interface SegmentedOutcome {
  rounds: number;
  samples: number;
  skipped: { node: string; reason: string }[];
  /** Pieces the model ran in. */
  segments: number;
}

/**
 * Like calibrateInRounds, one piece of `model` at a time. `isLayer` marks the nodes whose layers
 * are solved (where pieces may end); `layersOf` gives the layers of a piece's model (its own
 * copies of the nodes and weights: `visit` changes the piece it is given, not `model`).
 */
export async function calibrateInSegments(
  model: Model,
  isLayer: (node: Node) => boolean,
  layersOf: (piece: Model) => LayerMatrix[],
  options: RoundOptions,
  ctx: PassContext,
  visit: (layer: LayerMatrix, statistic: Float64Array, piece: Model) => void | Promise<void>,
): Promise<SegmentedOutcome> {
  const purpose = options.purpose;
  const calibration = options.calibration;
  if (calibration === undefined) throw new Error(`${purpose}: no calibration samples (real inputs): give --calib (or --data)`);
  if (ctx.ort === undefined) throw new Error(`${purpose} runs the model in onnxruntime`);
  const samples: Record<string, Tensor>[] = [];
  // Checked against the whole model's inputs: a piece sees only some of them.
  for await (const sample of firstSamples(checkedSamples(calibration, modelSignature(model).inputs), options.samples ?? ONE_SHOT_SAMPLES)) samples.push({ ...sample.inputs });
  if (samples.length === 0) throw new Error(`${purpose}: the calibration data has no samples`);
  const segments = graphSegments(model, isLayer);
  const skipped: { node: string; reason: string }[] = [];
  let rounds = 0;
  for (const [s, segment] of segments.entries()) {
    const started = Date.now();
    const piece = segmentModel(model, segment, (name) => {
      const first = samples[0][name];
      return makeValueInfo(name, { elemType: first.dataType, shape: first.dims.map((_, i) => `${name}_${i}`) });
    });
    for (const name of [...segment.inputs, ...segment.graphInputs]) {
      if (samples[0][name] === undefined) throw new Error(`${purpose}: piece ${s + 1} of the model reads '${name}', which neither the calibration data nor an earlier piece gives`);
    }
    const feeds = tensorSamples(samples.map((values) => pick(values, [...segment.graphInputs, ...segment.inputs])), `${purpose} inputs of piece ${s + 1}`);
    const layers = layersOf(piece);
    if (layers.length > 0) {
      const outcome = await calibrateInRounds(piece, layers, { ...options, calibration: feeds, samples: samples.length, purpose: `${purpose}, piece ${s + 1}/${segments.length}` }, ctx, (layer, statistic) => visit(layer, statistic, piece));
      rounds += outcome.rounds;
      skipped.push(...outcome.skipped);
    }
    // The last piece's outputs feed nothing.
    if (s < segments.length - 1) await runPiece(piece, segment, feeds, samples, ctx);
    forgetUnused(samples, segments.slice(s + 1));
    ctx.debug?.(1, `${purpose}: piece ${s + 1}/${segments.length} (${layers.length} layers, ${segment.nodes.length} nodes) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  return { rounds, samples: samples.length, skipped, segments: segments.length };
}

function pick(values: Record<string, Tensor>, names: readonly string[]): Record<string, Tensor> {
  return Object.fromEntries(names.map((n) => [n, values[n]]));
}

/** Runs the piece on every sample and adds its outputs to the sample's values. */
async function runPiece(piece: Model, segment: Segment, feeds: SampleSource, samples: Record<string, Tensor>[], ctx: PassContext): Promise<void> {
  const ort = ctx.ort as NonNullable<PassContext['ort']>;
  const session = await ModelSession.create(ort, piece, { threads: ctx.threads });
  try {
    for await (const sample of feeds as AsyncIterable<Sample>) {
      const result = await session.run(sampleFeeds(ort, sample), segment.outputs);
      for (const name of segment.outputs) samples[sample.index][name] = fromOrtTensor(result[name], name);
    }
  } finally {
    await session.release();
  }
}

/** Drops the activations no later piece reads (graph inputs stay: any piece may read them). */
function forgetUnused(samples: Record<string, Tensor>[], later: readonly Segment[]): void {
  const needed = new Set(later.flatMap((s) => [...s.inputs, ...s.graphInputs]));
  for (const values of samples) for (const name of Object.keys(values)) if (!needed.has(name)) delete values[name];
}
