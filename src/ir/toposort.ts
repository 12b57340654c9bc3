// Orders a graph's nodes so that every node comes after the nodes computing what it reads.
// Real models ship unsorted (and passes append nodes at the end), while ONNX requires producers
// first. The sort is stable: among nodes that are ready, the one that came first stays first, so
// a sorted graph is left exactly as it was.
import type { Graph } from './graph.js';
import type { Node } from './node.js';

/** The outcome of ordering one graph (not its subgraphs): an order, or the nodes of a cycle. */
export interface NodeOrder {
  /** Every node whose inputs can all be computed, in a valid order. */
  order: Node[];
  /** Nodes on one dependency cycle, in dependency order; empty when the graph has none. */
  cycle: Node[];
  /** Nodes that could not be ordered: the cycle and everything downstream of it. */
  blocked: Node[];
}

/**
 * Sorts `graph.nodes` in place and, recursively, the nodes of every subgraph. Values defined by
 * graph inputs, initializers and enclosing scopes are ready from the start; a node that holds
 * subgraphs also waits for the values its subgraphs read from this graph. Throws on a cycle,
 * naming the nodes on it.
 */
export function topologicalSort(graph: Graph): void {
  for (const node of graph.nodes) for (const sub of node.subgraphs()) topologicalSort(sub);
  const { order, cycle } = nodeOrder(graph);
  if (cycle.length > 0) throw new Error(`graph '${graph.name}': ${describeCycle(cycle)}`);
  const unchanged = order.every((node, i) => graph.nodes[i] === node);
  if (unchanged) return;
  graph.nodes = order;
  graph.changed();
}

/** "cycle among nodes 'a', 'b'": the message both the sort and the validator give. */
export function describeCycle(cycle: readonly Node[]): string {
  return `cycle among nodes ${cycle.map((n) => `'${n.label}'`).join(', ')}`;
}

/** The values a node reads: its inputs and whatever its subgraphs read from enclosing scopes. */
export function nodeReads(node: Node): Set<string> {
  const reads = new Set<string>();
  for (const name of node.inputs) if (name !== '') reads.add(name);
  for (const sub of node.subgraphs()) for (const name of sub.outerReads()) reads.add(name);
  return reads;
}

/** A stable dependency order of one graph's nodes, without changing the graph. */
export function nodeOrder(graph: Graph): NodeOrder {
  const nodes = graph.nodes;
  const position = new Map<Node, number>(nodes.map((n, i) => [n, i]));
  // A value may (wrongly) be produced twice; a reader then waits for every producer.
  const producers = new Map<string, number[]>();
  nodes.forEach((node, i) => {
    for (const out of node.outputs) {
      if (out === '') continue;
      const list = producers.get(out);
      if (list === undefined) producers.set(out, [i]);
      else list.push(i);
    }
  });

  // deps[i]: indexes of the nodes node i waits for; readers[j]: nodes waiting for node j.
  const deps: number[][] = nodes.map((node) => {
    const set = new Set<number>();
    for (const name of nodeReads(node)) for (const p of producers.get(name) ?? []) set.add(p);
    return [...set];
  });
  const readers: number[][] = nodes.map(() => []);
  const waiting = deps.map((d) => d.length);
  deps.forEach((list, i) => {
    for (const j of list) readers[j].push(i);
  });

  const ready = new MinHeap();
  waiting.forEach((count, i) => {
    if (count === 0) ready.push(i);
  });
  const order: Node[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    order.push(nodes[i]);
    for (const r of readers[i]) if (--waiting[r] === 0) ready.push(r);
  }
  if (order.length === nodes.length) return { order, cycle: [], blocked: [] };

  const blocked = nodes.filter((_, i) => waiting[i] > 0);
  return { order, cycle: findCycle(nodes, position.get(blocked[0]) as number, deps, waiting), blocked };
}

/**
 * Every blocked node waits on at least one other blocked node, so following those waits from any
 * of them must come back to a node already seen: the nodes from there on form a cycle.
 */
function findCycle(nodes: readonly Node[], firstBlocked: number, deps: number[][], waiting: number[]): Node[] {
  const path: number[] = [];
  const seenAt = new Map<number, number>();
  let current = firstBlocked;
  while (!seenAt.has(current)) {
    seenAt.set(current, path.length);
    path.push(current);
    const next = deps[current].find((j) => waiting[j] > 0);
    if (next === undefined) break; // cannot happen for a blocked node; guards against a bad index
    current = next;
  }
  const start = seenAt.get(current) ?? 0;
  // Listed so that each node is followed by one that reads it.
  return path
    .slice(start)
    .reverse()
    .map((i) => nodes[i]);
}

/** A binary min-heap of node indexes: the earliest ready node is taken first (stability). */
class MinHeap {
  private items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent] <= value) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop() as number;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= items.length) break;
        const right = left + 1;
        const child = right < items.length && items[right] < items[left] ? right : left;
        if (items[child] >= last) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}
