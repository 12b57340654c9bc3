// The channel dependency graph of an ONNX model (DepGraph, Fang et al. 2023, on the deployed
// graph instead of the training code): every group of channels that must shrink together, found
// by walking each graph in dependency order and applying each op's rule (channel-rules.ts). A
// group lists its channels, the layers that create them, every constant slice and attribute that
// pruning rewrites (members and edits), and, when it cannot be pruned, the first reason with the
// node that couples it (a graph output, a LayerNormalization over the channels, an unknown op).
// Shapes come from shape inference; weights are read wherever they live (initializers, Constant
// nodes, enclosing scopes), and the layers inside If/Loop bodies form groups of their own.
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { nodeOrder } from '../ir/toposort.js';
import type { Dim } from '../ir/value-info.js';
import { inferShapes } from '../optimize/shape-inference/index.js';
import { ChannelAtoms, type ChannelTag } from './channel-atoms.js';
import { blockInputs, type ChannelRuleContext, type EditApply, type MemberRole } from './channel-rule-context.js';
import { CHANNEL_RULES } from './channel-rules.js';

export type { MemberRole } from './channel-rule-context.js';

/** A constant that pruning slices: input `input` of `node` along `axis`, position p belonging to atom atoms[p]. */
export interface ChannelMember {
  /** The graph holding `node`. */
  graph: Graph;
  node: Node;
  input: number;
  name: string;
  axis: number;
  atoms: Int32Array;
  role: MemberRole;
}

/** An attribute or shape constant rewritten from the count of surviving `atoms`. */
export interface ChannelEdit {
  graph: Graph;
  node: Node;
  atoms: Int32Array;
  what: string;
  apply: EditApply;
}

export interface ChannelBlock {
  reason: string;
  /** The node that couples the group (its name, or op type and outputs when unnamed). */
  node: string;
}

export interface ChannelGroup {
  id: number;
  /** The graph whose layers create the group's channels. */
  graph: Graph;
  /** Root atom of each channel, in the order the layers create them. */
  channels: number[];
  /** Layers whose output channels these are (Conv, Gemm, MatMul...), in the order found. */
  sources: Node[];
  /** Every node with a constant or attribute rewritten when the group shrinks. */
  nodes: Node[];
  /** Why the group cannot be pruned: the first reason found, and the node that couples it. */
  blocked?: ChannelBlock;
  /** Its channels are attention heads. */
  heads?: true;
}

export interface ChannelAnalysis {
  atoms: ChannelAtoms;
  groups: ChannelGroup[];
  members: ChannelMember[];
  edits: ChannelEdit[];
  /** Values that carry channels, per graph: their declared shapes go stale when channels go. */
  tagged: Map<Graph, Set<string>>;
  /** The group an atom belongs to. */
  groupOf(atom: number): ChannelGroup;
}

export interface AnalyzeChannelsOptions {
  /** Concrete shapes of main-graph inputs (a sample's), so flattened and reshaped sizes are static. */
  inputShapes?: Record<string, Dim[]>;
}

