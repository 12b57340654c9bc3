// Evaluates a set of nodes whose inputs are all known by running them in onnxruntime, so every op
// onnxruntime has is supported without a kernel of our own: the nodes go into a small model of
// their own, their constant inputs become its initializers, and the values wanted become its
// outputs. Constant folding batches everything foldable in a graph (or in all graphs of one
// nesting level) into one such run.
import type { Graph } from '../../ir/graph.js';
import { Graph as GraphClass } from '../../ir/graph.js';
import { Model } from '../../ir/model.js';
import type { Node } from '../../ir/node.js';
import { DataType } from '../../ir/dtype.js';
import { Tensor } from '../../ir/tensor.js';
import { makeValueInfo } from '../../ir/value-info.js';
import type { OrtModule } from '../../runtime/ort-types.js';
import { ModelSession, fromOrtTensor } from '../../runtime/session.js';

/** Nodes to run, the constants they read, and the values to bring back. */
export interface Evaluation {
  /** In a valid order (producers first). */
  nodes: Node[];
  /** Every value the nodes read that no node of `nodes` computes, by name. */
  inputs: Map<string, Tensor>;
  outputs: string[];
}

/** `tensor` under the name `name`, sharing its bytes (Constant node values are often unnamed). */
export function renamedTensor(tensor: Tensor, name: string): Tensor {
  if (tensor.name === name) return tensor;
  if (tensor.dataType === DataType.STRING) return Tensor.fromStrings(name, tensor.dims, tensor.strings());
  return Tensor.fromBytes(name, tensor.dataType, tensor.dims, tensor.bytes());
}

/** The model onnxruntime runs for `evaluation`: no graph inputs, constants as initializers. */
export function evaluationModel(source: Model, evaluation: Evaluation): Model {
  const graph: Graph = new GraphClass('constant_folding');
  graph.nodes = [...evaluation.nodes];
  graph.initializers = [...evaluation.inputs.values()];
  graph.outputs = evaluation.outputs.map((name) => makeValueInfo(name));
  graph.changed();
  // IR 4 lets initializers stand alone, without a matching graph input.
  return new Model(graph, { irVersion: Math.max(source.irVersion, 4), opsetImports: source.opsetImports.map((o) => ({ ...o })) });
}

/**
 * Runs `evaluation` in onnxruntime and returns each output as a tensor (bytes copied out of
 * onnxruntime's buffers). Throws onnxruntime's error when the model does not load or run.
 */
export async function evaluateNodes(ort: OrtModule, source: Model, evaluation: Evaluation): Promise<Map<string, Tensor>> {
  const session = await ModelSession.create(ort, evaluationModel(source, evaluation), { threads: 1, graphOptimization: 'disabled' });
  try {
    const results = await session.run({}, evaluation.outputs);
    const values = new Map<string, Tensor>();
    for (const name of evaluation.outputs) {
      const value = fromOrtTensor(results[name], name);
      values.set(name, value.dataType === DataType.STRING ? value : Tensor.fromBytes(name, value.dataType, value.dims, value.bytes().slice()));
    }
    return values;
  } finally {
    await session.release();
  }
}

/** The nodes of `candidates` that `outputs` depend on, in the candidates' order. */
export function ancestorsOf(candidates: readonly Node[], producer: ReadonlyMap<string, Node>, outputs: readonly string[]): Node[] {
  const needed = new Set<Node>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const node = producer.get(stack.pop() as string);
    if (node === undefined || needed.has(node)) continue;
    needed.add(node);
    for (const input of node.inputs) if (input !== '') stack.push(input);
  }
  return candidates.filter((n) => needed.has(n));
}
