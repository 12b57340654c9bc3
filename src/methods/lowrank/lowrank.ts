// Low-rank factorization: every selected MatMul/Gemm/Conv weight W [p, q] is replaced by two
// factors through rank r (factor.ts), W ≈ U_r S_r V_rᵀ by randomized SVD (kernels/svd.ts) whose
// products run in onnxruntime when the pass context has it (runtime/ort-products.ts). The rank
// comes from an energy share, a fixed rank or a parameter budget for the whole model (ranks.ts);
// a layer is only factored where its factors hold fewer parameters than W, which also means fewer
// multiply-adds per row (per output pixel for Conv). Each factored layer reports its energy kept:
// the relative reconstruction error ‖W − L R‖_F / ‖W‖_F is √(1 − energy), exactly, because the
// randomized SVD's approximation Q B_r leaves ‖A‖² − Σσ_i(B)² of the energy behind.
import { allConstants } from '../../ir/constants.js';
import { dataTypeInfo } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import type { Svd } from '../../kernels/svd-ref.js';
import { randomizedSvd, randomizedSvdToEnergy, sumOfSquares, truncate } from '../../kernels/svd.js';
import type { Pass, PassWarning } from '../../pipeline/pass.js';
import { OrtProducts, type ProductEngine, productsFor } from '../../runtime/ort-products.js';
import { factorLayer } from './factor.js';
import { type LowRankTarget, lowRankTargets, type SkippedLayer, type WeightLayout } from './layers.js';
import { energyKept, factoredParameters, largestSavingRank, ranksForRatio } from './ranks.js';

export interface LowRankOptions {
  /** Keep this share (0, 1] of each layer's squared singular values. */
  energy?: number;
  /** Keep this many singular triplets in every layer (capped at its min(p, q)). */
  rank?: number;
  /** Bring the model's float parameters to at most this share (0, 1) of what they were. */
  ratio?: number;
  /** Op types or node-name regexes left alone. */
  exclude?: readonly string[];
  /** When given, only these nodes are factored. */
  only?: readonly string[];
  /** Factor only where it saves parameters (default true); false factors at the chosen rank regardless (exactness checks). */
  onlyWhenSmaller?: boolean;
  /** Where the SVD's products run: 'auto' (default: onnxruntime when the context has it, for all but tiny products), 'ort' or 'js'. */
  engine?: ProductEngine;
  /** Randomized SVD settings (defaults 10, 2, 0). */
  oversample?: number;
  powerIterations?: number;
  seed?: number;
  /** onnxruntime threads for the products. */
  threads?: number;
}

/** One factored weight. */
export interface FactoredLayer {
  weight: string;
  /** The layers reading it (usually one), by label, and the values they compute. */
  nodes: string[];
  values: string[];
  op: string;
  layout: WeightLayout;
  dims: number[];
  /** The weight as the matrix decomposed, [p, q]. */
  matrix: [number, number];
  rank: number;
  /** min(p, q): the rank of an exact factorization. */
  fullRank: number;
  /** The largest rank that saves parameters. */
  savingRank: number;
  parametersBefore: number;
  parametersAfter: number;
  /** Share of ‖W‖² kept; the relative reconstruction error is √(1 − energyKept). */
  energyKept: number;
  relativeError: number;
  /** Names of the two factors (read by the first and the second node). */
  factors: [string, string];
  /** Time spent on this layer's SVD. */
  svdMs: number;
}

export interface LowRankDetails {
  layers: FactoredLayer[];
  skipped: SkippedLayer[];
  /** Float parameters of the whole model, before and after. */
  parameters: { before: number; after: number };
  /** With a ratio: the budget asked for and whether it was met. */
  budget?: { ratio: number; parameters: number; reached: boolean };
  /** Where the products ran. */
  engine: 'ort' | 'js' | 'mixed';
}

/** Float weight elements of the model: every graph, initializers and Constant nodes. */
export function floatParameters(model: Model): number {
  let n = 0;
  for (const { tensor } of allConstants(model.graph)) if (dataTypeInfo(tensor.dataType).isFloat) n += tensor.elementCount;
  return n;
}

/** Checks the settings: exactly one of energy, rank, ratio, each in range. Throws a one-line error. */
export function checkLowRankSettings(options: Pick<LowRankOptions, 'energy' | 'rank' | 'ratio'>): void {
  const given = [options.energy, options.rank, options.ratio].filter((x) => x !== undefined).length;
  if (given !== 1) throw new Error(`lowrank: give exactly one of energy, rank, ratio (got ${given})`);
  if (options.energy !== undefined && !(options.energy > 0 && options.energy <= 1)) throw new Error(`lowrank: energy must be in (0, 1], got ${options.energy}`);
  if (options.rank !== undefined && !(Number.isInteger(options.rank) && options.rank >= 1)) throw new Error(`lowrank: rank must be a whole number >= 1, got ${options.rank}`);
  if (options.ratio !== undefined && !(options.ratio > 0 && options.ratio < 1)) throw new Error(`lowrank: ratio must be in (0, 1), got ${options.ratio}`);
}

interface Decomposed {
  target: LowRankTarget;
  svd: Svd | undefined;
  total: number;
  rank: number | undefined;
  ms: number;
  why?: string;
}

