// Common subexpression elimination: two nodes of one graph with the same op, domain, inputs and
// attributes compute the same values, so the second is dropped and its readers read the first.
// Nodes are visited in dependency order, so chains of duplicates collapse in one sweep. Left
// alone: random ops and Dropout (each call may differ), nodes holding subgraphs, ops of custom
// domains (they may keep state), and duplicates whose outputs are graph outputs.
import type { Attribute } from '../ir/attribute.js';
import { isStandardDomain } from '../ir/constants.js';
import type { Graph } from '../ir/graph.js';
import type { Node } from '../ir/node.js';
import { nodeOrder } from '../ir/toposort.js';
import type { Pass } from '../pipeline/pass.js';
import { bytesEqual, hashBytes } from './util/bytes.js';
import { allGraphs, isRead } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

const NONDETERMINISTIC = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli', 'Dropout']);

export const commonSubexpressionPass: Pass = {
  name: 'common-subexpression',
  description: 'merges nodes that compute the same op on the same inputs with the same attributes',
  run(model) {
    const result = new PassResult(['nodesRemoved']);
    for (const graph of allGraphs(model.graph)) mergeDuplicates(graph, result);
    return result.done();
  },
};

function mergeDuplicates(graph: Graph, result: PassResult): void {
  const { order, cycle } = nodeOrder(graph);
  if (cycle.length > 0) {
    result.warn('cycle', `graph '${graph.name}' has a cycle; not searched for duplicates`);
    return;
  }
  const seen = new Map<string, Node[]>();
  for (const node of order) {
    const key = nodeKey(node);
    if (key === undefined) continue;
    const candidates = seen.get(key) ?? [];
    const twin = candidates.find((c) => sameAttributes(c.attributes, node.attributes));
    if (twin === undefined || !canMerge(graph, twin, node)) {
      candidates.push(node);
      seen.set(key, candidates);
      continue;
    }
    graph.removeNode(node);
    node.outputs.forEach((out, i) => {
      if (out !== '') graph.replaceAllUses(out, twin.outputs[i]);
    });
    graph.valueInfo = graph.valueInfo.filter((v) => !node.outputs.includes(v.name));
    graph.changed();
    result.count('nodesRemoved');
  }
}

/** Op, domain, inputs and attributes as one string; undefined for nodes never merged. */
function nodeKey(node: Node): string | undefined {
  const domain = node.domain === 'ai.onnx' ? '' : node.domain;
  if (!isStandardDomain(domain) && domain !== 'com.microsoft') return undefined;
  if (NONDETERMINISTIC.has(node.opType) || node.subgraphs().length > 0) return undefined;
  const attributes: string[] = [];
  for (const a of [...node.attributes].sort((x, y) => (x.name < y.name ? -1 : 1))) {
    const value = attributeKey(a);
    if (value === undefined) return undefined;
    attributes.push(`${a.name}=${value}`);
  }
  return `${domain}|${node.opType}|${node.inputs.join(',')}|${node.outputs.length}|${attributes.join(';')}`;
}

function attributeKey(a: Attribute): string | undefined {
  if (a.refAttrName !== undefined) return undefined;
  switch (a.kind) {
    case 'float':
      return Object.is(a.value, -0) ? '-0' : String(a.value);
    case 'int':
      return String(a.value);
    case 'string':
      return Array.from(a.value).join('.');
    case 'floats':
      return a.value.map((v) => (Object.is(v, -0) ? '-0' : String(v))).join(',');
    case 'ints':
      return a.value.join(',');
    case 'strings':
      return a.value.map((s) => Array.from(s).join('.')).join(',');
    case 'tensor':
      if (a.value.dataType === 8) return `str:${a.value.strings().map((s) => Array.from(s).join('.')).join(',')}`;
      return `${a.value.dataType}:${a.value.dims.join('x')}:${hashBytes(a.value.bytes())}`;
    default:
      return undefined;
  }
}

/** Tensor attributes are keyed by a hash: confirm the bytes really match. */
function sameAttributes(a: Attribute[], b: Attribute[]): boolean {
  for (const x of a) {
    if (x.kind !== 'tensor') continue;
    const y = b.find((v) => v.name === x.name);
    if (y === undefined || y.kind !== 'tensor') return false;
    if (x.value.dataType !== 8 && !bytesEqual(x.value.bytes(), y.value.bytes())) return false;
  }
  return true;
}

/** The duplicate's outputs must be renamable: not graph outputs, and not read where the twin has none. */
function canMerge(graph: Graph, twin: Node, node: Node): boolean {
  return node.outputs.every((out, i) => out === '' || (!graph.isGraphOutput(out) && (twin.outputs[i] !== '' || !isRead(graph, out))));
}
