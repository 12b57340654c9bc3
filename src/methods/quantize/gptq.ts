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
import { gptqBlocked } from '../../kernels/gptq-blocked.js';
import { DataType } from '../../ir/dtype.js';
import { initializerBytes } from '../../onnx/model-io.js';
import { OrtMatrixProducts } from '../../runtime/ort-matrix-products.js';
import type { QuantBits, ScaleType } from '../../kernels/quant-formats.js';
import type { QuantizedBlocks } from '../../kernels/quantize-blocks.js';
import type { PassContext } from '../../pipeline/pass.js';
import { type LayerMatrix, layerMatrix } from '../prune/layer-matrix.js';
import { pruneTargets } from '../prune/layers.js';
import { calibrateInRounds } from '../prune/one-shot.js';
import { calibrateInSegments } from '../prune/segmented-rounds.js';
import { PackedSolvedBlocks } from './packed-solved.js';

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
  /**
   * Run the model one piece at a time (methods/prune/segmented-rounds.ts) instead of whole: the
   * only way for a model larger than memory. Default: above SEGMENTS_ABOVE_BYTES of weights.
   */
  segments?: boolean;
  /**
   * Solve layers with the blocked kernel (kernels/gptq-blocked.ts, products in onnxruntime) or
   * in JS loops (gptq.ts). Default: blocked from BLOCKED_FROM_WEIGHTS weights.
   */
  kernel?: 'js' | 'blocked';
}

/**
 * Models with more weight bytes than this are calibrated piece by piece (the CLI's threshold for
 * large models). Pieces also cost less: each runs about three times in all, where every round of
 * the whole-model path runs the whole model.
 */
export const SEGMENTS_ABOVE_BYTES = 2 ** 29;
/** Layers with at least this many weights go to the blocked kernel (a 1024 x 1024 layer: 2.3 s against 9.3 s in JS, loaded machine). */
export const BLOCKED_FROM_WEIGHTS = 2 ** 20;

export interface GptqSolution {
  /** By weight name; codes kept packed until read. */
  solved: ReadonlyMap<string, QuantizedBlocks>;
  rounds: number;
  samples: number;
  /** Layers GPTQ left to round-to-nearest, and why. */
  skipped: { node: string; reason: string }[];
  /** Pieces the model ran in (1: whole). */
  segments: number;
}

const GPTQ_OPS = new Set(['MatMul', 'Gemm']);

export async function solveGptq(model: Model, settings: GptqSettings, ctx: PassContext): Promise<GptqSolution> {
  const work = model.clone();
  const { layers, skipped } = gptqLayers(work, settings);
  settings.prepare?.(work, new Set(layers.map((l) => l.node)));
  const solved = new PackedSolvedBlocks();
  // Threads that spin between the many short products hold up everything else on a shared machine.
  const blocked = layers.some((l) => useBlocked(l, settings)) && ctx.ort !== undefined;
  const products = blocked ? await OrtMatrixProducts.create(ctx.ort as NonNullable<PassContext['ort']>, { threads: ctx.threads, spinning: false }) : undefined;
  const visit = async (layer: LayerMatrix, hessian: Float64Array, owner: Model) => {
    const weight = layer.target.weight;
    let data: Float32Array | Float64Array;
    if (products !== undefined && useBlocked(layer, settings)) {
      const result = await gptqBlocked(transposedWeight(layer), layer.rows, layer.cols, hessian, settings, products);
      solved.set(layer.target.name, result.blocks);
      data = fromTransposed(layer, result.weightsT);
    } else {
      const result = gptq(layer.read(), layer.rows, layer.cols, hessian, settings);
      solved.set(layer.target.name, result.blocks);
      data = layer.write(result.weights);
    }
    replaceConstant(owner, layer.target.scope, layer.target.name, Tensor.fromArray(layer.target.name, weight.dataType, weight.dims, data), layer.target.readers);
  };
  const statistic = { statistic: 'gram' as const, calibration: settings.calibration, samples: settings.samples, purpose: 'gptq calibration' };
  try {
    if (settings.segments ?? initializerBytes(work) > SEGMENTS_ABOVE_BYTES) {
      const nodes = new Set(layers.map((l) => l.node));
      // A piece sees one reader of a weight the whole model shares: only the whole model's layers count.
      const weights = new Set(layers.map((l) => l.target.name));
      const layersOf = (piece: Model) => gptqLayers(piece, settings).layers.filter((l) => weights.has(l.target.name));
      const outcome = await calibrateInSegments(work, (node) => nodes.has(node), layersOf, statistic, ctx, visit);
      return { solved, rounds: outcome.rounds, samples: outcome.samples, skipped: [...skipped, ...outcome.skipped], segments: outcome.segments };
    }
    const outcome = await calibrateInRounds(work, layers, statistic, ctx, (layer, hessian) => visit(layer, hessian, work));
    return { solved, rounds: outcome.rounds, samples: outcome.samples, skipped: [...skipped, ...outcome.skipped], segments: 1 };
  } finally {
    await products?.release();
  }
}

/** The layers GPTQ solves in `model` (MatMul and Gemm weights read by one layer), and those it leaves alone. */
function gptqLayers(model: Model, settings: GptqSettings): { layers: LayerMatrix[]; skipped: { node: string; reason: string }[] } {
  const { targets, skipped } = pruneTargets(model, {});
  const layers: LayerMatrix[] = [];
  for (const target of targets) {
    const reader = target.readers[0];
    if (!GPTQ_OPS.has(reader.node.opType) || settings.exclude?.(reader.node, reader.graph)) continue;
    const view = layerMatrix(target, model.graph);
    if ('reason' in view) skipped.push({ node: reader.node.label, reason: view.reason });
    else layers.push(view);
  }
  return { layers, skipped };
}

function useBlocked(layer: LayerMatrix, settings: GptqSettings): boolean {
  if (layer.target.weight.dataType !== DataType.FLOAT || layer.conv !== undefined) return false;
  return settings.kernel === undefined ? layer.rows * layer.cols >= BLOCKED_FROM_WEIGHTS : settings.kernel === 'blocked';
}

/** Whether the weight is stored [N, K] (Gemm with transB) rather than [K, N]. */
function storedByRow(layer: LayerMatrix): boolean {
  return layer.node.opType === 'Gemm' && layer.node.attrInt('transB', 0) !== 0;
}

/** Wᵀ [K, N]: a MatMul's weight as it is stored. */
function transposedWeight(layer: LayerMatrix): Float32Array {
  const data = layer.target.weight.data() as Float32Array;
  if (!storedByRow(layer)) return data;
  return transpose(data, layer.rows, layer.cols);
}

function fromTransposed(layer: LayerMatrix, weightsT: Float32Array): Float32Array {
  return storedByRow(layer) ? transpose(weightsT, layer.cols, layer.rows) : weightsT;
}

/** [a, b] -> [b, a]. */
function transpose(m: Float32Array, a: number, b: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) out[j * a + i] = m[i * b + j];
  return out;
}
