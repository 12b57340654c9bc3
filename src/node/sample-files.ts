// Node adapter for sample data on disk: a FileTree over a folder (ONNX test-data layout), a
// ByteSource over a file (read in chunks, never whole), and one entry point that picks the
// source from what the path is: a folder, a .npy, an .npz or a .json file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ByteSource } from '../eval/byte-source.js';
import type { ModelSignature } from '../eval/match-inputs.js';
import { npySamples, npzSamples } from '../eval/sample-arrays.js';
import { type FileTree, jsonSamples, type SampleSource, testDataSamples } from '../eval/samples.js';

/** A FileTree rooted at `folder`. */
export function folderFileTree(folder: string): FileTree {
  return {
    root: folder,
    list: async (dir) => fs.promises.readdir(path.join(folder, dir)),
    read: async (file) => new Uint8Array(await fs.promises.readFile(path.join(folder, file))),
  };
}

/** A ByteSource over a file, kept open until `close()`. */
export function fileByteSource(file: string): ByteSource {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    throw new Error(`${file}: no such file`);
  }
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read: async (offset, length) => {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n === 0) throw new Error(`${file}: ended early (wanted ${length} bytes at ${offset})`);
        done += n;
      }
      return out;
    },
    close: async () => fs.closeSync(fd),
  };
}

export interface OpenSamplesOptions {
  /** For a .npy file: the input it feeds (default: the model's only input). */
  input?: string;
}

/**
 * Opens sample data for a model by path: a folder in the ONNX test-data layout, a .npy, an .npz
 * or a .json file. Call `close()` on the result when done.
 */
export async function openSampleFile(file: string, signature: ModelSignature, options: OpenSamplesOptions = {}): Promise<SampleSource> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new Error(`${file}: no such file or folder`);
  }
  if (stat.isDirectory()) return testDataSamples(folderFileTree(file), signature);
  const extension = path.extname(file).toLowerCase();
  if (extension === '.json') return jsonSamples(fs.readFileSync(file, 'utf8'), signature.inputs, file);
  if (extension !== '.npy' && extension !== '.npz') {
    throw new Error(`${file}: unknown sample format '${extension}' (use a test-data folder, .npy, .npz or .json)`);
  }
  const source = fileByteSource(file);
  try {
    return extension === '.npy' ? await npySamples(source, file, signature.inputs, options) : await npzSamples(source, file, signature.inputs);
  } catch (error) {
    await source.close?.();
    throw error;
  }
}
