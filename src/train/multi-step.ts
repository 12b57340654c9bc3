// Several training steps in one onnxruntime run: the step graph becomes the body of a Loop that
// carries the weights, optimizer state and running statistics from one iteration to the next, and
// reads its batch, learning rate and step number from inputs that hold all of the run's steps.
// onnxruntime hands each iteration's results to the next inside the run, so the weights cross into
// JavaScript (one copy of every updated tensor) once per run instead of once per step; for a small
// model that copy is a fifth of the step. The iterations compute exactly what single steps do.
import { attr } from '../ir/attribute.js';
import { buildModel, GraphBuilder } from '../ir/builder.js';
import { DataType } from '../ir/dtype.js';
import { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Node } from '../ir/node.js';
import { makeValueInfo, tensorTypeOf } from '../ir/value-info.js';
import { GradientError } from './gradient-error.js';
import type { TrainingStep } from './training-graph.js';

export interface MultiStep {
  model: Model;
  /** Per data or loss input of the step: the input holding every step's batch, [steps, ...batch dims]. */
  stacked: Map<string, string>;
  /** [steps] learning rates. */
  rates: string;
  /** Scalar: the step number of the run's first step (1 for the first step of training). */
  firstStep: string;
  /** Per carried step input (weight, state, running statistic): the outer input that starts it, and the output that ends it. */
  carried: { input: string; outer: string; final: string }[];
  /** [steps] loss of each step. */
  losses: string;
}

/** Carried values of a step: each fed-back input with the output that updates it. */
export function carriedValues(step: TrainingStep): { input: string; output: string }[] {
  return [
    ...step.weights.map((w) => ({ input: w.name, output: w.updated })),
    ...step.state.map((s) => ({ input: s.input, output: s.output })),
    ...step.buffers.map((b) => ({ input: b.name, output: b.updated })),
  ];
}

export function buildMultiStep(step: TrainingStep): MultiStep {
  const source = step.model.graph;
  const outer = new Graph(`${source.name}_steps`);
  const body = source.clone(outer);
  body.name = `${source.name}_step`;
  const taken = new Set<string>();
  body.visit((g) => {
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) taken.add(v.name);
    for (const t of g.initializers) taken.add(t.name);
    for (const n of g.nodes) for (const o of [...n.inputs, ...n.outputs]) taken.add(o);
  });
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };
  const declared = (name: string) => {
    const type = tensorTypeOf(source.inputs.find((i) => i.name === name));
    if (type === undefined) throw new GradientError(`the training step has no typed input '${name}'`);
    return type;
  };

  const ob = new GraphBuilder(outer);
  const stacked = new Map<string, string>();
  const pre: Node[] = [];
  const iteration = fresh('steps/iteration');
  const condition = fresh('steps/condition');
  for (const name of [...step.dataInputs, ...step.lossInputs]) {
    const type = declared(name);
    const all = ob.input(fresh(`steps/${name}`), type.elemType as DataType, ['steps', ...(type.shape ?? [])]);
    stacked.set(name, all);
    pre.push(new Node({ opType: 'Gather', inputs: [all, iteration], outputs: [name], name: fresh(`steps/gather/${name}`), attributes: [attr.int('axis', 0)] }));
  }
  const rates = ob.input(fresh('steps/learning_rates'), step.type, ['steps']);
  const firstStep = ob.input(fresh('steps/first_step'), step.type, []);
  pre.push(new Node({ opType: 'Gather', inputs: [rates, iteration], outputs: [step.learningRate], name: fresh('steps/gather/learning_rate'), attributes: [attr.int('axis', 0)] }));
  const offset = fresh('steps/iteration_float');
  pre.push(new Node({ opType: 'Cast', inputs: [iteration], outputs: [offset], name: fresh('steps/cast'), attributes: [attr.int('to', step.type)] }));
  pre.push(new Node({ opType: 'Add', inputs: [offset, firstStep], outputs: [step.step], name: fresh('steps/step') }));
  const conditionOut = fresh('steps/condition_out');
  pre.push(new Node({ opType: 'Identity', inputs: [condition], outputs: [conditionOut], name: fresh('steps/continue') }));

  const values = carriedValues(step);
  const carried = values.map((v) => {
    const type = declared(v.input);
    return { input: v.input, outer: ob.input(fresh(`steps/initial/${v.input}`), type.elemType as DataType, type.shape), final: fresh(`steps/final/${v.input}`) };
  });
  // Loop body: (iteration, condition, carried...) -> (condition, carried..., loss per step).
  body.inputs = [makeValueInfo(iteration, { elemType: DataType.INT64, shape: [] }), makeValueInfo(condition, { elemType: DataType.BOOL, shape: [] }), ...values.map((v) => source.inputs.find((i) => i.name === v.input) ?? makeValueInfo(v.input))];
  body.outputs = [makeValueInfo(conditionOut), ...values.map((v) => makeValueInfo(v.output)), makeValueInfo(step.loss)];
  body.nodes = [...pre, ...body.nodes];
  body.changed();

  const count = ob.node('Shape', [rates], [], { name: fresh('steps/count') });
  const always = ob.initializer(fresh('steps/always'), DataType.BOOL, [], Uint8Array.of(1));
  const losses = fresh('steps/losses');
  ob.node('Loop', [ob.node('Squeeze', [count], [], { name: fresh('steps/count_scalar') }), always, ...carried.map((c) => c.outer)], [attr.graph('body', body)], {
    name: fresh('steps/loop'),
    outputs: [...carried.map((c) => c.final), losses],
  });
  for (const c of carried) ob.output(c.final);
  ob.output(losses);
  outer.changed();
  const model = buildModel(outer, step.model.opsetImports, step.model.irVersion);
  return { model, stacked, rates, firstStep, carried, losses };
}
