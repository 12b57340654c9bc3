// Optimizer steps as graph pieces: for each trainable tensor, nodes that compute its updated value
// and updated optimizer state from its gradient. The learning rate (any schedule: the trainer
// computes it per step) and the step count come in as scalar graph inputs; the state tensors are
// graph inputs and outputs that the trainer feeds back each step.
import { attr } from '../ir/attribute.js';
import { isStandardDomain } from '../ir/constants.js';
import type { DataType } from '../ir/dtype.js';
import type { Emitter } from './emitter.js';

export type OptimizerSpec =
  | { kind: 'sgd'; momentum?: number; weightDecay?: number; nesterov?: boolean }
  | { kind: 'adamw'; beta1?: number; beta2?: number; epsilon?: number; weightDecay?: number };

/** One tensor of optimizer state: read from `input`, written to `output`, zeros at the start. */
export interface StateSlot {
  param: string;
  input: string;
  output: string;
}

export interface ParameterUpdate {
  param: string;
  grad: string;
  /** Name of the updated parameter value. */
  updated: string;
}

export interface OptimizerInputs {
  /** Scalar learning rate of this step. */
  learningRate: string;
  /** Scalar step number (1 for the first step), in the parameters' float type: Adam's bias correction. */
  step: string;
  type: DataType;
}

/**
 * Emits the update of each parameter. `declareState(param, suffix)` declares a graph input for a
 * state tensor shaped like the parameter and returns its name; the updated state is returned in
 * the slots so the caller can mark it as a graph output.
 */
export function emitOptimizer(
  e: Emitter,
  spec: OptimizerSpec,
  params: { param: string; grad: string }[],
  inputs: OptimizerInputs,
  declareState: (param: string, suffix: string) => string,
): { updates: ParameterUpdate[]; state: StateSlot[] } {
  const s = (v: number) => e.scalarOf(v, inputs.type);
  const lr = inputs.learningRate;
  const updates: ParameterUpdate[] = [];
  const state: StateSlot[] = [];
  for (const { param, grad } of params) {
    if (spec.kind === 'sgd') {
      const momentum = spec.momentum ?? 0.9;
      const decay = spec.weightDecay ?? 0;
      // PyTorch's SGD: g' = g + wd p; v = mu v + g'; step = nesterov ? g' + mu v : v.
      const g = decay === 0 ? grad : e.op('Add', [grad, e.op('Mul', [param, s(decay)])]);
      let direction = g;
      if (momentum !== 0) {
        const velocity = declareState(param, 'momentum');
        const next = fusedIntoGemm(e, g, velocity, momentum) ?? e.op('Add', [e.op('Mul', [velocity, s(momentum)]), g]);
        state.push({ param, input: velocity, output: next });
        direction = spec.nesterov === true ? e.op('Add', [g, e.op('Mul', [next, s(momentum)])]) : next;
      }
      updates.push({ param, grad, updated: e.op('Sub', [param, e.op('Mul', [direction, lr])]) });
    } else {
      const beta1 = spec.beta1 ?? 0.9;
      const beta2 = spec.beta2 ?? 0.999;
      const epsilon = spec.epsilon ?? 1e-8;
      const decay = spec.weightDecay ?? 0.01;
      const m = declareState(param, 'adam_m');
      const v = declareState(param, 'adam_v');
      const mNext = e.op('Add', [e.op('Mul', [m, s(beta1)]), e.op('Mul', [grad, s(1 - beta1)])]);
      const vNext = e.op('Add', [e.op('Mul', [v, s(beta2)]), e.op('Mul', [e.op('Mul', [grad, grad]), s(1 - beta2)])]);
      state.push({ param, input: m, output: mNext }, { param, input: v, output: vNext });
      // Bias-corrected moments: m / (1 - b1^t), v / (1 - b2^t).
      const correction1 = e.op('Sub', [s(1), e.op('Pow', [s(beta1), inputs.step])]);
      const correction2 = e.op('Sub', [s(1), e.op('Pow', [s(beta2), inputs.step])]);
      const mHat = e.op('Div', [mNext, correction1]);
      const vHat = e.op('Div', [vNext, correction2]);
      const adam = e.op('Div', [mHat, e.op('Add', [e.op('Sqrt', [vHat]), s(epsilon)])]);
      // Decoupled weight decay (AdamW): p - lr (adam + wd p).
      const direction = decay === 0 ? adam : e.op('Add', [adam, e.op('Mul', [param, s(decay)])]);
      updates.push({ param, grad, updated: e.op('Sub', [param, e.op('Mul', [direction, lr])]) });
    }
  }
  return { updates, state };
}

/**
 * beta * state + grad computed by the Gemm that produces the gradient, when a Gemm without a C
 * input produces it and nothing else reads it (the weight gradient of a Gemm layer): the state
 * becomes its C input with beta, so the sum needs no pass of its own over the weight. Returns the
 * sum's name (the Gemm's output, renamed so no stale 'gradient' value remains), or undefined.
 */
function fusedIntoGemm(e: Emitter, grad: string, state: string, beta: number): string | undefined {
  const graph = e.builder.graph;
  const gemm = graph.producer(grad);
  if (gemm === undefined || gemm.opType !== 'Gemm' || !isStandardDomain(gemm.domain) || (gemm.inputs[2] ?? '') !== '') return undefined;
  if (graph.consumers(grad).length > 0 || graph.isGraphOutput(grad)) return undefined;
  const sum = e.builder.fresh(`${state}/next`);
  gemm.inputs = [gemm.inputs[0], gemm.inputs[1], state];
  gemm.outputs = [sum];
  gemm.attributes = [...gemm.attributes.filter((a) => a.name !== 'beta'), attr.float('beta', beta)];
  graph.changed();
  return sum;
}

/**
 * Scales every gradient by min(1, maxNorm / (norm + 1e-6)) where norm is the global L2 norm of all
 * of them together. Returns the clipped gradients (same order) and the norm before clipping.
 */
export function clipByGlobalNorm(e: Emitter, grads: string[], ranks: number[], maxNorm: number, type: DataType): { grads: string[]; norm: string } {
  const squares = grads.map((g, i) => e.reduce('ReduceSum', e.op('Mul', [g, g]), Array.from({ length: ranks[i] }, (_, k) => k), false));
  const norm = e.op('Sqrt', [squares.length === 1 ? squares[0] : e.op('Sum', squares)]);
  const scale = e.op('Min', [e.scalarOf(1, type), e.op('Div', [e.scalarOf(maxNorm, type), e.op('Add', [norm, e.scalarOf(1e-6, type)])])]);
  return { grads: grads.map((g) => e.op('Mul', [g, scale])), norm };
}
