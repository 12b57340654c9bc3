// Structural checks of a graph, run after loading and after every pass in tests: values read but
// never defined, values defined twice, cycles, graph outputs that nothing computes, initializers
// that contradict their declared type, and nodes of domains the model does not import. It finds
// what onnxruntime would reject at load time, but names the node and value in shrink's terms.
import { dataTypeName } from './dtype.js';
import type { Graph } from './graph.js';
import { Model } from './model.js';
import type { Node } from './node.js';
import type { Tensor } from './tensor.js';
import { describeCycle, nodeOrder, nodeReads } from './toposort.js';
import { type TensorType, tensorTypeOf } from './value-info.js';

export type GraphIssueCode =
  /** A node reads a value that no node, graph input, initializer or enclosing scope defines. */
  | 'dangling-input'
  /** Nodes that depend on each other in a loop. */
  | 'cycle'
  /** A value defined twice: two nodes, or a node and a graph input or initializer. */
  | 'duplicate-output'
  /** Two nodes of one graph share a name (legal for onnxruntime, confusing in reports). */
  | 'duplicate-node-name'
  /** An initializer whose type or dims contradict the graph input or value_info of its name. */
  | 'initializer-type-mismatch'
  /** A graph output that nothing defines. */
  | 'missing-output'
  /** A node reads a value that a later node computes (valid once sorted). */
  | 'unsorted'
  /** A node of a domain that the model's opset_import does not list. */
  | 'missing-opset'
  /** A subgraph output that is an enclosing graph's value: onnxruntime rejects it without an Identity. */
  | 'outer-scope-output';

export interface GraphIssue {
  severity: 'error' | 'warning';
  code: GraphIssueCode;
  /** One line naming the graph, node and value involved. */
  message: string;
  /** The node's label (its name, or op type and first output). */
  node?: string;
  value?: string;
  /** The graph's name; subgraphs read `main/If_0.then_branch`. */
  graph: string;
}

/** Every structural problem in a model or graph and its subgraphs; empty when all is well. */
export function validateGraph(target: Model | Graph): GraphIssue[] {
  const graph = target instanceof Model ? target.graph : target;
  const issues: GraphIssue[] = [];
  // Values of enclosing graphs are visible inside subgraphs; a graph checked on its own still
  // sees its real parents.
  const outer = new Set<string>();
  for (let g = graph.parent; g !== undefined; g = g.parent) for (const name of definedNames(g)) outer.add(name);
  checkGraph(graph, graph.name === '' ? 'graph' : graph.name, outer, issues);
  if (target instanceof Model) checkOpsets(target, issues);
  return issues;
}

/** Throws one error listing every error-severity issue (warnings are ignored). */
export function assertValidGraph(target: Model | Graph, where = 'model'): void {
  const errors = validateGraph(target).filter((i) => i.severity === 'error');
  if (errors.length === 0) return;
  throw new Error(`${where} is not a valid graph:\n${errors.map((e) => `  ${e.message}`).join('\n')}`);
}

function checkGraph(graph: Graph, path: string, outer: ReadonlySet<string>, issues: GraphIssue[]): void {
  const report = (severity: GraphIssue['severity'], code: GraphIssueCode, message: string, node?: Node, value?: string) => {
    const issue: GraphIssue = { severity, code, message: `graph '${path}': ${message}`, graph: path };
    if (node !== undefined) issue.node = node.label;
    if (value !== undefined) issue.value = value;
    issues.push(issue);
  };

  const local = checkDefinitions(graph, report);
  const visible = (name: string) => local.has(name) || outer.has(name);

  const names = new Set<string>();
  for (const node of graph.nodes) {
    if (node.name !== '') {
      if (names.has(node.name)) report('warning', 'duplicate-node-name', `two nodes are named '${node.name}'`, node);
      names.add(node.name);
    }
    for (const input of node.inputs) {
      if (input !== '' && !visible(input)) {
        report('error', 'dangling-input', `node '${node.label}' reads '${input}', which nothing defines`, node, input);
      }
    }
  }
  for (const output of graph.outputs) {
    if (!visible(output.name)) report('error', 'missing-output', `output '${output.name}' is not computed by any node`, undefined, output.name);
    else if (!local.has(output.name)) {
      const message = `output '${output.name}' is a value of an enclosing graph; onnxruntime needs an Identity node in between`;
      report('error', 'outer-scope-output', message, undefined, output.name);
    }
  }
  for (const tensor of graph.initializers) checkInitializerType(graph, tensor, report);
  checkOrder(graph, report);

  const inner = new Set([...outer, ...local]);
  for (const node of graph.nodes) {
    for (const attribute of node.attributes) {
      const subs = attribute.kind === 'graph' ? [attribute.value] : attribute.kind === 'graphs' ? attribute.value : [];
      subs.forEach((sub, i) => {
        const suffix = attribute.kind === 'graphs' ? `[${i}]` : '';
        checkGraph(sub, `${path}/${node.label}.${attribute.name}${suffix}`, inner, issues);
      });
    }
  }
}

