// The bookkeeping under the channel dependency graph. Every channel a layer creates (a Conv's
// output channels, a Gemm's output features) gets an *atom*, a small integer; an axis of a value
// that carries channels is tagged with the atoms of its positions (a flattened [C*49] axis repeats
// each of C atoms 49 times; a Concat's axis lists its inputs' atoms end to end). Ops that tie
// channels together (a residual Add, a grouped Conv, a weight read by two layers) unite atoms in a
// union-find: atoms with one root are one *channel* that is kept or removed as a whole. Atoms are
// created in *spaces* (one per layer output); spaces joined by any union form one *group*.
import type { Graph } from '../ir/graph.js';
import type { Node } from '../ir/node.js';

/** Where a space of atoms came from. */
export interface AtomSpace {
  /** The node whose output axis these atoms index (a Conv, Gemm, MatMul...), if any. */
  node: Node | undefined;
  graph: Graph;
  /** What the axis is, for messages ("output channels", "input 1 of Concat"). */
  what: string;
  start: number;
  length: number;
}

/** An axis of a value that carries channels: the atom at each position. */
export interface ChannelTag {
  axis: number;
  atoms: Int32Array;
}

export class ChannelAtoms {
  private parent = new Int32Array(1024);
  private spaceOfAtom = new Int32Array(1024);
  private count = 0;
  readonly spaces: AtomSpace[] = [];

  /** `length` new atoms in a space of their own. */
  fresh(length: number, origin: Omit<AtomSpace, 'start' | 'length'>): Int32Array {
    this.reserve(this.count + length);
    const space = this.spaces.length;
    this.spaces.push({ ...origin, start: this.count, length });
    const atoms = new Int32Array(length);
    for (let i = 0; i < length; i++) {
      const atom = this.count++;
      this.parent[atom] = atom;
      this.spaceOfAtom[atom] = space;
      atoms[i] = atom;
    }
    return atoms;
  }

  get size(): number {
    return this.count;
  }

  spaceOf(atom: number): number {
    return this.spaceOfAtom[atom];
  }

  find(atom: number): number {
    let root = atom;
    while (this.parent[root] !== root) root = this.parent[root];
    // Path compression.
    while (this.parent[atom] !== root) {
      const next = this.parent[atom];
      this.parent[atom] = root;
      atom = next;
    }
    return root;
  }

  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    // The older atom stays the root, so a channel is named after the layer that created it first.
    if (ra < rb) this.parent[rb] = ra;
    else if (rb < ra) this.parent[ra] = rb;
  }

  /** Unites two tags position by position (their lengths must agree). */
  unifyArrays(a: Int32Array, b: Int32Array): void {
    if (a.length !== b.length) throw new Error(`channel atoms: cannot tie ${a.length} positions to ${b.length}`);
    for (let i = 0; i < a.length; i++) this.union(a[i], b[i]);
  }

  private reserve(size: number): void {
    if (size <= this.parent.length) return;
    let capacity = this.parent.length;
    while (capacity < size) capacity *= 2;
    const parent = new Int32Array(capacity);
    parent.set(this.parent);
    const space = new Int32Array(capacity);
    space.set(this.spaceOfAtom);
    this.parent = parent;
    this.spaceOfAtom = space;
  }
}

/** `atoms` with each repeated `times` times in place ([a, b] x2 -> [a, a, b, b]). */
export function repeatAtoms(atoms: Int32Array, times: number): Int32Array {
  const out = new Int32Array(atoms.length * times);
  for (let i = 0; i < out.length; i++) out[i] = atoms[Math.floor(i / times)];
  return out;
}
