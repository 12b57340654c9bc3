// N:M semi-structured pruning (2:4 as NVIDIA's sparse tensor cores run it, 4:8): along the
// reduction axis of each weight (a Conv's input channels, K of MatMul/Gemm, from the weighted-layer
// table), every run of M consecutive weights keeps its N largest magnitudes. A layer whose
// reduction axis is not a multiple of M is an error naming it (exclude it with --exclude).
import { Tensor } from '../../ir/tensor.js';
import { nmMask, zeroCount } from '../../kernels/sparsity.js';
import { replaceConstant } from '../../graph-edit/replace-constant.js';
import type { Pass } from '../../pipeline/pass.js';
import type { PruneDetails, PrunedTensor } from './details.js';
import { type LayerChoice, pruneTargets } from './layers.js';

export interface NmOptions extends LayerChoice {
  /** Weights kept in each run of `m`. */
  n: number;
  m: number;
}

/** A --pattern such as '2:4': N kept of every M, 0 < N < M. Throws a one-line error otherwise. */
export function parsePattern(text: string, where = '--pattern'): { n: number; m: number } {
  const match = /^(\d+):(\d+)$/.exec(text.trim());
  const n = match === null ? Number.NaN : Number(match[1]);
  const m = match === null ? Number.NaN : Number(match[2]);
  if (!(n > 0 && m > n)) throw new Error(`${where}: '${text}' is not an N:M pattern with 0 < N < M (e.g. 2:4 or 4:8)`);
  return { n, m };
}

export const nmPass: Pass<NmOptions> = {
  name: 'prune-nm',
  description: 'keep the N largest of every M consecutive weights along the reduction axis of Conv/MatMul/Gemm layers',
  run(model, options) {
    const { n, m } = options;
    const { targets, skipped } = pruneTargets(model, options);
    const tensors: PrunedTensor[] = [];
    for (const target of targets) {
      const reader = target.readers[0];
      const axis = reader.axes?.reduction;
      const dims = target.weight.dims;
      if (axis === undefined) {
        skipped.push({ node: reader.node.label, reason: `weight '${target.name}' [${dims}] has no reduction axis` });
        continue;
      }
      if (dims[axis] % m !== 0) {
        throw new Error(
          `prune: ${n}:${m} needs the reduction axis of every pruned layer to be a multiple of ${m}, but '${reader.node.label}' (${reader.node.opType}) reads ${dims[axis]} along axis ${axis} of '${target.name}' [${dims}]; leave it out with --exclude '${reader.node.name || reader.node.opType}'`,
        );
      }
      const values = target.weight.data() as Float32Array | Float64Array;
      const mask = nmMask(values, dims, axis, n, m);
      const data = values.slice();
      for (let j = 0; j < data.length; j++) if (mask[j] === 0) data[j] = 0;
      const zerosBefore = zeroCount(values);
      replaceConstant(model, target.scope, target.name, Tensor.fromArray(target.name, target.weight.dataType, dims, data), target.readers);
      tensors.push({ name: target.name, node: reader.node.label, op: reader.node.opType, dimsBefore: [...dims], dimsAfter: [...dims], zerosBefore, zerosAfter: zeroCount(data) });
    }
    const details: PruneDetails = { tensors, skipped };
    return { stats: { tensors: tensors.length, zeroed: tensors.reduce((k, t) => k + t.zerosAfter - t.zerosBefore, 0), skipped: skipped.length }, warnings: [], details };
  },
};
