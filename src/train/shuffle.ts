// Seeded sample order for each epoch, so a run (and a resumed run) sees the same batches.
import { mulberry32 } from '../kernels/random.js';

/** A permutation of 0..count-1 for `epoch`, from `seed` (Fisher-Yates over mulberry32). */
export function epochOrder(count: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const next = mulberry32((seed * 1_000_003 + epoch) >>> 0);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
