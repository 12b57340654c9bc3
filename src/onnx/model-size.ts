// The size of a model as a file would hold it: the protobuf plus every weight's bytes, wherever
// those bytes are now (inline, an external data file, memory). One definition, so that every
// report's "before -> after" compares the same thing, for a 5 MB model and a 20 GB one alike.
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { writeModelChunks } from './model-io.js';

/** Weights at least this large are counted, not encoded: no bytes are read or copied. */
const COUNTED = 1 << 16;

/**
 * Bytes of the model saved with its weights inline (the protobuf) or beside it (external data):
 * within a few dozen bytes per large weight either way. Reads no external data.
 */
export function modelBytes(model: Model): number {
  let counted = 0;
  const chunks = writeModelChunks(model, {
    externalData: {
      threshold: COUNTED,
      defaultLocation: 'size',
      reference: (tensor: Tensor) => {
        counted += tensor.byteLength;
        return { location: 'size', offset: 0 };
      },
      sink: { size: () => 0, append: () => 0 },
    },
  });
  return chunks.reduce((n, c) => n + c.byteLength, 0) + counted;
}