export const lowRankPass: Pass<LowRankOptions> = {
  name: 'lowrank',
  description: 'factor MatMul/Gemm/Conv weights into two layers through a lower rank (randomized SVD), where that saves parameters',
  async run(model, options, ctx) {
    checkLowRankSettings(options);
    const { targets, skipped } = lowRankTargets(model, options);
    const parametersBefore = floatParameters(model);
    const engine = options.engine ?? 'auto';
    const products = engine !== 'js' && ctx.ort !== undefined && targets.length > 0 ? await OrtProducts.create(ctx.ort, { threads: options.threads }) : undefined;
    const used = new Set<string>();
    const svdSettings = { oversample: options.oversample, powerIterations: options.powerIterations, seed: options.seed };
    const smaller = options.onlyWhenSmaller ?? true;
    const decomposed: Decomposed[] = [];
    try {
      for (const target of targets) {
        const started = performance.now();
        const { rows, cols } = target;
        const values = target.weight.data() as Float32Array | Float64Array;
        const total = sumOfSquares(values);
        const full = Math.min(rows, cols);
        const saving = largestSavingRank(rows, cols);
        const width = options.rank !== undefined ? options.rank + 10 : options.ratio !== undefined ? saving + 10 : 42;
        const { operator, engine: ran } = productsFor(engine, products, values, rows, cols, width);
        used.add(ran);
        let entry: Decomposed;
        if (options.rank !== undefined) {
          const rank = Math.min(options.rank, full);
          entry =
            smaller && rank > saving
              ? { target, svd: undefined, total, rank: undefined, ms: 0, why: `rank ${rank} saves no parameters: factors of [${rows}, ${cols}] hold ${factoredParameters(rows, cols, rank)} >= ${rows * cols} (ranks up to ${saving} save)` }
              : { target, svd: await randomizedSvd(operator, rank, svdSettings), total, rank, ms: 0 };
        } else if (options.energy !== undefined) {
          const found = await randomizedSvdToEnergy(operator, options.energy, total, { ...svdSettings, maxRank: smaller ? saving : undefined });
          entry =
            found.rank === undefined
              ? { target, svd: undefined, total, rank: undefined, ms: 0, why: `keeping ${percent(options.energy)} of the energy needs a rank above ${saving}, where factors of [${rows}, ${cols}] save no parameters` }
              : { target, svd: found.svd, total, rank: found.rank, ms: 0 };
        } else {
          // A budget for the model: each layer's spectrum up to the largest rank that saves
          // parameters (no higher rank is ever chosen), ranks chosen together below.
          entry = { target, svd: saving === 0 ? undefined : await randomizedSvd(operator, saving, svdSettings), total, rank: undefined, ms: 0, why: saving === 0 ? `no rank of [${rows}, ${cols}] saves parameters` : undefined };
        }
        entry.ms = performance.now() - started;
        decomposed.push(entry);
        ctx.debug?.(2, `lowrank: ${target.name} [${rows}, ${cols}] rank ${entry.rank ?? '-'} in ${entry.ms.toFixed(1)} ms`);
      }
    } finally {
      await products?.release();
    }

    const warnings: PassWarning[] = [];
    let budget: LowRankDetails['budget'];
    if (options.ratio !== undefined) {
      const usable = decomposed.filter((d) => d.svd !== undefined);
      const choice = ranksForRatio(
        usable.map((d) => ({ rows: d.target.rows, cols: d.target.cols, s: (d.svd as Svd).s, total: d.total })),
        parametersBefore,
        options.ratio,
      );
      usable.forEach((d, i) => {
        d.rank = choice.ranks[i];
        if (d.rank === undefined) d.why = 'the parameter budget was met without it (its energy per parameter saved was the dearest)';
      });
      budget = { ratio: options.ratio, parameters: Math.round(options.ratio * parametersBefore), reached: choice.reached };
      if (!choice.reached) {
        warnings.push({ code: 'ratio-not-reached', message: `ratio ${options.ratio} not reached: with every factorable layer at rank 1 the model keeps ${choice.parameters} of ${parametersBefore} float parameters (${(choice.parameters / parametersBefore).toFixed(3)}x)` });
      }
    }

    const layers: FactoredLayer[] = [];
    for (const d of decomposed) {
      const { target } = d;
      if (d.rank === undefined || d.svd === undefined) {
        for (const r of target.readers) skipped.push({ node: r.node.label, reason: d.why ?? 'not factored' });
        continue;
      }
      const svd = truncate(d.svd, Math.min(d.rank, d.svd.k));
      const kept = energyKept(svd.s, d.total, svd.k);
      const factors = factorLayer(model, target, svd);
      const reader = target.readers[0].node;
      layers.push({
        weight: target.name,
        nodes: target.readers.map((r) => r.node.label),
        values: target.readers.map((r) => r.node.outputs[0]),
        op: reader.opType,
        layout: target.layout,
        dims: [...target.weight.dims],
        matrix: [target.rows, target.cols],
        rank: svd.k,
        fullRank: Math.min(target.rows, target.cols),
        savingRank: largestSavingRank(target.rows, target.cols),
        parametersBefore: target.rows * target.cols,
        parametersAfter: factoredParameters(target.rows, target.cols, svd.k),
        energyKept: kept,
        relativeError: Math.sqrt(Math.max(0, 1 - kept)),
        factors: [factors.first, factors.second],
        svdMs: d.ms,
      });
    }
    const details: LowRankDetails = {
      layers,
      skipped,
      parameters: { before: parametersBefore, after: floatParameters(model) },
      ...(budget === undefined ? {} : { budget }),
      engine: used.size === 1 ? ([...used][0] as 'ort' | 'js') : used.size === 0 ? 'js' : 'mixed',
    };
    return {
      stats: { factored: layers.length, skipped: skipped.length, parametersBefore, parametersAfter: details.parameters.after },
      warnings,
      details,
    };
  },
};

const percent = (x: number) => `${Number((x * 100).toFixed(4))}%`;
