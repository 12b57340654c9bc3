// What a model holds, as one plain JSON-serializable object: header (producer, IR version,
// opsets), interface (inputs/outputs with symbolic dims kept), op histogram over every subgraph,
// weights by dtype and by storage, the largest tensors, and a per-layer table. The CLI prints it
// as tables or as JSON (inside the common report envelope); the browser page renders the same
// object. Keys are snake_case like every other report's. Absent facts are null, never undefined,
// so the JSON always has the same keys.
import { allConstants, type ConstantSource, constantValue, isStandardDomain } from '../ir/constants.js';
import { DataType, dataTypeInfo, dataTypeName } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';
import { type Dim, formatType, tensorTypeOf } from '../ir/value-info.js';
import type { ValueInfoProto } from '../onnx/onnx_pb.js';

export interface InspectOptions {
  /** Size of the .onnx file itself, when the caller knows it. */
  fileBytes?: number;
  /** Where the model came from (a file name), echoed in the report. */
  source?: string;
}

export interface ValueReport {
  name: string;
  /** `float32[N,3,48,W]`, as formatType prints it. */
  type: string;
  /** Element type name, or null for non-tensor values. */
  dtype: string | null;
  /** Sizes, symbolic names (kept as strings) or null for unknown dims; null when the rank is unknown. */
  shape: Dim[] | null;
}

export interface OpCount {
  /** Op type, prefixed with its domain when not standard ONNX (`com.microsoft.MatMulNBits`). */
  op: string;
  count: number;
  /** How many of those sit inside If/Loop/Scan bodies. */
  in_subgraphs: number;
}

export interface Totals {
  tensors: number;
  elements: number;
  bytes: number;
}

export interface DtypeTotals extends Totals {
  dtype: string;
  /** Whether this dtype's elements count as parameters (see isParameterType). */
  parameter: boolean;
}

export interface TensorReport {
  name: string;
  dtype: string;
  shape: number[];
  elements: number;
  bytes: number;
  source: ConstantSource;
  /** Graph path: '' for the main graph, `If_0/then_branch` inside a subgraph. */
  graph: string;
}

export interface LayerReport {
  /** Node path: `Conv_3`, or `If_0/then_branch/Conv_3` inside a subgraph. */
  node: string;
  op_type: string;
  weights: { input: string; dtype: string; shape: number[] }[];
  parameters: number;
  bytes: number;
}

export interface InspectReport {
  source: string | null;
  /** Size of the .onnx file; external data files are counted under storage.external. */
  file_bytes: number | null;
  producer: { name: string; version: string };
  ir_version: number;
  opsets: { domain: string; version: number }[];
  model_version: number;
  domain: string;
  doc_string: string;
  metadata: { key: string; value: string }[];
  inputs: ValueReport[];
  outputs: ValueReport[];
  /** Graphs including the main one. */
  graphs: number;
  nodes: number;
  /** Model-local functions (their bodies are not inspected). */
  functions: number;
  ops: OpCount[];
  /** Elements and bytes of parameter-type constants (floats and narrow quantized integers). */
  parameters: Totals;
  /** The other constants: shapes, axes, indices, masks, strings. */
  constants: Totals;
  /** Every constant tensor, parameter or not. */
  total: Totals;
  by_dtype: DtypeTotals[];
  storage: {
    initializer: Totals;
    constant_node: Totals;
    external: Totals & { files: string[] };
  };
  largest: TensorReport[];
  layers: LayerReport[];
}

/** How many of the largest tensors the report lists. */
export const LARGEST_COUNT = 20;

/**
 * A constant counts as a parameter when its elements are learned values: floating-point types and
 * the narrow integer types quantized weights use (8/4/2-bit, 16-bit). int32/int64/uint32/uint64,
 * bool and string constants are shapes, axes, indices or masks, so they go under `constants`
 * (they are still listed in byDtype and storage). int32 biases of QLinearConv fall outside by
 * this rule; they are tiny next to the weights they accompany.
 */
export function isParameterType(dataType: number): boolean {
  if (dataTypeInfo(dataType).isFloat) return true;
  switch (dataType) {
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.INT16:
    case DataType.UINT16:
    case DataType.INT4:
    case DataType.UINT4:
    case DataType.INT2:
    case DataType.UINT2:
      return true;
    default:
      return false;
  }
}

