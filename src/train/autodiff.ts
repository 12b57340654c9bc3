// Reverse-mode automatic differentiation as a graph transformation: given a scalar loss value and
// the values to differentiate with respect to, appends to the model's main graph the nodes that
// compute dLoss/dValue, in standard ai.onnx ops, walking the forward nodes in reverse dependency
// order and applying each op's gradient rule (gradient-rules.ts). Only nodes that lie between a
// wanted value and the loss are differentiated; a node there without a rule is an error naming it.
import { GraphBuilder } from '../ir/builder.js';
import { DataType, dataTypeInfo } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { nodeOrder } from '../ir/toposort.js';
import { attr } from '../ir/attribute.js';
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { Tensor } from '../ir/tensor.js';
import { inferShapes } from '../optimize/shape-inference/index.js';
import type { Dim } from '../ir/value-info.js';
import { GradientContext, GradientError, type GradientRule, type GradientScope, type ValueType, scalarTensor } from './gradient-context.js';
import { GRADIENT_RULES, ruleKey } from './gradient-rules.js';
import { STRAIGHT_THROUGH_OPS } from './gradients/quantize.js';

export interface GradientOptions {
  /** The value to minimise. Any shape: a non-scalar loss is summed. */
  loss: string;
  /** Values to differentiate with respect to: graph inputs, initializers or any computed value. */
  wrt: readonly string[];
  /** Rules to use instead of the built-in registry (tests, user extensions). */
  rules?: ReadonlyMap<string, GradientRule>;
  /** Concrete shapes for main-graph inputs (e.g. the batch size) to help shape inference. */
  inputShapes?: Record<string, Dim[]>;
}

export interface GradientResult {
  /** For each value of `wrt`, the name of its gradient in the graph. */
  gradients: Map<string, string>;
  /** Values of `wrt` the loss does not depend on (their gradient is zeros). */
  unused: string[];
  /** How many backward nodes were added. */
  nodesAdded: number;
}

/**
 * Adds gradient nodes to `model.graph` (in place). The model's ai.onnx opset must be at least 13;
 * training-graph.ts upgrades older models first.
 */
