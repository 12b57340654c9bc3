// Fuses a transformer's residual connection into its layer norm:
//   s = a + b (+ bias on a, as Linear exports it: Add(MatMul(..), bias)); y = LayerNormalization(s)
// becomes onnxruntime's com.microsoft SkipLayerNormalization(input a, skip b, gamma, beta, bias),
// which both onnxruntime-node and onnxruntime-web run (float32; checked in the tests). When the
// sum s is read elsewhere too (pre-norm blocks feed it to the next residual Add), the fused node's
// fourth output, input_skip_bias_sum, takes its name. Runs after fuse-layernorm, which writes the
// LayerNormalization nodes this pass looks for.
import { attr } from '../ir/attribute.js';
import { constantValue } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { topologicalSort } from '../ir/toposort.js';
import type { Dim } from '../ir/value-info.js';
import type { Pass } from '../pipeline/pass.js';
import { inferShapes } from './shape-inference/index.js';
import { allGraphs, isOp, isRead, subgraphReaders } from './util/graph-queries.js';
import { ensureOpset, fusedNode, producerOf, replacePattern, soleConsumer } from './util/pattern.js';
import { PassResult } from './util/report.js';

interface Match {
  nodes: Node[];
  input: string;
  skip: string;
  gamma: string;
  beta: string;
  bias: string;
  /** The residual sum, when something besides the layer norm reads it. */
  sum?: string;
}

export const fuseSkipLayerNorm: Pass = {
  name: 'fuse-skip-layernorm',
  description: 'Add(+bias) residual + LayerNormalization over the last axis -> com.microsoft SkipLayerNormalization',
  run(model) {
    const result = new PassResult(['fused', 'withBias', 'nodesRemoved']);
    const shapes = inferShapesThroughFusions(model).types;
    for (const graph of allGraphs(model.graph)) {
      const types = shapes.get(graph);
      const shapeOf = (v: string): readonly Dim[] | undefined => types?.get(v)?.shape;
      const elemOf = (v: string): number | undefined => types?.get(v)?.elemType;
      for (const norm of [...graph.nodes]) {
        if (!isOp(norm, 'LayerNormalization') || !graph.nodes.includes(norm)) continue;
        const add = producerOf(graph, norm.inputs[0], 'Add');
        if (add === undefined || add.inputs.some((v) => constantValue(graph, v) !== undefined)) continue;
        const why = unsupported(graph, norm, add, shapeOf, elemOf);
        if (why !== undefined) {
          result.warn('not-fused', `residual Add '${add.label}' + LayerNormalization '${norm.label}' left as is: ${why}`, { node: norm.label });
          continue;
        }
        const match = matchSkip(graph, norm, add, shapeOf);
        const fused = fusedNode(graph, 'SkipLayerNormalization', [match.input, match.skip, match.gamma, match.beta, match.bias], [attr.float('epsilon', norm.attrFloat('epsilon', 1e-5) ?? 1e-5)], 'com.microsoft');
        // Outputs: output, mean, inv_std_var, input_skip_bias_sum (the last only when read).
        const result0 = norm.outputs[0];
        if (match.sum !== undefined) fused.outputs = ['', '', '', match.sum];
        replacePatternWithOutputs(graph, match.nodes, fused, result0, match.sum);
        ensureOpset(model, 'com.microsoft', 1);
        result.count('fused');
        if (match.bias !== '') result.count('withBias');
        result.count('nodesRemoved', match.nodes.length - 1);
      }
    }
    return result.done();
  },
};

/** com.microsoft ops whose first output has the shape and type of their first input. */
const SHAPE_PRESERVING_CONTRIB_OPS = ['SkipLayerNormalization', 'MultiHeadAttention', 'Gelu', 'FastGelu'];

/**
 * Shape inference that sees through the contrib ops the fusions write (the rules cover ai.onnx
 * only): each is presented as an Identity of its first input for the run, then restored. Without
 * this, fusing one layer would hide the shapes of every layer after it from the next fusion.
 * TODO: move into the shape-inference rules once they take other domains.
 */
export function inferShapesThroughFusions(model: Model): ReturnType<typeof inferShapes> {
  const saved: { node: Node; opType: string; domain: string; inputs: string[]; outputs: string[] }[] = [];
  const graphs = new Set<Graph>();
  for (const { node, graph } of model.graph.allNodes()) {
    if (node.domain !== 'com.microsoft' || !SHAPE_PRESERVING_CONTRIB_OPS.includes(node.opType)) continue;
    saved.push({ node, opType: node.opType, domain: node.domain, inputs: node.inputs, outputs: node.outputs });
    Object.assign(node, { opType: 'Identity', domain: '', inputs: [node.inputs[0]], outputs: [node.outputs[0]] });
    graphs.add(graph);
  }
  for (const graph of graphs) graph.changed();
  try {
    return inferShapes(model);
  } finally {
    for (const { node, ...fields } of saved) Object.assign(node, fields);
    for (const graph of graphs) graph.changed();
  }
}

