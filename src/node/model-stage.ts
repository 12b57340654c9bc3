// Staging for onnxruntime-node: writes a model held in memory as a file that onnxruntime loads by
// path, with its weights in files beside it. That is how models over 2 GiB, and models whose
// weights sit in external data files, reach onnxruntime without being copied into one buffer.
//
// Weights already on disk are not copied: the staging folder gets hard links to their files
// (onnxruntime refuses external data outside the model's folder, symbolic links included). Where
// a hard link is impossible (another file system), the model file is staged beside those weights
// instead, under a hidden temporary name. Weights only in memory go to a staged data file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allConstants } from '../ir/constants.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { writeModelChunks } from '../onnx/model-io.js';
import type { StagedModel } from '../runtime/ort-types.js';
import { removeStaleTemps, removeTemp, tempPathFor, trackTemp } from './temp-files.js';

/** Where the staged model's files go and how it names the weights already on disk. */
interface Layout {
  folder: string;
  modelFile: string;
  dataFile: string;
  /** Existing weight file -> its name relative to `folder`; files not in the map are copied. */
  names: Map<string, string>;
  /** What to remove on release. */
  created: string[];
}

/** `link` is fs.linkSync; tests pass one that fails, as across file systems. */
export async function stageModel(model: Model, link: (from: string, to: string) => void = fs.linkSync): Promise<StagedModel> {
  const files = externalFiles(model);
  const layout = linkedLayout(files, link) ?? besideLayout(files);
  try {
    writeStaged(model, layout);
  } catch (error) {
    for (const file of layout.created) removeTemp(file);
    throw error;
  }
  return {
    path: layout.modelFile,
    release: () => {
      for (const file of layout.created) removeTemp(file);
    },
  };
}

/** The files holding the model's external weights (absolute paths). */
function externalFiles(model: Model): string[] {
  const files = new Set<string>();
  for (const { tensor } of allConstants(model.graph)) {
    const file = tensor.externalFile;
    if (file !== undefined) files.add(file);
  }
  return [...files];
}

let tmpSwept = false;

/** A fresh folder under the system's temporary folder, with hard links to the weight files. */
function linkedLayout(files: readonly string[], link: (from: string, to: string) => void): Layout | undefined {
  if (!tmpSwept) {
    tmpSwept = true;
    removeStaleTemps(os.tmpdir());
  }
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), `.shrink-session-${process.pid}-`));
  trackTemp(folder);
  const names = new Map<string, string>();
  try {
    for (const [i, file] of files.entries()) {
      const name = `w${i}-${path.basename(file)}`;
      link(file, path.join(folder, name));
      names.set(file, name);
    }
  } catch {
    removeTemp(folder);
    return undefined;
  }
  return { folder, modelFile: path.join(folder, 'model.onnx'), dataFile: path.join(folder, 'model.onnx.data'), names, created: [folder] };
}

/**
 * The model file beside the first weight file, hidden; weights in that folder (or below it) are
 * referenced where they are, others are copied into the staged data file.
 */
function besideLayout(files: readonly string[]): Layout {
  const folder = path.dirname(files[0]);
  const names = new Map<string, string>();
  for (const file of files) {
    const relative = path.relative(folder, file);
    if (!relative.startsWith('..') && !path.isAbsolute(relative)) names.set(file, relative.split(path.sep).join('/'));
  }
  const modelFile = tempPathFor(path.join(folder, 'staged.onnx'));
  const dataFile = tempPathFor(path.join(folder, 'staged.onnx.data'));
  trackTemp(modelFile);
  trackTemp(dataFile);
  return { folder, modelFile, dataFile, names, created: [modelFile, dataFile] };
}

function writeStaged(model: Model, layout: Layout): void {
  const dataName = path.basename(layout.dataFile);
  let dataFd = -1;
  let dataSize = 0;
  const reference = (tensor: Tensor) => {
    const file = tensor.externalFile;
    const name = file === undefined ? undefined : layout.names.get(file);
    if (name === undefined || tensor.external === undefined) return undefined;
    return { location: name, offset: tensor.external.offset };
  };
  const modelFd = fs.openSync(layout.modelFile, 'w');
  try {
    const chunks = writeModelChunks(model, {
      externalData: {
        defaultLocation: dataName,
        reference,
        sink: {
          size: (location) => (location === dataName ? dataSize : 0),
          append: (location, bytes) => {
            if (location !== dataName) throw new Error(`staging: unexpected external data location '${location}'`);
            if (dataFd < 0) dataFd = fs.openSync(layout.dataFile, 'w');
            const offset = dataSize;
            writeAll(dataFd, bytes);
            dataSize += bytes.byteLength;
            return offset;
          },
        },
      },
    });
    for (const chunk of chunks) writeAll(modelFd, chunk);
  } finally {
    fs.closeSync(modelFd);
    if (dataFd >= 0) fs.closeSync(dataFd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
}
