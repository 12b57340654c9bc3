// GPTQ for weight-only quantization: before the MatMulNBits writer packs the weights, each MatMul
// and Gemm of the main graph is quantized by kernels/gptq.ts from its calibration Hessian XᵀX,
// layer by layer in rounds by depth (methods/prune/one-shot.ts: a layer's inputs come from the
// model with every layer before it already quantized). The work happens on a copy in which the
// weights GPTQ does not solve are quantized first, as the output will have them (`prepare`: with
// int4 embeddings left float here, spam-bert's layers were fitted to inputs they never see and
// ended further from the original than round-to-nearest), and solved weights are replaced by what
// their codes decode to; the result is the solved blocks by weight name,
// which the writer packs as they are (matmul-nbits.ts `solved`). Weights the writer does not pack
// as MatMulNBits (Conv, Gemms that take DequantizeLinear, embeddings) are rounded as usual.
import type { SampleSource } from '../../eval/samples.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import { gptq } from '../../kernels/gptq.js';
import type { QuantBits, ScaleType } from '../../kernels/quant-formats.js';
import type { QuantizedBlocks } from '../../kernels/quantize-blocks.js';
import type { PassContext } from '../../pipeline/pass.js';
import { type LayerMatrix, layerMatrix } from '../prune/layer-matrix.js';
import { pruneTargets } from '../prune/layers.js';
import { calibrateInRounds } from '../prune/one-shot.js';

export interface GptqSettings {
  bits: QuantBits;
  blockSize: number;
  symmetric: boolean;
  scaleType?: ScaleType;
  calibration: SampleSource | undefined;
  /** Calibration samples used (default 128). */
  samples?: number;
  /** Quantize the most-used input features of each layer first (default false). */
  actOrder?: boolean;
  /** Share of the mean diagonal of XᵀX added to it (default 0.01). */
  damping?: number;
  exclude?: (node: Node, graph: Graph) => boolean;
  /**
   * Quantizes, in the working copy, every weight GPTQ does not solve (embeddings, Conv, ...) as the
   * writer will, before calibration: the layers GPTQ solves must be fitted to the inputs they will
   * see. Gets the nodes GPTQ solves, which it must leave as they are.
   */
  prepare?: (work: Model, solvedNodes: ReadonlySet<Node>) => void;
}

export interface GptqSolution {
  solved: Map<string, QuantizedBlocks>;
  rounds: number;
  samples: number;
  /** Layers GPTQ left to round-to-nearest, and why. */
  skipped: { node: string; reason: string }[];
}

const GPTQ_OPS = new Set(['MatMul', 'Gemm']);

export async function solveGptq(model: Model, settings: GptqSettings, ctx: PassContext): Promise<GptqSolution> {
  const work = model.clone();
  const { targets, skipped } = pruneTargets(work, {});
  const layers: LayerMatrix[] = [];
  for (const target of targets) {
    const reader = target.readers[0];
    if (!GPTQ_OPS.has(reader.node.opType) || settings.exclude?.(reader.node, reader.graph)) continue;
    const view = layerMatrix(target, work.graph);
    if ('reason' in view) skipped.push({ node: reader.node.label, reason: view.reason });
    else layers.push(view);
  }
  settings.prepare?.(work, new Set(layers.map((l) => l.node)));
  const solved = new Map<string, QuantizedBlocks>();
  const outcome = await calibrateInRounds(work, layers, { statistic: 'gram', calibration: settings.calibration, samples: settings.samples, purpose: 'gptq calibration' }, ctx, (layer, hessian) => {
    const result = gptq(layer.read(), layer.rows, layer.cols, hessian, settings);
    solved.set(layer.target.name, result.blocks);
    const weight = layer.target.weight;
    replaceConstant(work, layer.target.scope, layer.target.name, Tensor.fromArray(layer.target.name, weight.dataType, weight.dims, layer.write(result.weights)), layer.target.readers);
  });
  return { solved, rounds: outcome.rounds, samples: outcome.samples, skipped: [...skipped, ...outcome.skipped] };
}
