// Node adapter for model files: reads models (and their external data) from disk and writes them
// atomically: everything goes to temporary names first and is renamed into place only when the
// whole model was written, so a failure never leaves a partial or mixed model behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExternalDataSource } from '../onnx/external-data.js';
import { type ExternalDataOptions, initializerBytes, readModel, writeModelChunks } from '../onnx/model-io.js';
import { removeStaleTemps, removeTemp, tempPathFor, trackTemp, untrackTemp } from './temp-files.js';
import type { Model } from '../ir/model.js';
import { PROTOBUF_LIMIT } from '../onnx/codec.js';
import { allConstants } from '../ir/constants.js';

/**
 * Reads external data files relative to `folder`. Each read opens and closes its file: a model
 * loaded lazily may live long and have one file per tensor, and held descriptors would pile up.
 */
export function folderExternalData(folder: string): ExternalDataSource {
  return {
    path: (location) => path.resolve(folder, location),
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
   * Store large initializers outside the protobuf. `true` uses the defaults. When omitted, a
   * model that was loaded with external data keeps using it, and a model whose weights would not
   * fit in one protobuf (2 GiB) gets it.
   */
  externalData?: boolean | ExternalDataOptions;
  /**
   * Runs on the complete temporary model (its data files already beside it under their final
   * names) before it replaces anything; a throw leaves every existing file as it was.
   */
  verify?: (temporaryModelFile: string, bytes: number) => Promise<void>;
}

/** What was written: the model file and the external data files it refers to. */
export interface SavedModel {
  file: string;
  dataFiles: string[];
  /** Bytes of all of them. */
  bytes: number;
}

/** Weights of at least this many bytes in one protobuf make a save go external on its own. */
const AUTO_EXTERNAL_BYTES = PROTOBUF_LIMIT - 64 * 2 ** 20;

/**
 * Writes `model` to `file` (and its external data beside it) so that no reader and no crash ever
 * sees a partial or mismatched model: data files are written under names no existing file has,
 * the model goes to a temporary name, `verify` (if given) checks it there, and only then is it
 * renamed over `file`; data files the old model used are removed last.
 */
export async function saveModelVerified(model: Model, file: string, options: SaveOptions = {}): Promise<SavedModel> {
  const pending = writePending(model, file, options);
  try {
    pending.placeData();
    if (options.verify !== undefined) await options.verify(pending.modelTemp, pending.bytes);
    return pending.commit();
  } catch (error) {
    pending.abort();
    throw error;
  }
}

/** saveModelVerified without a check, for callers that cannot wait (checkpoints, tests). */
export function saveModel(model: Model, file: string, options: Omit<SaveOptions, 'verify'> = {}): SavedModel {
  const pending = writePending(model, file, options);
  try {
    pending.placeData();
    return pending.commit();
  } catch (error) {
    pending.abort();
    throw error;
  }
}

interface Pending {
  modelTemp: string;
  /** Bytes of the model file and its data files. */
  bytes: number;
  /** Renames the data files to their final (fresh) names; nothing refers to them yet. */
  placeData(): void;
  /** Renames the model into place and removes the data files the replaced model used. */
  commit(): SavedModel;
  /** Removes everything written. */
  abort(): void;
}

function writePending(model: Model, file: string, options: Omit<SaveOptions, 'verify'>): Pending {
  const folder = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const target = path.join(folder, base);
  removeStaleTemps(folder);
  const useExternal = options.externalData ?? (hasExternalTensors(model) || initializerBytes(model) > AUTO_EXTERNAL_BYTES ? true : undefined);
  const replacedData = ownDataFiles(target, base);
  const data = new Map<string, { temp: string; fd: number; size: number }>();
  const modelTemp = tempPathFor(target);
  let modelFd = -1;
  /** A failed write: nothing was renamed yet, so the temporary files are all there is. */
  const removeAll = () => {
    for (const entry of data.values()) {
      if (entry.fd >= 0) fs.closeSync(entry.fd);
      removeTemp(entry.temp);
    }
    if (modelFd >= 0) fs.closeSync(modelFd);
    removeTemp(modelTemp);
  };
  let placed = false;
  try {
    // Chunks, written one after another: the weights of an inline model are never assembled.
    let chunks: Uint8Array[];
    if (useExternal === undefined || useExternal === false) {
      chunks = writeModelChunks(model);
    } else {
      const settings = useExternal === true ? {} : useExternal;
      const exists = (location: string) => fs.existsSync(path.join(folder, location));
      chunks = writeModelChunks(model, {
        externalData: {
          ...settings,
          location: settings.location === undefined ? undefined : freshName(settings.location, exists),
          defaultLocation: freshName(`${base}.data`, exists),
          sink: {
            taken: exists,
            size: (location) => data.get(location)?.size ?? 0,
            append: (location, chunk) => {
              let entry = data.get(location);
              if (entry === undefined) {
                const temp = tempPathFor(path.join(folder, location));
                trackTemp(temp);
                entry = { temp, fd: fs.openSync(temp, 'w'), size: 0 };
                data.set(location, entry);
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
    trackTemp(modelTemp);
    modelFd = fs.openSync(modelTemp, 'w');
    let modelBytes = 0;
    for (const chunk of chunks) {
      writeAll(modelFd, chunk);
      modelBytes += chunk.byteLength;
    }
    fs.fsyncSync(modelFd);
    fs.closeSync(modelFd);
    modelFd = -1;
    for (const entry of data.values()) {
      fs.fsyncSync(entry.fd);
      fs.closeSync(entry.fd);
      entry.fd = -1;
    }
    const bytes = modelBytes + [...data.values()].reduce((n, e) => n + e.size, 0);
    return {
      modelTemp,
      bytes,
      placeData() {
        // Fresh names: no existing model refers to them, so placing them early breaks nothing.
        for (const [location, entry] of data) {
          const final = path.join(folder, location);
          trackTemp(final);
          fs.renameSync(entry.temp, final);
          untrackTemp(entry.temp);
        }
        placed = true;
      },
      commit() {
        fs.renameSync(modelTemp, target);
        untrackTemp(modelTemp);
        const dataFiles = [...data.keys()].map((location) => path.join(folder, location));
        for (const final of dataFiles) untrackTemp(final);
        const kept = new Set(dataFiles);
        for (const old of replacedData) if (!kept.has(old)) fs.rmSync(old, { force: true });
        return { file: target, dataFiles, bytes };
      },
      abort() {
        for (const entry of data.values()) removeTemp(entry.temp);
        if (placed) for (const location of data.keys()) removeTemp(path.join(folder, location));
        removeTemp(modelTemp);
      },
    };
  } catch (error) {
    removeAll();
    throw error;
  }
}

/**
 * `name` when no file has it, else `stem.1.ext`, `stem.2.ext`, ...: a replaced model's data file
 * stays intact until the new model is in place.
 */
function freshName(name: string, exists: (location: string) => boolean): string {
  if (!exists(name)) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let i = 1; ; i++) {
    const candidate = `${stem}.${i}${ext}`;
    if (!exists(candidate)) return candidate;
  }
}

/**
 * Data files of the model now at `target` that shrink named after it (`<base>.data`,
 * `<base>.<n>.data`): removed once a new model replaces it. Files of other names may belong to
 * other models and are left alone.
 */
function ownDataFiles(target: string, base: string): string[] {
  if (!fs.existsSync(target)) return [];
  const own = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.\\d+)?\\.data$`);
  return externalDataFiles(target).filter((file) => own.test(path.basename(file)) && path.dirname(file) === path.dirname(target));
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
