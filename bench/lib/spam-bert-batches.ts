// spam-bert's held-out e-mails (bench/lib/held-out.ts) as padded batches: each batch is padded to
// its longest e-mail with token 0, attention_mask 0 and token type 0, the way a server batches
// requests. The model masks the padding, so each e-mail's logits do not depend on its batch.
import { DataType } from '../../src/ir/dtype.js';
import { Tensor } from '../../src/ir/tensor.js';

const INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'] as const;

/** `samples` (each [1, L] int64 per input) from `start`, `size` of them, padded to the longest. */
export function paddedBatch(samples: Record<string, Tensor>[], start: number, size: number): Record<string, Tensor> {
  const rows = samples.slice(start, start + size);
  const length = Math.max(...rows.map((r) => r.input_ids.dims[1]));
  const batch: Record<string, Tensor> = {};
  for (const name of INPUTS) {
    const data = new BigInt64Array(rows.length * length);
    for (const [i, row] of rows.entries()) data.set(row[name].data() as BigInt64Array, i * length);
    batch[name] = Tensor.fromArray(name, DataType.INT64, [rows.length, length], data);
  }
  return batch;
}

/** Every sample, in order, in padded batches of `size` (the last one shorter). */
export function paddedBatches(samples: Record<string, Tensor>[], size: number): Record<string, Tensor>[] {
  const batches: Record<string, Tensor>[] = [];
  for (let start = 0; start < samples.length; start += size) batches.push(paddedBatch(samples, start, size));
  return batches;
}