type Report = (severity: GraphIssue['severity'], code: GraphIssueCode, message: string, node?: Node, value?: string) => void;

/** Names this graph defines; reports each value defined more than once. */
function checkDefinitions(graph: Graph, report: Report): Set<string> {
  const defined = new Map<string, string>();
  const define = (name: string, what: string, node?: Node) => {
    const before = defined.get(name);
    if (before !== undefined) report('error', 'duplicate-output', `'${name}' is defined twice: ${before} and ${what}`, node, name);
    else defined.set(name, what);
  };
  const inputs = new Set<string>();
  for (const input of graph.inputs) {
    define(input.name, 'a graph input');
    inputs.add(input.name);
  }
  // An initializer with the name of a graph input is that input's default value, not a redefinition.
  const initializers = new Set<string>();
  for (const tensor of graph.initializers) {
    if (initializers.has(tensor.name)) define(tensor.name, 'an initializer');
    else if (!inputs.has(tensor.name)) define(tensor.name, 'an initializer');
    initializers.add(tensor.name);
  }
  for (const node of graph.nodes) {
    for (const output of node.outputs) if (output !== '') define(output, `node '${node.label}'`, node);
  }
  return new Set(defined.keys());
}

function definedNames(graph: Graph): string[] {
  return [...graph.inputs.map((v) => v.name), ...graph.initializers.map((t) => t.name), ...graph.nodes.flatMap((n) => n.outputs)].filter(
    (n) => n !== '',
  );
}

function checkInitializerType(graph: Graph, tensor: Tensor, report: Report): void {
  const declared = [...graph.inputs, ...graph.valueInfo].filter((v) => v.name === tensor.name);
  for (const info of declared) {
    const type = tensorTypeOf(info);
    if (type === undefined) continue;
    const kind = graph.inputs.includes(info) ? 'graph input' : 'value_info';
    const problem = typeProblem(tensor, type, kind);
    if (problem !== undefined) report('error', 'initializer-type-mismatch', `initializer '${tensor.name}' ${problem}`, undefined, tensor.name);
  }
}

function typeProblem(tensor: Tensor, type: TensorType, kind: string): string | undefined {
  if (type.elemType !== 0 && type.elemType !== tensor.dataType) {
    return `is ${dataTypeName(tensor.dataType)} but its ${kind} declares ${dataTypeName(type.elemType)}`;
  }
  if (type.shape === undefined) return undefined;
  const rankDiffers = type.shape.length !== tensor.dims.length;
  const dimDiffers = type.shape.some((d, i) => typeof d === 'number' && d !== tensor.dims[i]);
  if (rankDiffers || dimDiffers) {
    const declared = type.shape.map((d) => (d === null ? '?' : String(d))).join(',');
    return `has dims [${tensor.dims.join(',')}] but its ${kind} declares [${declared}]`;
  }
  return undefined;
}

/** Reports a cycle (error) or, failing that, the first node that reads a later node's output. */
function checkOrder(graph: Graph, report: Report): void {
  const { cycle } = nodeOrder(graph);
  if (cycle.length > 0) {
    report('error', 'cycle', describeCycle(cycle), cycle[0]);
    return;
  }
  const position = new Map<string, number>();
  graph.nodes.forEach((node, i) => {
    for (const out of node.outputs) if (out !== '' && !position.has(out)) position.set(out, i);
  });
  for (let i = 0; i < graph.nodes.length; i++) {
    const node = graph.nodes[i];
    for (const name of nodeReads(node)) {
      const at = position.get(name);
      if (at !== undefined && at > i) {
        const producer = graph.nodes[at];
        report('warning', 'unsorted', `node '${node.label}' reads '${name}' before node '${producer.label}' computes it (sort the graph)`, node, name);
        return;
      }
    }
  }
}

function checkOpsets(model: Model, issues: GraphIssue[]): void {
  const imported = new Set(model.opsetImports.map((o) => (o.domain === 'ai.onnx' ? '' : o.domain)));
  const reported = new Set<string>();
  for (const { node, graph } of model.graph.allNodes()) {
    const domain = node.domain === 'ai.onnx' ? '' : node.domain;
    if (imported.has(domain) || reported.has(domain)) continue;
    reported.add(domain);
    issues.push({
      severity: 'error',
      code: 'missing-opset',
      message: `graph '${graph.name}': node '${node.label}' uses domain '${domain}', which the model's opset_import does not list`,
      node: node.label,
      graph: graph.name,
    });
  }
}