export function addGradients(model: Model, options: GradientOptions): GradientResult {
  const graph = model.graph;
  const opset = model.opset('') ?? 1;
  if (opset < 13) throw new GradientError(`ai.onnx opset ${opset} is too old for the backward graph (13 or newer; upgrade the model first)`);
  const rules = options.rules ?? GRADIENT_RULES;
  const inferred = inferShapes(model, { inputShapes: options.inputShapes });
  const type = (value: string): ValueType | undefined => {
    const t = inferred.main.get(value);
    return t === undefined ? undefined : { elemType: t.elemType as DataType, shape: t.shape };
  };
  const known = (value: string) => graph.producer(value) !== undefined || graph.isGraphInput(value) || graph.initializer(value) !== undefined;
  if (!known(options.loss)) throw new GradientError(`loss '${options.loss}' is not a value of the model`);
  for (const value of options.wrt) {
    if (!known(value)) throw new GradientError(`'${value}' (to differentiate with respect to) is not a value of the model`);
    const t = type(value);
    if (t !== undefined && !dataTypeInfo(t.elemType).isFloat) throw new GradientError(`'${value}' is not a floating-point value; it has no gradient`);
  }

  const order = nodeOrder(graph).order;
  const active = activeValues(order, options.wrt, options.loss, type);
  const builder = new GraphBuilder(graph);
  const before = graph.nodes.length;
  const scope: GradientScope = { builder, opset, type, constant: (value) => constantValue(graph, value), constants: new Map() };

  // Gradient contributions per forward value; summed when a value feeds several consumers.
  const contributions = new Map<string, string[]>();
  const add = (value: string, grad: string) => {
    const list = contributions.get(value);
    if (list === undefined) contributions.set(value, [grad]);
    else list.push(grad);
  };
  const total = (value: string): string | undefined => {
    const list = contributions.get(value);
    if (list === undefined || list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    const sum = builder.node('Sum', list, [], { nameBase: `grad/sum/${value}` });
    contributions.set(value, [sum]);
    return sum;
  };

  const lossType = type(options.loss);
  if (lossType === undefined) throw new GradientError(`the type of loss '${options.loss}' could not be inferred`);
  const one = scalarTensor(1, lossType.elemType);
  add(options.loss, builder.node('ConstantOfShape', [builder.node('Shape', [options.loss], [], { nameBase: 'grad/loss_shape' })], [attr.tensor('value', Tensor.fromBytes('one', one.dataType, [1], one.bytes()))], { nameBase: 'grad/loss_seed' }));

  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (!node.outputs.some((o) => active.has(o))) continue;
    const incoming = node.outputs.map((o) => (active.has(o) ? total(o) : undefined));
    if (incoming.every((g) => g === undefined)) continue;
    const wanted = node.inputs.map((v) => v !== '' && active.has(v));
    if (!wanted.some(Boolean)) continue;
    const rule = rules.get(ruleKey(node.domain, node.opType));
    if (rule === undefined) {
      throw new GradientError(`node '${node.label}' (${node.opType}${node.domain === '' ? '' : `, ${node.domain}`}): no gradient rule for ${node.opType}, and it lies between '${nearestWanted(node, options.wrt)}' and the loss`);
    }
    const grads = rule(new GradientContext(node, scope, incoming, wanted));
    wanted.forEach((want, k) => {
      if (!want) return;
      const grad = grads[k];
      if (grad === undefined) throw new GradientError(`node '${node.label}' (${node.opType}): its gradient rule gave no gradient for input ${k} ('${node.inputs[k]}')`);
      add(node.inputs[k], grad);
    });
  }

  const gradients = new Map<string, string>();
  const unused: string[] = [];
  for (const value of options.wrt) {
    let grad = total(value);
    if (grad === undefined) {
      unused.push(value);
      const t = type(value);
      const zero = scalarTensor(0, t?.elemType ?? DataType.FLOAT);
      const shape = builder.node('Shape', [value], [], { nameBase: 'grad/unused_shape' });
      grad = builder.node('ConstantOfShape', [shape], [attr.tensor('value', Tensor.fromBytes('zero', zero.dataType, [1], zero.bytes()))], { nameBase: 'grad/unused' });
    }
    gradients.set(value, grad);
  }
  graph.changed();
  return { gradients, unused, nodesAdded: graph.nodes.length - before };
}

/**
 * Values on a path from a `wrt` value to the loss: reachable forward from `wrt` through float
 * values (integer outputs such as Shape's carry no gradient) and backward from the loss.
 */
function activeValues(order: readonly Node[], wrt: readonly string[], loss: string, type: (v: string) => ValueType | undefined): Set<string> {
  const forward = new Set(wrt);
  for (const node of order) {
    if (!node.inputs.some((v) => forward.has(v))) continue;
    // QuantizeLinear's integer output carries a gradient under the straight-through estimator.
    const straightThrough = isStandardDomain(node.domain) && STRAIGHT_THROUGH_OPS.has(node.opType);
    for (const out of node.outputs) {
      const t = type(out);
      if (out !== '' && (straightThrough || t === undefined || dataTypeInfo(t.elemType).isFloat)) forward.add(out);
    }
  }
  const backward = new Set([loss]);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (!node.outputs.some((o) => backward.has(o))) continue;
    for (const v of node.inputs) if (v !== '') backward.add(v);
  }
  return new Set([...forward].filter((v) => backward.has(v)));
}

/** For messages: the first wanted value among a node's inputs, else the first wanted overall. */
function nearestWanted(node: Node, wrt: readonly string[]): string {
  return node.inputs.find((v) => wrt.includes(v)) ?? wrt[0] ?? '';
}
