// Raising a model's ai.onnx opset import, which QDQ quantization needs (QuantizeLinear and
// DequantizeLinear exist from opset 10, per-axis scales from 13). Raising is only safe when every op
// of the model means the same thing at the new version, so this checks each op against the versions
// at which the ONNX spec changed its signature or meaning; an op that changes, or that this table
// does not know, blocks the raise and is named in the reason. Versions that only added element
// types or attributes whose defaults keep the old behaviour do not count as changes. When an op
// blocks the raise, static int8 upgrades the model instead (src/optimize/upgrade-opset.ts rewrites
// the nodes whose signature changed).
import { isStandardDomain } from '../../ir/constants.js';
import type { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { UNCHANGED_9_TO_13 as UNCHANGED, upgradeOpset } from '../../optimize/upgrade-opset.js';
import type { PassWarning } from '../../pipeline/pass.js';

/** Ops and the versions (after 9) at which their inputs, attributes or results changed. */
const CHANGED_AT: Readonly<Record<string, readonly number[]>> = {
  Slice: [10], // starts/ends/axes moved from attributes to inputs
  Upsample: [10], // deprecated in favour of Resize
  TopK: [10, 11], // k became an input; largest/sorted added
  Clip: [11], // min/max moved from attributes to inputs
  Pad: [11], // pads moved from attributes to inputs
  Resize: [11], // roi input and coordinate modes (checked separately at 13)
  Dropout: [12], // ratio became an input
  Squeeze: [13], // axes moved to an input
  Unsqueeze: [13],
  Split: [13],
  ReduceSum: [13],
  Softmax: [13], // no longer flattens to 2-D around `axis`
  LogSoftmax: [13],
  Hardmax: [13],
  Scan: [11],
};


/** Why `node` would change meaning if the opset went from `from` to `to`, or undefined if it would not. */
function blocker(node: Node, from: number, to: number): string | undefined {
  const changes = CHANGED_AT[node.opType];
  if (changes !== undefined) {
    if (changes.some((v) => v > from && v <= to)) return node.opType;
    if (node.opType === 'Resize' && to >= 13 && from < 13 && node.attrString('coordinate_transformation_mode') === 'tf_half_pixel_for_nn') return 'Resize (tf_half_pixel_for_nn)';
    return undefined;
  }
  return UNCHANGED.has(node.opType) ? undefined : `${node.opType} (not known to keep its meaning)`;
}

/** Ops (with counts) that block raising the default-domain opset from its current version to `to`. */
export function opsetRaiseBlockers(model: Model, to: number): string[] {
  const from = model.opset('') ?? 1;
  const counts = new Map<string, number>();
  for (const { node } of model.graph.allNodes()) {
    if (!isStandardDomain(node.domain)) continue;
    const reason = blocker(node, from, to);
    if (reason !== undefined) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  return [...counts].map(([op, n]) => (n === 1 ? op : `${op} x${n}`));
}

/** Sets the ai.onnx import to `to` (and the IR version to what that opset needs). Check the blockers first. */
export function raiseOpset(model: Model, to: number): void {
  model.opsetImports = model.opsetImports.map((o) => (isStandardDomain(o.domain) ? { ...o, version: Math.max(o.version, to) } : o));
  // Opset 13 came with IR version 7.
  if (to >= 13 && model.irVersion < 7) model.irVersion = 7;
  else if (to >= 10 && model.irVersion < 5) model.irVersion = 5;
}

/**
 * Makes the model import ai.onnx `wanted` (10 for QDQ, 13 for per-axis scales): raised as is when
 * no op changes meaning, otherwise upgraded by rewriting the ops whose signature changed
 * (upgrade-opset.ts). Returns the warning to report, or why the model could not get there.
 */
export function reachOpset(model: Model, wanted: number, method: string): { warning?: PassWarning } | { refused: string } {
  const opset = model.opset('') ?? 1;
  if (opset >= wanted) return {};
  const blockers = opsetRaiseBlockers(model, wanted);
  if (blockers.length === 0) {
    raiseOpset(model, wanted);
    return { warning: { code: 'opset-raised', message: `${method}: ai.onnx opset raised from ${opset} to ${wanted} (every op of the model keeps its meaning)` } };
  }
  try {
    const upgraded = upgradeOpset(model, { to: wanted }).stats;
    const rewritten = upgraded.nodesRewritten;
    return {
      warning: {
        code: 'opset-upgraded',
        message: `${method}: ai.onnx opset upgraded from ${opset} to ${wanted}; ${rewritten} node${rewritten === 1 ? '' : 's'} rewritten to the new signatures (${blockers.join(', ')})`,
      },
    };
  } catch (error) {
    return { refused: (error as Error).message };
  }
}
