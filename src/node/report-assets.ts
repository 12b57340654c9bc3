// The Node side of the HTML report: reads the browser builds of Observable Plot and d3 from
// node_modules (the renderer inlines them, so the page needs no network) and writes the page
// atomically, so a reader never sees half a report.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { nodeEnvironment } from './environment.js';
import type { EvalReport } from '../eval/eval-report.js';
import { inspectModel } from '../inspect/inspect.js';
import type { Model } from '../ir/model.js';
import { type ReportAssets, renderReportHtml } from '../report/html.js';
import type { ReportInput, ReportModel } from '../report/report-input.js';
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
  return {
    name,
    bytes,
    parameters: inspected.parameters.elements,
    layers: inspected.layers.map((l) => ({ name: l.node, opType: l.op_type, bytes: l.bytes })),
  };
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