/** Why the pair cannot become SkipLayerNormalization, or undefined when it can. */
function unsupported(graph: Graph, norm: Node, add: Node, shapeOf: (v: string) => readonly Dim[] | undefined, elemOf: (v: string) => number | undefined): string | undefined {
  if (norm.outputs.slice(1).some((o) => o !== '' && isRead(graph, o))) return 'the mean or inverse std-dev output is read';
  if (elemOf(norm.inputs[0]) !== DataType.FLOAT) return 'it does not compute in float32 (the type onnxruntime-web runs it in)';
  const [a, b] = add.inputs.map(shapeOf);
  if (a === undefined || b === undefined) return 'the shapes of the Add inputs are unknown';
  // SkipLayerNormalization takes [batch, sequence, hidden] for both: no broadcasting.
  if (a.length !== 3 || b.length !== 3 || a.some((d, i) => d === null || d !== b[i])) return `the Add inputs are not two equal [batch, sequence, hidden] shapes ([${a.join(',')}] and [${b.join(',')}])`;
  const axis = norm.attrInt('axis', -1) ?? -1;
  if (axis !== -1 && axis !== 2) return `it normalizes from axis ${axis}, not over the last axis alone`;
  if ((norm.attrInt('stash_type', 1) ?? 1) !== 1) return 'stash_type is not float32';
  const hidden = a[2];
  const isVector = (v: string | undefined): boolean => v === undefined || v === '' || (constantValue(graph, v)?.dims.join() ?? '') === `${hidden}`;
  if (!isVector(norm.inputs[1]) || norm.inputs[1] === undefined || !isVector(norm.inputs[2])) return `gamma/beta are not constant vectors of [${hidden}]`;
  return undefined;
}

/** The pieces of the fused node; folds a bias Add on one side of the residual when it has one. */
function matchSkip(graph: Graph, norm: Node, add: Node, shapeOf: (v: string) => readonly Dim[] | undefined): Match {
  const nodes = [add, norm];
  let [input, skip] = add.inputs;
  let bias = '';
  const hidden = shapeOf(input)?.[2];
  for (const side of [0, 1]) {
    const biasAdd = producerOf(graph, add.inputs[side], 'Add');
    if (biasAdd === undefined || soleConsumer(graph, biasAdd.outputs[0], 'Add') !== add) continue;
    const constant = biasAdd.inputs.findIndex((v) => constantValue(graph, v)?.dims.join() === `${hidden}`);
    if (constant < 0 || constantValue(graph, biasAdd.inputs[1 - constant]) !== undefined) continue;
    const source = biasAdd.inputs[1 - constant];
    if (shapeOf(source)?.join() !== shapeOf(add.inputs[side])?.join()) continue;
    nodes.unshift(biasAdd);
    input = source;
    skip = add.inputs[1 - side];
    bias = biasAdd.inputs[constant];
    break;
  }
  const s = add.outputs[0];
  const sumRead = graph.consumers(s).some((n) => n !== norm) || graph.isGraphOutput(s) || subgraphReaders(graph, s).length > 0;
  const sum = sumRead ? s : undefined;
  return { nodes, input, skip, gamma: norm.inputs[1], beta: norm.inputs[2] ?? '', bias, sum };
}

/**
 * replacePattern keeps one result; the fused node may also produce the residual sum under its
 * old name, which replacePattern must not treat as an intermediate value.
 */
function replacePatternWithOutputs(graph: Graph, nodes: Node[], fused: Node, result: string, sum: string | undefined): void {
  if (sum === undefined) {
    replacePattern(graph, nodes, fused, result);
    return;
  }
  const producer = nodes.find((n) => n.outputs.includes(sum)) as Node;
  // Detach the sum from its old producer first, so the graph never holds two definitions of it.
  producer.outputs = producer.outputs.map((o) => (o === sum ? graph.uniqueName(`${sum}_replaced`) : o));
  const outputs = [...fused.outputs];
  replacePattern(graph, nodes, fused, result);
  // replacePattern names only the result; the sum output comes back here.
  fused.outputs = [result, ...outputs.slice(1)];
  graph.changed();
  // A reader of the sum may sit between the old Add and the layer norm in list order.
  topologicalSort(graph);
}
