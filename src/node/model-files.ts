// Node adapter for model files: reads models (and their external data) from disk and writes them
// atomically: everything goes to temporary names first and is renamed into place only when the
// whole model was written, so a failure never leaves a partial or mixed model behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExternalDataSource } from '../onnx/external-data.js';
import { type ExternalDataOptions, readModel, writeModelChunks } from '../onnx/model-io.js';
import type { Model } from '../ir/model.js';
import { PROTOBUF_LIMIT } from '../onnx/codec.js';
import { allConstants } from '../ir/constants.js';

/**
 * Reads external data files relative to `folder`. Each read opens and closes its file: a model
 * loaded lazily may live long and have one file per tensor, and held descriptors would pile up.
 */
export function folderExternalData(folder: string): ExternalDataSource {
  return {
    size: (location) => fs.statSync(path.join(folder, location)).size,
    read: (location, offset, length) => {
      const fd = fs.openSync(path.join(folder, location), 'r');
      try {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const n = fs.readSync(fd, out, done, length - done, offset + done);
          if (n === 0) throw new Error(`external data file '${location}' ended early (wanted ${length} bytes at ${offset})`);
          done += n;
        }
        return out;
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}

/** Loads an ONNX file; external data is read lazily from the file's folder. */
export function loadModel(file: string): Model {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new Error(`${file}: no such file`);
  }
  if (stat.isDirectory()) throw new Error(`${file}: is a folder, not an ONNX file`);
  if (stat.size > PROTOBUF_LIMIT) {
    throw new Error(`${file}: ${(stat.size / 2 ** 30).toFixed(2)} GiB, over protobuf's 2 GiB limit, so not a valid ONNX file`);
  }
  const buffer = fs.readFileSync(file);
  // A plain Uint8Array view: Buffer's slice() shares memory where Uint8Array's copies, and code
  // below the Node adapter relies on the standard behaviour.
  const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return readModel(bytes, { source: file, externalData: folderExternalData(path.dirname(file)) });
}

/** Every external data location the model's tensors (in all scopes) read from. */
export function externalLocations(model: Model): string[] {
  const locations = new Set<string>();
  for (const { tensor } of allConstants(model.graph)) if (tensor.external !== undefined && tensor.isExternal) locations.add(tensor.external.location);
  return [...locations];
}

/**
 * The external data files of the model in `file`, as absolute paths ([] when it has none or
 * cannot be read: callers use this to protect inputs, and a file that cannot be read is no input).
 */
export function externalDataFiles(file: string): string[] {
  let model: Model;
  try {
    model = loadModel(file);
  } catch {
    return [];
  }
  const folder = path.dirname(path.resolve(file));
  return externalLocations(model).map((location) => path.join(folder, location));
}

/** Bytes on disk of a model file and every external data file it reads. */
export function modelFileBytes(file: string, model: Model = loadModel(file)): number {
  const folder = path.dirname(path.resolve(file));
  let bytes = fs.statSync(file).size;
  for (const location of externalLocations(model)) bytes += fs.statSync(path.join(folder, location)).size;
  return bytes;
}

export interface SaveOptions {
  /**
   * Store large initializers outside the protobuf. `true` uses the defaults; models over 2 GiB
   * need this. When omitted, a model that was loaded with external data keeps using it.
   */
  externalData?: boolean | ExternalDataOptions;
}

/** Writes `model` to `file` (and its external data beside it), atomically. */
export function saveModel(model: Model, file: string, options: SaveOptions = {}): void {
  const folder = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const useExternal = options.externalData ?? (hasExternalTensors(model) ? true : undefined);
  const pending = new Map<string, { temp: string; fd: number; size: number }>();
  // Beside its final place (so rename stays on one file system), hidden, unique to this process.
  const tempName = (name: string) =>
    path.join(folder, path.dirname(name), `.${path.basename(name)}.${process.pid}.${Date.now()}.tmp`);
  try {
    // Chunks, written one after another: the weights of an inline model are never assembled.
    let chunks: Uint8Array[];
    if (useExternal === undefined || useExternal === false) {
      chunks = writeModelChunks(model);
    } else {
      const settings = useExternal === true ? {} : useExternal;
      chunks = writeModelChunks(model, {
        externalData: {
          ...settings,
          defaultLocation: `${base}.data`,
          sink: {
            size: (location) => pending.get(location)?.size ?? 0,
            append: (location, chunk) => {
              let entry = pending.get(location);
              if (entry === undefined) {
                const temp = tempName(location);
                entry = { temp, fd: fs.openSync(temp, 'w'), size: 0 };
                pending.set(location, entry);
              }
              const offset = entry.size;
              writeAll(entry.fd, chunk);
              entry.size += chunk.byteLength;
              return offset;
            },
          },
        },
      });
    }
    const modelTemp = tempName(base);
    const fd = fs.openSync(modelTemp, 'w');
    pending.set('', { temp: modelTemp, fd, size: 0 });
    for (const chunk of chunks) writeAll(fd, chunk);
    for (const entry of pending.values()) {
      fs.fsyncSync(entry.fd);
      fs.closeSync(entry.fd);
      entry.fd = -1;
    }
    // Data files first, the model last: the model never points at data that is not in place.
    for (const [location, entry] of pending) if (location !== '') fs.renameSync(entry.temp, path.join(folder, location));
    fs.renameSync(modelTemp, path.join(folder, base));
  } catch (error) {
    for (const entry of pending.values()) {
      if (entry.fd >= 0) fs.closeSync(entry.fd);
      fs.rmSync(entry.temp, { force: true });
    }
    throw error;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
}

function hasExternalTensors(model: Model): boolean {
  let found = false;
  model.graph.visit((g) => {
    if (g.initializers.some((t) => t.isExternal)) found = true;
  });
  return found;
}
