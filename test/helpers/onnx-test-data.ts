// Finds ONNX backend-test cases on disk: `<suite>/<case>/model.onnx` with `test_data_set_N/`
// folders beside it, and reads a data set's files in index order. Decoding the files against the
// graph lives in src/eval/onnx-test-data.ts, which has no Node dependency.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestDataFiles } from '../../src/eval/onnx-test-data.js';

/** Where Debian's libonnx-testdata puts ONNX's backend tests. */
export const LIBONNX_TESTDATA = '/usr/share/libonnx-testdata/data';

export interface TestDataSetFolder {
  name: string;
  inputFiles: string[];
  outputFiles: string[];
}

export interface TestModelCase {
  /** `node/test_abs`: suite and case folder, for messages. */
  id: string;
  modelFile: string;
  dataSets: TestDataSetFolder[];
}

/** Every case with a model.onnx under `root/<suite>/`, sorted by id. Missing suites give none. */
export function listTestModels(root: string, suites: readonly string[]): TestModelCase[] {
  const cases: TestModelCase[] = [];
  for (const suite of suites) {
    const suiteDir = path.join(root, suite);
    if (!fs.existsSync(suiteDir)) continue;
    for (const name of fs.readdirSync(suiteDir).sort()) {
      const dir = path.join(suiteDir, name);
      const modelFile = path.join(dir, 'model.onnx');
      if (!fs.existsSync(modelFile)) continue;
      const dataSets = fs
        .readdirSync(dir)
        .filter((entry) => /^test_data_set_\d+$/.test(entry))
        .sort(byTrailingNumber)
        .map((entry) => readDataSetFolder(path.join(dir, entry)));
      cases.push({ id: `${suite}/${name}`, modelFile, dataSets });
    }
  }
  return cases;
}

function readDataSetFolder(dir: string): TestDataSetFolder {
  const entries = fs.readdirSync(dir);
  const numbered = (prefix: string) =>
    entries
      .filter((entry) => new RegExp(`^${prefix}_\\d+\\.pb$`).test(entry))
      .sort(byTrailingNumber)
      .map((entry) => path.join(dir, entry));
  const inputFiles = numbered('input');
  const outputFiles = numbered('output');
  // Files must be numbered 0..K-1 without gaps, or matching them to graph values by order is wrong.
  for (const [kind, files] of [['input', inputFiles], ['output', outputFiles]] as const) {
    files.forEach((file, k) => {
      if (path.basename(file) !== `${kind}_${k}.pb`) throw new Error(`${dir}: ${kind} files are not numbered 0..${files.length - 1}`);
    });
  }
  return { name: path.basename(dir), inputFiles, outputFiles };
}

/** Reads a data set's files, ready for `bindTestData`. */
export function readDataSet(folder: TestDataSetFolder): TestDataFiles {
  return {
    name: folder.name,
    inputs: folder.inputFiles.map(readBytes),
    outputs: folder.outputFiles.map(readBytes),
  };
}

/**
 * A file's bytes as a plain Uint8Array. Node's Buffer is not enough: small reads share a pooled
 * ArrayBuffer, and Buffer#slice returns a view instead of a copy, so code that copies with
 * `bytes.slice().buffer` would see the whole pool.
 */
export function readBytes(file: string): Uint8Array {
  const buffer = fs.readFileSync(file);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function byTrailingNumber(a: string, b: string): number {
  return Number(/(\d+)(\.pb)?$/.exec(a)?.[1]) - Number(/(\d+)(\.pb)?$/.exec(b)?.[1]);
}
