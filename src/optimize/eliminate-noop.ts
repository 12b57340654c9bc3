// Removes nodes that provably return their input unchanged: a Cast to the type the input already
// has, a Reshape to the shape it already has, a Transpose with the identity permutation, a Pad
// with all-zero pads, a Slice that keeps every element. "Provably" means from what the model
// states (declared types and shapes, constants); a node that might be a no-op is left alone.
import { isStandardDomain } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Pass } from '../pipeline/pass.js';
import { bypassNode } from './util/bypass.js';
import { allGraphs } from './util/graph-queries.js';
import { PassResult } from './util/report.js';
import { constantInts, knownElemType, knownShape } from './util/static-info.js';

/** Slice ends at or beyond this (INT32_MAX, what exporters write for "to the end") cover any dim. */
const TO_THE_END = 2 ** 31 - 1;

type NoopCheck = (model: Model, graph: Graph, node: Node) => boolean;

const CHECKS: Record<string, NoopCheck> = {
  Cast: (_model, graph, node) => {
    const to = node.attrInt('to');
    return to !== undefined && to === knownElemType(graph, node.inputs[0]);
  },
  Reshape: reshapeIsNoop,
  Transpose: (_model, graph, node) => {
    const perm = node.attrInts('perm');
    if (perm !== undefined) return perm.every((p, i) => p === i);
    // Without perm the axes are reversed, which changes nothing only for rank 0 or 1.
    const rank = knownShape(graph, node.inputs[0])?.length;
    return rank !== undefined && rank <= 1;
  },
  Pad: (model, graph, node) => {
    const pads = (model.opset('') ?? 0) >= 11 ? constantInts(graph, node.inputs[1] ?? '') : (node.attrInts('pads') ?? node.attrInts('paddings'));
    return pads !== undefined && pads.every((p) => p === 0);
  },
  Slice: sliceIsNoop,
};

export const eliminateNoopPass: Pass = {
  name: 'eliminate-noop',
  description: 'removes Cast, Reshape, Transpose, Pad and Slice nodes that provably return their input',
  run(model) {
    const result = new PassResult(['nodesRemoved']);
    for (const graph of allGraphs(model.graph)) {
      for (const node of [...graph.nodes]) {
        if (!isStandardDomain(node.domain)) continue;
        const check = CHECKS[node.opType];
        if (check === undefined || !check(model, graph, node)) continue;
        const kept = bypassNode(graph, node, node.inputs[0] ?? '', node.outputs[0]);
        if (kept !== undefined) {
          result.warn('noop-kept', `${node.opType} '${node.label}' does nothing but was kept: ${kept}`, { node: node.label });
          continue;
        }
        result.count('nodesRemoved');
        result.count(`${node.opType}Removed`);
      }
    }
    return result.done();
  },
};

/**
 * A Reshape is a no-op when the target has the input's rank and each target dim either equals the
 * input's (a number), copies it (0 without allowzero), or is the single -1, which the other dims
 * then force to equal the input's dim. Symbolic input dims are fine when copied.
 */
function reshapeIsNoop(model: Model, graph: Graph, node: Node): boolean {
  const target = (model.opset('') ?? 0) >= 5 ? constantInts(graph, node.inputs[1] ?? '') : node.attrInts('shape');
  const input = knownShape(graph, node.inputs[0]);
  if (target === undefined || input === undefined || target.length !== input.length) return false;
  const allowZero = node.attrInt('allowzero', 0) !== 0;
  let inferred = 0;
  for (let i = 0; i < target.length; i++) {
    const t = target[i];
    if (t === 0 && !allowZero) continue;
    if (t === -1) {
      inferred++;
      continue;
    }
    if (typeof input[i] !== 'number' || input[i] !== t) return false;
  }
  return inferred <= 1;
}

/** A Slice is a no-op when every sliced axis starts at 0, runs to the end, and steps by 1. */
function sliceIsNoop(model: Model, graph: Graph, node: Node): boolean {
  const fromInputs = (model.opset('') ?? 0) >= 10;
  const starts = fromInputs ? constantInts(graph, node.inputs[1] ?? '') : node.attrInts('starts');
  const ends = fromInputs ? constantInts(graph, node.inputs[2] ?? '') : node.attrInts('ends');
  if (starts === undefined || ends === undefined || starts.length !== ends.length) return false;
  const axesName = fromInputs ? (node.inputs[3] ?? '') : '';
  const axes = fromInputs ? (axesName === '' ? undefined : constantInts(graph, axesName)) : node.attrInts('axes');
  if (axesName !== '' && axes === undefined) return false;
  const stepsName = fromInputs ? (node.inputs[4] ?? '') : '';
  const steps = stepsName === '' ? undefined : constantInts(graph, stepsName);
  if (stepsName !== '' && (steps === undefined || steps.some((s) => s !== 1))) return false;
  const shape = knownShape(graph, node.inputs[0]);
  for (let i = 0; i < starts.length; i++) {
    let axis = axes === undefined ? i : axes[i];
    if (axis < 0) {
      if (shape === undefined) return false;
      axis += shape.length;
    }
    const dim = shape?.[axis];
    const size = typeof dim === 'number' ? dim : undefined;
    const startsAtZero = starts[i] === 0 || (size !== undefined && starts[i] <= -size);
    const runsToEnd = ends[i] >= TO_THE_END || (size !== undefined && ends[i] >= size);
    if (!startsAtZero || !runsToEnd) return false;
  }
  return true;
}
