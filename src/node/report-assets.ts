// The Node side of the HTML report: reads the browser builds of Observable Plot and d3 from
// node_modules (the renderer inlines them, so the page needs no network) and writes the page
// atomically, so a reader never sees half a report.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { nodeEnvironment } from './environment.js';
import type { EvalReport } from '../eval/eval-report.js';
import { inspectModel, isParameterType } from '../inspect/inspect.js';
import { constantValue, isStandardDomain } from '../ir/constants.js';
import { DataType, dataTypeName } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { type ReportAssets, renderReportHtml } from '../report/html.js';
import type { ReportInput, ReportLayer, ReportModel } from '../report/report-input.js';
import { loadModel } from './model-files.js';

const require = createRequire(import.meta.url);

/**
 * The two standalone browser bundles: @observablehq/plot's dist/plot.umd.min.js (it expects a
 * global `d3`) and d3's dist/d3.min.js (defines it). Resolved through package.json files, so the
 * versions are whatever npm installed.
 */
export function readReportAssets(): ReportAssets {
  return {
    d3: readBundle('d3', 'dist/d3.min.js'),
    plot: readBundle('@observablehq/plot', 'dist/plot.umd.min.js'),
  };
}

function readBundle(pkg: string, file: string): string {
  return fs.readFileSync(path.join(packageFolder(pkg), file), 'utf8');
}

/**
 * The folder npm installed `pkg` in. Neither package exports its package.json, so this resolves
 * the main entry and walks up to the package.json that names the package.
 */
function packageFolder(pkg: string): string {
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(`cannot write the HTML report: package ${pkg} is not installed (npm install)`);
  }
  for (let folder = path.dirname(entry); folder !== path.dirname(folder); folder = path.dirname(folder)) {
    const manifest = path.join(folder, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === pkg) return folder;
  }
  throw new Error(`cannot write the HTML report: no package.json for ${pkg} above ${entry}`);
}

/**
 * Renders the report and writes it to `file` through a temporary file and a rename. The page names
 * this machine (versions, CPU) unless `input` names another.
 */
export function writeReportFile(file: string, input: ReportInput, assets: ReportAssets = readReportAssets()): void {
  writeFileAtomic(file, renderReportHtml({ environment: nodeEnvironment(), ...input }, assets));
}

/** A model file as the report shows it: name, size on disk (external data included), weight bytes per layer. */
export function reportModelFromFile(file: string, name = path.basename(file)): ReportModel {
  const model = loadModel(file);
  return reportModelOf(model, name, fs.statSync(file).size + inspectModel(model).storage.external.bytes);
}

/** A loaded model as the report shows it, `bytes` being its size on disk. */
export function reportModelOf(model: Model, name: string, bytes: number): ReportModel {
  const inspected = inspectModel(model);
  const main = new Set(model.graph.nodes.map((n) => n.label));
  return {
    name,
    bytes,
    parameters: inspected.parameters.elements,
    layers: [
      ...mainGraphLayers(model.graph),
      // Layers inside If/Loop/Scan bodies, as inspect names them (If_0/then_branch/Conv_3).
      ...inspected.layers.filter((l) => !main.has(l.node)).map((l) => ({ name: l.node, opType: l.op_type, bytes: l.bytes })),
    ],
  };
}

/** Ops that read int32 biases (static int8's Q/DQ and QOperator forms): those count as weights. */
const INT32_BIAS_READERS = new Set(['DequantizeLinear', 'QLinearConv', 'QGemm']);

/** Ops that hand a weight on unchanged in meaning: its bytes belong to the node that reads their output. */
const WEIGHT_CARRIERS = new Set(['QuantizeLinear', 'DequantizeLinear', 'Cast', 'Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Identity']);

/**
 * One row per main-graph node reading constants: parameter-type tensors, and the int32 biases of
 * static int8 models (read by DequantizeLinear, QLinearConv or QGemm). Weights behind DequantizeLinear, Cast and layout ops
 * count at the one node reading them (a QDQ Conv's int8 weight under the Conv), so a quantized layer
 * keeps its node's name.
 */
function mainGraphLayers(graph: Graph): ReportLayer[] {
  const rows: ReportLayer[] = [];
  for (const node of graph.nodes) {
    if (node.opType === 'Constant' && isStandardDomain(node.domain)) continue;
    const weights: { name: string; dtype: string; bytes: number }[] = [];
    for (const input of node.inputs) {
      if (input === '') continue;
      const tensor = constantValue(graph, input);
      if (tensor === undefined) continue;
      const bias = tensor.dataType === DataType.INT32 && INT32_BIAS_READERS.has(node.opType);
      if (isParameterType(tensor.dataType) || bias) weights.push({ name: input, dtype: dataTypeName(tensor.dataType), bytes: tensor.byteLength });
    }
    if (weights.length === 0) continue;
    const reader = weightReader(graph, node);
    rows.push({ name: reader.label, opType: isStandardDomain(reader.domain) ? reader.opType : `${reader.domain}.${reader.opType}`, bytes: weights.reduce((n, w) => n + w.bytes, 0), weights });
  }
  return rows;
}

/** The node a weight-carrying chain (DequantizeLinear -> Transpose -> ...) leads to, when it leads to one. */
function weightReader(graph: Graph, node: Node): Node {
  let at = node;
  for (let hops = 0; hops < 8 && WEIGHT_CARRIERS.has(at.opType) && isStandardDomain(at.domain); hops++) {
    const readers = graph.consumers(at.outputs[0] ?? '');
    if (readers.length !== 1 || graph.outputs.some((o) => o.name === at.outputs[0])) break;
    at = readers[0]!;
  }
  return at;
}

/** The report for `shrink eval --report`: both models' sizes and layers, and the eval result. */
export function writeEvalReportFile(file: string, originalFile: string, candidateFile: string, report: EvalReport): void {
  const original = reportModelFromFile(originalFile);
  const candidate = reportModelFromFile(candidateFile);
  // Two files of the same name (model.onnx in two folders) need their paths to tell them apart.
  if (original.name === candidate.name) {
    original.name = originalFile;
    candidate.name = candidateFile;
  }
  writeReportFile(file, { title: `shrink eval: ${candidate.name} against ${original.name}`, models: [original, candidate], eval: report });
}