/** Finds every channel group of `model` (which is not changed). */
export function analyzeChannels(model: Model, options: AnalyzeChannelsOptions = {}): ChannelAnalysis {
  const shapes = inferShapes(model, { inputShapes: options.inputShapes });
  const atoms = new ChannelAtoms();
  const members: ChannelMember[] = [];
  const edits: ChannelEdit[] = [];
  const tagged = new Map<Graph, Set<string>>();
  const spaceBlocks = new Map<number, ChannelBlock>();
  const headAtoms: number[] = [];
  const opset = model.opset('') ?? 1;

  const dimsOf = (graph: Graph, value: string): readonly Dim[] | undefined => {
    for (let g: Graph | undefined = graph; g !== undefined; g = g.parent) {
      const type = shapes.types.get(g)?.get(value);
      if (type !== undefined) return type.shape;
      if (g.definesLocally(value)) return undefined;
    }
    return undefined;
  };
  const block = (list: Int32Array, reason: string, node: string) => {
    for (const a of list) {
      const space = atoms.spaceOf(a);
      if (!spaceBlocks.has(space)) spaceBlocks.set(space, { reason, node });
    }
  };

  model.graph.visit((graph) => {
    const tags = new Map<string, ChannelTag[]>();
    const seen = new Set<string>();
    tagged.set(graph, seen);
    for (const node of nodeOrder(graph).order) {
      // Values read inside If/Loop bodies would need the bodies rewritten too: not followed.
      for (const sub of node.subgraphs()) {
        for (const name of sub.outerReads()) for (const tag of tags.get(name) ?? []) block(tag.atoms, `read inside a subgraph of ${node.opType}`, node.label);
      }
      const ctx = ruleContext(node, graph);
      const rule = isStandardDomain(node.domain) ? CHANNEL_RULES[node.opType] : undefined;
      if (rule === undefined) blockInputs(ctx, `${node.domain ? `${node.domain}.` : ''}${node.opType} is not followed by the channel analysis`);
      else rule(ctx);
    }
    for (const output of graph.outputs) {
      const producer = graph.producer(output.name);
      for (const tag of tags.get(output.name) ?? []) block(tag.atoms, `'${output.name}' is a graph output`, producer?.label ?? output.name);
    }

    function ruleContext(node: Node, g: Graph): ChannelRuleContext {
      const label = node.label;
      return {
        node,
        graph: g,
        opset,
        tags: (i) => (node.inputs[i] ? (tags.get(node.inputs[i]) ?? []) : []),
        valueTags: (name) => tags.get(name) ?? [],
        inputDims: (i) => (node.inputs[i] ? dimsOf(g, node.inputs[i]) : undefined),
        outputDims: (i) => (node.outputs[i] ? dimsOf(g, node.outputs[i]) : undefined),
        constant: (i) => (node.inputs[i] ? constantValue(g, node.inputs[i]) : undefined),
        ints: (i) => {
          const t = node.inputs[i] ? constantValue(g, node.inputs[i]) : undefined;
          if (t === undefined || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32)) return undefined;
          return Array.from(t.data() as ArrayLike<number | bigint>, Number);
        },
        fresh: (length, what) => atoms.fresh(length, { node, graph: g, what }),
        unify: (a, b) => atoms.unifyArrays(a, b),
        block: (list, reason) => block(list, reason, label),
        member: (i, axis, list, role) => {
          const name = node.inputs[i];
          if (!name || constantValue(g, name) === undefined) block(list, `input ${i} of ${node.opType} is computed at run time`, label);
          else members.push({ graph: g, node, input: i, name, axis, atoms: list, role });
        },
        edit: (list, what, apply) => edits.push({ graph: g, node, atoms: list, what, apply }),
        heads: (list) => headAtoms.push(...list),
        output: (i, list) => {
          const name = node.outputs[i];
          if (!name || list.length === 0) return;
          tags.set(name, list);
          seen.add(name);
        },
      };
    }
  });

  // A constant read by several layers (a shared weight) ties the channels of its positions.
  const byTensor = new Map<string, ChannelMember>();
  for (const m of members) {
    const scope = m.graph.scopeOf(m.name) ?? m.graph;
    const key = `${scopeKey(scope)}\u0000${m.name}\u0000${m.axis}`;
    const first = byTensor.get(key);
    if (first === undefined) byTensor.set(key, m);
    else if (first.atoms.length === m.atoms.length) atoms.unifyArrays(first.atoms, m.atoms);
    else block(m.atoms, `'${m.name}' is read by '${first.node.label}' and '${m.node.label}' with different channel layouts`, m.node.label);
  }
  const analysis = buildGroups(atoms, members, edits, tagged, spaceBlocks);
  for (const a of headAtoms) analysis.groupOf(a).heads = true;
  return analysis;
}

const graphIds = new WeakMap<Graph, number>();
let nextGraphId = 0;
function scopeKey(graph: Graph): number {
  let id = graphIds.get(graph);
  if (id === undefined) {
    id = nextGraphId++;
    graphIds.set(graph, id);
  }
  return id;
}

function buildGroups(atoms: ChannelAtoms, members: ChannelMember[], edits: ChannelEdit[], tagged: Map<Graph, Set<string>>, spaceBlocks: Map<number, ChannelBlock>): ChannelAnalysis {
  // Spaces joined by any tie form one group.
  const spaceParent = atoms.spaces.map((_, i) => i);
  const findSpace = (s: number): number => {
    while (spaceParent[s] !== s) {
      spaceParent[s] = spaceParent[spaceParent[s]];
      s = spaceParent[s];
    }
    return s;
  };
  for (let a = 0; a < atoms.size; a++) {
    const x = findSpace(atoms.spaceOf(a));
    const y = findSpace(atoms.spaceOf(atoms.find(a)));
    if (x !== y) spaceParent[Math.max(x, y)] = Math.min(x, y);
  }
  const groups: ChannelGroup[] = [];
  const groupOfSpace = new Map<number, ChannelGroup>();
  atoms.spaces.forEach((space, s) => {
    const root = findSpace(s);
    let group = groupOfSpace.get(root);
    if (group === undefined) {
      group = { id: groups.length, graph: space.graph, channels: [], sources: [], nodes: [] };
      groups.push(group);
      groupOfSpace.set(root, group);
    }
    const seen = new Set(group.channels);
    for (let a = space.start; a < space.start + space.length; a++) {
      const r = atoms.find(a);
      if (!seen.has(r)) {
        seen.add(r);
        group.channels.push(r);
      }
    }
    if (space.node !== undefined && !group.sources.includes(space.node)) group.sources.push(space.node);
    const blocked = spaceBlocks.get(s);
    if (blocked !== undefined && group.blocked === undefined) group.blocked = blocked;
  });
  const groupOf = (atom: number) => groupOfSpace.get(findSpace(atoms.spaceOf(atom))) as ChannelGroup;
  for (const entry of [...members, ...edits]) {
    const touched = new Set<ChannelGroup>();
    for (const a of entry.atoms) touched.add(groupOf(a));
    for (const group of touched) if (!group.nodes.includes(entry.node)) group.nodes.push(entry.node);
  }
  return { atoms, groups, members, edits, tagged, groupOf };
}
