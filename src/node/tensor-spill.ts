// A scratch file for the tensors a pass produces: each new large initializer is appended to it as
// soon as the pass adds it, and the graph keeps a tensor that reads it back on demand. A pass over
// a 20 GB model then holds one tensor at a time instead of its whole output until the save, which
// copies them from here to the output's data file. The file is hidden beside the output (same
// file system), removed when the run ends, and swept by a later run if the process died.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TensorSpill } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { folderExternalData } from './model-files.js';
import { removeTemp, tempPathFor, trackTemp } from './temp-files.js';

/** Tensors smaller than this stay in memory: spilling them saves nothing. */
const SPILL_FROM_BYTES = 1 << 20;
/** Offsets are page-aligned, so onnxruntime can map a staged copy of the file. */
const ALIGN = 4096;

export interface ScratchSpill extends TensorSpill {
  /** Bytes written to the scratch file so far. */
  readonly bytes: number;
  /** Removes the scratch file; tensors that read it must not be read afterwards. */
  dispose(): void;
}

/** A spill into a hidden scratch file beside `near` (the output's path). */
export function scratchSpill(near: string): ScratchSpill {
  const file = tempPathFor(`${path.resolve(near)}.scratch`);
  const folder = path.dirname(file);
  const location = path.basename(file);
  const source = folderExternalData(folder);
  let fd = -1;
  let size = 0;
  return {
    get bytes() {
      return size;
    },
    keep(tensor: Tensor): Tensor {
      if (tensor.byteLength < SPILL_FROM_BYTES || tensor.dataType === 8 /* STRING */) return tensor;
      if (fd < 0) {
        trackTemp(file);
        fd = fs.openSync(file, 'w+');
      }
      const padding = (ALIGN - (size % ALIGN)) % ALIGN;
      if (padding > 0) writeAll(fd, new Uint8Array(padding), size);
      size += padding;
      const offset = size;
      writeAll(fd, tensor.bytes(), offset);
      size += tensor.byteLength;
      return Tensor.external(tensor.name, tensor.dataType, tensor.dims, { location, offset }, source);
    },
    dispose() {
      if (fd >= 0) fs.closeSync(fd);
      fd = -1;
      removeTemp(file);
    },
  };
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}
