// One way to read a constant, wherever the model keeps it: an initializer, a Constant node
// (value, value_float(s), value_int(s), value_string(s), sparse_value), or either of those in an
// enclosing graph when the reader is inside an If/Loop/Scan body.
import { DataType } from './dtype.js';
import type { Graph } from './graph.js';
import type { Node } from './node.js';
import { Tensor } from './tensor.js';
import { densifySparse } from './sparse.js';

/** The constant value of `name` as seen from `graph`, or undefined if it is computed at run time. */
export function constantValue(graph: Graph, name: string): Tensor | undefined {
  for (let g: Graph | undefined = graph; g !== undefined; g = g.parent) {
    const initializer = g.initializer(name);
    // An initializer that is also a graph input is only a default the caller may override.
    if (initializer !== undefined) return g.isGraphInput(name) ? undefined : initializer;
    const producer = g.producer(name);
    if (producer !== undefined) return producer.opType === 'Constant' && isStandardDomain(producer.domain) ? constantNodeValue(producer) : undefined;
    if (g.isGraphInput(name)) return undefined;
  }
  return undefined;
}

export function isStandardDomain(domain: string): boolean {
  return domain === '' || domain === 'ai.onnx';
}

/** The tensor a Constant node produces, named after its output. */
export function constantNodeValue(node: Node): Tensor {
  const name = node.outputs[0] ?? node.name;
  const a = node.attributes.find((x) => x.name.startsWith('value') || x.name === 'sparse_value');
  if (a === undefined) throw new Error(`Constant node '${node.label}' has no value attribute`);
  switch (a.name) {
    case 'value':
      if (a.kind !== 'tensor') break;
      // The attribute's tensor is often unnamed or named differently from the output.
      if (a.value.name !== name) a.value.name = name;
      return a.value;
    case 'sparse_value':
      if (a.kind !== 'sparse_tensor') break;
      return densifySparse(a.value, `Constant node '${node.label}'`, name);
    case 'value_float':
      if (a.kind === 'float') return Tensor.fromArray(name, DataType.FLOAT, [], new Float32Array([a.value]));
      break;
    case 'value_floats':
      if (a.kind === 'floats') return Tensor.fromArray(name, DataType.FLOAT, [a.value.length], new Float32Array(a.value));
      break;
    case 'value_int':
      if (a.kind === 'int') return Tensor.fromArray(name, DataType.INT64, [], new BigInt64Array([a.value]));
      break;
    case 'value_ints':
      if (a.kind === 'ints') return Tensor.fromArray(name, DataType.INT64, [a.value.length], new BigInt64Array(a.value));
      break;
    case 'value_string':
      if (a.kind === 'string') return Tensor.fromStrings(name, [], [a.value]);
      break;
    case 'value_strings':
      if (a.kind === 'strings') return Tensor.fromStrings(name, [a.value.length], a.value);
      break;
  }
  throw new Error(`Constant node '${node.label}': attribute '${a.name}' has unexpected kind ${a.kind}`);
}

/** Where a constant lives, for reports: initializers, Constant nodes, external files. */
export type ConstantSource = 'initializer' | 'constant-node' | 'external';

/** Every constant tensor in the model (all scopes), with where it lives and its graph. */
export function* allConstants(root: Graph): Generator<{ tensor: Tensor; source: ConstantSource; graph: Graph; node?: Node }> {
  const graphs: Graph[] = [];
  root.visit((g) => graphs.push(g));
  for (const graph of graphs) {
    for (const tensor of graph.initializers) yield { tensor, source: tensor.isExternal ? 'external' : 'initializer', graph };
    for (const node of graph.nodes) {
      if (node.opType === 'Constant' && isStandardDomain(node.domain)) {
        yield { tensor: constantNodeValue(node), source: 'constant-node', graph, node };
      }
    }
  }
}
