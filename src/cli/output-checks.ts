// Checks on where a command will write, made before any work: the folder exists and is a folder,
// the target is not a folder, and the output is none of the command's inputs (a model, one of its
// external data files, a sample file). Writing over an input would destroy it, and a missing
// folder found only after an hour of quantization wastes the hour.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { externalDataFiles } from '../node/model-files.js';
import { UsageError } from './errors.js';

export interface OutputCheck {
  /** The path as the user gave it. */
  output: string;
  /** The option that named it, for messages: '-o', '--report', ... */
  flag: string;
  /** Files the command reads. Model files bring their external data files along. */
  inputs: readonly (string | undefined)[];
  /** Model files among `inputs` (or not) whose external data files count as inputs too. */
  models?: readonly (string | undefined)[];
  /** The output may be a folder (the command picks a file name inside it). */
  folderAllowed?: boolean;
}

/**
 * Throws a UsageError (exit 2) when the output would overwrite an input, and an Error (exit 1)
 * when its folder is missing. Call before reading data or doing any work.
 */
export function checkOutput(check: OutputCheck): void {
  const target = path.resolve(check.output);
  const isFolderTarget = check.output.endsWith('/') || check.output.endsWith(path.sep) || isFolder(target);
  if (isFolderTarget) {
    if (!check.folderAllowed) throw new Error(`${check.output}: is a folder; give a file name for ${check.flag}`);
    // A folder named with a trailing slash is created; its parent must exist.
    const parent = path.dirname(target);
    if (!isFolder(target) && !isFolder(parent)) throw new Error(`${check.output}: folder '${path.dirname(check.output.replace(/[/\\]+$/, ''))}' does not exist`);
    return;
  }
  const folder = path.dirname(target);
  if (!fs.existsSync(folder)) throw new Error(`${check.output}: folder '${path.dirname(check.output)}' does not exist`);
  if (!isFolder(folder)) throw new Error(`${check.output}: '${path.dirname(check.output)}' is not a folder`);
  refuseInputs(target, check);
}

/** Refuses an output file (resolved) that is one of the inputs or their data files. */
export function refuseInputs(target: string, check: Pick<OutputCheck, 'output' | 'flag' | 'inputs' | 'models'>): void {
  const real = realPath(target);
  for (const input of check.inputs) {
    if (input === undefined) continue;
    if (realPath(path.resolve(input)) === real) throw new UsageError(`${check.flag} ${check.output} is the input ${input}: writing it would destroy the input; choose another output`);
  }
  for (const model of check.models ?? check.inputs) {
    if (model === undefined || !model.endsWith('.onnx')) continue;
    for (const data of externalDataFiles(model)) {
      if (realPath(data) === real) throw new UsageError(`${check.flag} ${check.output} is the external data file of ${model}: writing it would destroy the input; choose another output`);
    }
  }
}

function isFolder(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** The path with links resolved when it exists (two names for one file are one file). */
function realPath(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(file)), path.basename(file));
    } catch {
      return file;
    }
  }
}
