// Rules for If, Loop and Scan: their bodies are inferred as graphs of their own (seeing the
// enclosing scopes' types), and the node's outputs come from the body outputs. Where two
// inferences of one value disagree (If's branches, a Loop-carried value that changes between
// iterations) equal dims are kept and the others get a fresh symbol.
import { DataType } from '../../ir/dtype.js';
import { type Dim, mergeDims, normalizeAxis } from './dims.js';
import { type InferredValue, type RuleContext, type RuleOutput, tensor } from './context.js';

/** One value as inferred two ways: types must agree, shapes merge dim by dim. */
function mergeTypes(ctx: RuleContext, a: RuleOutput, b: RuleOutput): RuleOutput {
  if (a === undefined || b === undefined) return undefined;
  if (a.elemType !== b.elemType) ctx.fail(`branches give types ${a.elemType} and ${b.elemType}`);
  if (a.shape === undefined || b.shape === undefined || a.shape.length !== b.shape.length) return tensor(a.elemType, undefined);
  return tensor(
    a.elemType,
    a.shape.map((d, i) => mergeDims(d, (b.shape as Dim[])[i], () => ctx.fresh())),
  );
}

export function ifRule(ctx: RuleContext): RuleOutput[] {
  const thenOut = ctx.inferSubgraph(ctx.subgraph('then_branch'), []);
  const elseOut = ctx.inferSubgraph(ctx.subgraph('else_branch'), []);
  // A condition known before run time picks its branch outright.
  const cond = ctx.numbers(0);
  if (cond !== undefined && cond.length === 1) return cond[0] !== 0 ? thenOut : elseOut;
  return ctx.node.outputs.map((_, i) => mergeTypes(ctx, thenOut[i], elseOut[i]));
}

function withoutValue(value: RuleOutput): RuleOutput {
  return value === undefined ? undefined : tensor(value.elemType, value.shape === undefined ? undefined : [...value.shape]);
}

/**
 * Loop(M, cond, v_initial...): body(iteration_num, cond, v...) -> (cond, v..., scan outputs...).
 * Carried values whose shape changes in the body are inferred again with the merged shape.
 */
export function loop(ctx: RuleContext): RuleOutput[] {
  const body = ctx.subgraph('body');
  const carriedCount = ctx.node.inputs.length - 2;
  const scalar = (elemType: number): InferredValue => tensor(elemType, []);
  let carried: RuleOutput[] = Array.from({ length: carriedCount }, (_, k) => withoutValue(ctx.input(k + 2)));
  let out = ctx.inferSubgraph(body, [scalar(DataType.INT64), scalar(DataType.BOOL), ...carried]);
  const merged = carried.map((v, k) => mergeTypes(ctx, v, out[k + 1]));
  const changed = merged.some((m, k) => JSON.stringify(m?.shape) !== JSON.stringify(carried[k]?.shape));
  if (changed) {
    carried = merged;
    out = ctx.inferSubgraph(body, [scalar(DataType.INT64), scalar(DataType.BOOL), ...carried]);
  }
  // The trip count is M when the body's condition just passes its input through (a for loop).
  const trips = ctx.numbers(0);
  const plainFor = ctx.inputCount >= 1 && body.inputs.length > 1 && body.outputs[0]?.name === body.inputs[1]?.name;
  const noCondition = !ctx.has(1) || ctx.numbers(1)?.[0] === 1;
  const tripCount: Dim = trips !== undefined && plainFor && noCondition ? trips[0] : ctx.fresh('Loop');
  const scanOutputs = out.slice(1 + carriedCount).map((v) => (v?.shape === undefined ? v : tensor(v.elemType, [tripCount, ...v.shape])));
  return [...carried.map(withoutValue), ...scanOutputs];
}

/** Scan (opset 9+): scan inputs are cut along their scan axes; scan outputs stack along theirs. */
export function scan(ctx: RuleContext): RuleOutput[] {
  if (ctx.opset < 9) return scan8(ctx);
  const body = ctx.subgraph('body');
  const scanInputs = ctx.attrInt('num_scan_inputs', 0);
  const stateCount = ctx.node.inputs.length - scanInputs;
  const inputAxes = ctx.attrInts('scan_input_axes') ?? new Array<number>(scanInputs).fill(0);
  let length: Dim = null;
  const bodyInputs: RuleOutput[] = ctx.node.inputs.map((_, i) => {
    const value = withoutValue(ctx.input(i));
    if (i < stateCount || value?.shape === undefined) return value;
    const axis = normalizeAxis(inputAxes[i - stateCount], value.shape.length) ?? ctx.fail('scan_input_axes out of range');
    if (i === stateCount) length = value.shape[axis];
    return tensor(value.elemType, value.shape.filter((_, d) => d !== axis));
  });
  const out = ctx.inferSubgraph(body, bodyInputs);
  const outputAxes = ctx.attrInts('scan_output_axes');
  return out.map((v, k) => {
    if (k < stateCount || v?.shape === undefined) return withoutValue(v);
    const rank = v.shape.length + 1;
    const axis = normalizeAxis(outputAxes?.[k - stateCount] ?? 0, rank) ?? ctx.fail('scan_output_axes out of range');
    const shape = [...v.shape];
    shape.splice(axis, 0, length);
    return tensor(v.elemType, shape);
  });
}

/** Scan-8: a leading batch dim on every input and output, sequence on axis 1 of scan inputs. */
function scan8(ctx: RuleContext): RuleOutput[] {
  const body = ctx.subgraph('body');
  const scanInputs = ctx.attrInt('num_scan_inputs', 0);
  const inputs = ctx.node.inputs.slice(1).map((_, i) => withoutValue(ctx.input(i + 1)));
  const stateCount = inputs.length - scanInputs;
  const first = inputs[stateCount]?.shape;
  const batch: Dim = first?.[0] ?? null;
  const length: Dim = first?.[1] ?? null;
  const bodyInputs = inputs.map((v, i) => (v?.shape === undefined ? v : tensor(v.elemType, v.shape.slice(i < stateCount ? 1 : 2))));
  const out = ctx.inferSubgraph(body, bodyInputs);
  return out.map((v, k) => {
    if (v?.shape === undefined) return withoutValue(v);
    return tensor(v.elemType, k < stateCount ? [batch, ...v.shape] : [batch, length, ...v.shape]);
  });
}