export function inspectModel(model: Model, options: InspectOptions = {}): InspectReport {
  const paths = graphPaths(model.graph);
  const parameters = zero();
  const constants = zero();
  const total = zero();
  const byDtype = new Map<string, DtypeTotals>();
  const storage = { initializer: zero(), constant_node: zero(), external: { ...zero(), files: [] as string[] } };
  const tensors: TensorReport[] = [];
  for (const { tensor, source, graph } of allConstants(model.graph)) {
    const elements = tensor.elementCount;
    const bytes = tensor.byteLength;
    const isParameter = isParameterType(tensor.dataType);
    add(total, elements, bytes);
    add(isParameter ? parameters : constants, elements, bytes);
    const dtype = dataTypeName(tensor.dataType);
    let entry = byDtype.get(dtype);
    if (entry === undefined) {
      entry = { dtype, parameter: isParameter, ...zero() };
      byDtype.set(dtype, entry);
    }
    add(entry, elements, bytes);
    const where = source === 'initializer' ? storage.initializer : source === 'constant-node' ? storage.constant_node : storage.external;
    add(where, elements, bytes);
    const location = tensor.external?.location;
    if (source === 'external' && location !== undefined && !storage.external.files.includes(location)) storage.external.files.push(location);
    tensors.push({ name: tensor.name, dtype, shape: [...tensor.dims], elements, bytes, source, graph: paths.get(graph) ?? '' });
  }
  const { ops, nodes } = opHistogram(model.graph);
  return {
    source: options.source ?? null,
    file_bytes: options.fileBytes ?? null,
    producer: { name: model.producerName, version: model.producerVersion },
    ir_version: model.irVersion,
    opsets: model.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    model_version: Number(model.modelVersion),
    domain: model.domain,
    doc_string: model.docString,
    metadata: model.metadata.map(({ key, value }) => ({ key, value })),
    inputs: interfaceValues(model.graph.inputs, model.graph),
    outputs: model.graph.outputs.map(valueReport),
    graphs: paths.size,
    nodes,
    functions: model.functions.length,
    ops,
    parameters,
    constants,
    total,
    by_dtype: [...byDtype.values()].sort((a, b) => b.bytes - a.bytes),
    storage,
    // Stable sort: equal sizes keep model order, so the report is deterministic.
    largest: tensors.sort((a, b) => b.bytes - a.bytes).slice(0, LARGEST_COUNT),
    layers: layerTable(model.graph, paths),
  };
}

function zero(): Totals {
  return { tensors: 0, elements: 0, bytes: 0 };
}

function add(totals: Totals, elements: number, bytes: number): void {
  totals.tensors += 1;
  totals.elements += elements;
  totals.bytes += bytes;
}

/**
 * Inputs the caller must feed. Old exporters list every initializer as a graph input too (IR < 4);
 * those have defaults, so they are not part of the model's interface.
 */
function interfaceValues(inputs: ValueInfoProto[], graph: Graph): ValueReport[] {
  return inputs.filter((v) => graph.initializer(v.name) === undefined).map(valueReport);
}

function valueReport(info: ValueInfoProto): ValueReport {
  const tensor = tensorTypeOf(info);
  return {
    name: info.name,
    type: formatType(info),
    dtype: tensor === undefined ? null : dataTypeName(tensor.elemType),
    shape: tensor?.shape ?? null,
  };
}

/** Every graph's path: '' for the main graph, `<node>/<attribute>` below it. */
function graphPaths(root: Graph): Map<Graph, string> {
  const paths = new Map<Graph, string>([[root, '']]);
  const walk = (graph: Graph, prefix: string) => {
    for (const node of graph.nodes) {
      for (const a of node.attributes) {
        const subs = a.kind === 'graph' ? [a.value] : a.kind === 'graphs' ? a.value : [];
        subs.forEach((sub, i) => {
          const path = `${prefix}${node.label}/${a.name}${a.kind === 'graphs' ? `[${i}]` : ''}`;
          paths.set(sub, path);
          walk(sub, `${path}/`);
        });
      }
    }
  };
  walk(root, '');
  return paths;
}

function opName(node: Node): string {
  return isStandardDomain(node.domain) ? node.opType : `${node.domain}.${node.opType}`;
}

function opHistogram(root: Graph): { ops: OpCount[]; nodes: number } {
  const counts = new Map<string, OpCount>();
  let nodes = 0;
  for (const { node, graph } of root.allNodes()) {
    nodes += 1;
    const op = opName(node);
    let entry = counts.get(op);
    if (entry === undefined) {
      entry = { op, count: 0, in_subgraphs: 0 };
      counts.set(op, entry);
    }
    entry.count += 1;
    if (graph !== root) entry.in_subgraphs += 1;
  }
  const ops = [...counts.values()].sort((a, b) => b.count - a.count || a.op.localeCompare(b.op));
  return { ops, nodes };
}

/**
 * One row per node that reads parameter-type constants (initializers or Constant outputs, from its
 * own scope or an enclosing one). A weight shared by several nodes appears in each of their rows,
 * so the rows may add up to more than `parameters`.
 */
function layerTable(root: Graph, paths: Map<Graph, string>): LayerReport[] {
  const rows: LayerReport[] = [];
  for (const { node, graph } of root.allNodes()) {
    if (node.opType === 'Constant' && isStandardDomain(node.domain)) continue;
    const weights: { input: string; tensor: Tensor }[] = [];
    for (const input of node.inputs) {
      if (input === '') continue;
      const tensor = constantValue(graph, input);
      if (tensor !== undefined && isParameterType(tensor.dataType)) weights.push({ input, tensor });
    }
    if (weights.length === 0) continue;
    const prefix = paths.get(graph) ?? '';
    rows.push({
      node: prefix === '' ? node.label : `${prefix}/${node.label}`,
      op_type: opName(node),
      weights: weights.map(({ input, tensor }) => ({ input, dtype: dataTypeName(tensor.dataType), shape: [...tensor.dims] })),
      parameters: weights.reduce((n, w) => n + w.tensor.elementCount, 0),
      bytes: weights.reduce((n, w) => n + w.tensor.byteLength, 0),
    });
  }
  return rows;
}
