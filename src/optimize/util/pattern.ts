// Small matching helpers for the fusion passes. A fusion walks from one anchor node along
// producer/consumer links, checking at each step that the op is the expected one, that constants
// hold the expected scalar (exported models write 1/6 or sqrt(2) with float32 rounding, so the
// check takes a tolerance), and that every intermediate value is read only inside the pattern,
// so removing the pattern's nodes cannot starve another reader.
import { constantValue } from '../../ir/constants.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { float16ToNumber } from '../../eval/numeric.js';
import { isOp, isRead, onlyReader, subgraphReaders } from './graph-queries.js';

/** Relative tolerance for constants that exporters write with float32 rounding. */
export const SCALAR_TOLERANCE = 1e-4;

/** The value of a constant holding exactly one element (any shape), as a number. */
export function scalarConstant(graph: Graph, value: string): number | undefined {
  if (value === '') return undefined;
  const tensor = constantValue(graph, value);
  if (tensor === undefined || tensor.elementCount !== 1) return undefined;
  const data = tensor.data();
  switch (tensor.dataType) {
    case DataType.FLOAT:
    case DataType.DOUBLE:
    case DataType.INT32:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.INT16:
    case DataType.UINT16:
      return Number(data[0]);
    case DataType.INT64:
      return Number(data[0] as bigint);
    case DataType.FLOAT16:
      return float16ToNumber(data[0] as number);
    default:
      return undefined;
  }
}

/** True if `actual` equals `expected` within the relative tolerance. */
export function near(actual: number | undefined, expected: number, tolerance = SCALAR_TOLERANCE): boolean {
  if (actual === undefined) return false;
  return Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected));
}

/** True if `value` is a one-element constant near `expected`. */
export function isScalar(graph: Graph, value: string, expected: number, tolerance = SCALAR_TOLERANCE): boolean {
  return near(scalarConstant(graph, value), expected, tolerance);
}

/** The standard-domain node producing `value` if it is one of `opTypes`. */
export function producerOf(graph: Graph, value: string, ...opTypes: string[]): Node | undefined {
  const node = graph.producer(value);
  return isOp(node, ...opTypes) ? node : undefined;
}

/** The single node reading `value` if it is one of `opTypes` and nothing else reads the value. */
export function soleConsumer(graph: Graph, value: string, ...opTypes: string[]): Node | undefined {
  const readers = graph.consumers(value);
  if (readers.length !== 1) return undefined;
  const node = readers[0];
  return isOp(node, ...opTypes) && onlyReader(graph, value, node) ? node : undefined;
}

/**
 * For a two-input node (Add, Mul) whose input `known` is one operand: the other operand, or
 * undefined if neither input is `known`. Both inputs equal to `known` returns `known`.
 */
export function otherOperand(node: Node, known: string): string | undefined {
  if (node.inputs.length !== 2) return undefined;
  if (node.inputs[0] === known) return node.inputs[1];
  if (node.inputs[1] === known) return node.inputs[0];
  return undefined;
}

/** For a two-input commutative node: [scalar constant value, the other input], in either order. */
export function splitScalarOperand(graph: Graph, node: Node): { scalar: number; other: string } | undefined {
  if (node.inputs.length !== 2) return undefined;
  for (const i of [1, 0]) {
    const scalar = scalarConstant(graph, node.inputs[i]);
    if (scalar !== undefined) return { scalar, other: node.inputs[1 - i] };
  }
  return undefined;
}

/**
 * True if every value computed by `nodes`, except `keep` (the pattern's result), is read only by
 * nodes of the pattern: not by other nodes, graph outputs or subgraphs.
 */
export function internalValuesPrivate(graph: Graph, nodes: readonly Node[], keep: string): boolean {
  const inside = new Set(nodes);
  for (const node of nodes) {
    for (const out of node.outputs) {
      if (out === '' || out === keep) continue;
      if (graph.isGraphOutput(out) || subgraphReaders(graph, out).length > 0) return false;
      if (graph.consumers(out).some((reader) => !inside.has(reader))) return false;
    }
  }
  return true;
}

/**
 * Replaces the pattern `nodes` by `fused` (one node, or a short chain whose last node computes the
 * result; earlier ones must have their outputs named already). The result keeps its name, so its
 * readers need no rewiring. The fused nodes take the place of the last pattern node in the graph's
 * list order, where every input of the pattern is already available. Constants of this graph that
 * only the pattern read are removed too; returns how many.
 */
export function replacePattern(graph: Graph, nodes: readonly Node[], fused: Node | Node[], result: string): number {
  const chain = Array.isArray(fused) ? fused : [fused];
  const positions = nodes.map((n) => graph.nodes.indexOf(n));
  if (positions.some((p) => p < 0)) throw new Error(`graph '${graph.name}': pattern node is not in the graph`);
  const last = Math.max(...positions);
  chain[chain.length - 1].outputs = [result];
  for (const node of chain) if (node.name === '') node.name = graph.uniqueName(node.opType);
  const drop = new Set(nodes);
  const kept: Node[] = [];
  graph.nodes.forEach((node, i) => {
    if (i === last) kept.push(...chain);
    else if (!drop.has(node)) kept.push(node);
  });
  graph.nodes = kept;
  // Intermediate values are gone; annotations naming them would describe nothing.
  const removed = new Set(nodes.flatMap((n) => n.outputs).filter((o) => o !== result));
  graph.valueInfo = graph.valueInfo.filter((v) => !removed.has(v.name));
  graph.changed();
  // The pattern's constants (3, 6, epsilon, ...) are usually read by nothing else now.
  let dropped = 0;
  for (const value of new Set(nodes.flatMap((n) => n.inputs))) if (dropUnusedConstant(graph, value)) dropped++;
  return dropped;
}

/** A new node for a fusion (not yet in the graph). */
export function fusedNode(graph: Graph, opType: string, inputs: string[], attributes: Node['attributes'] = [], domain = ''): Node {
  return new Node({ opType, inputs, outputs: [], name: graph.uniqueName(opType), domain, attributes });
}

/** Makes sure the model imports `domain` at `version` or later (adding it when missing). */
export function ensureOpset(model: Model, domain: string, version: number): void {
  const found = model.opsetImports.find((o) => o.domain === domain);
  if (found === undefined) model.opsetImports.push({ domain, version });
  else if (found.version < version) found.version = version;
}

/**
 * Removes the Constant node or initializer defining `value` in `graph` once nothing reads it (a
 * fusion that rewrote a weight leaves the old one behind). Returns true if it was removed.
 */
export function dropUnusedConstant(graph: Graph, value: string): boolean {
  if (value === '' || isRead(graph, value)) return false;
  const producer = graph.producer(value);
  if (producer !== undefined) {
    if (!isOp(producer, 'Constant')) return false;
    graph.removeNode(producer);
    graph.valueInfo = graph.valueInfo.filter((v) => v.name !== value);
    return true;
  }
  if (graph.initializer(value) !== undefined && !graph.isGraphInput(value)) {
    graph.removeInitializer(value);
    return true;
  }
  return false;
}
