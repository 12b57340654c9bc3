// Gradients for first-order Taylor importance (Molchanov et al. 2019): ∂L/∂w of every main-graph
// weight, summed over a few labelled batches. The training graph (src/train/) computes them; a
// plain SGD step with a large power-of-two rate exposes them exactly enough as
// (w - w') / rate, and the trainer is reset to the original weights after every batch.
import type { Model } from '../../ir/model.js';
import type { OrtModule } from '../../runtime/ort-types.js';
import { Trainer, type TrainingData } from '../../train/trainer.js';

/** 2^20: w' = w - rate·g is dominated by rate·g, so (w - w') / rate keeps g to float32 precision. */
const RATE = 2 ** 20;

export interface TaylorOptions {
  /** Batches summed (default 8) of `batchSize` samples (default 64), the first ones of the data. */
  batches?: number;
  batchSize?: number;
  /** The logits output trained with cross-entropy (default the first output). */
  logits?: string;
  threads?: number;
}

/** Summed gradients by weight name (float32 weights of the main graph that reach the loss). */
export async function taylorGradients(ort: OrtModule, model: Model, data: TrainingData, options: TaylorOptions = {}): Promise<Map<string, Float32Array>> {
  const batchSize = Math.min(options.batchSize ?? 64, data.size);
  const batches = Math.max(1, Math.min(options.batches ?? 8, Math.floor(data.size / batchSize)));
  const output = options.logits ?? model.graph.outputs[0]?.name;
  const trainer = await Trainer.create(ort, model, { loss: { kind: 'cross-entropy', output }, optimizer: { kind: 'sgd' } }, { threads: options.threads });
  const sums = new Map<string, Float32Array>();
  try {
    const start = trainer.state();
    const weights = new Set(trainer.training.weights.map((w) => w.name));
    const before = trainer.currentWeights();
    for (let b = 0; b < batches; b++) {
      const indices = Uint32Array.from({ length: batchSize }, (_, i) => b * batchSize + i);
      await trainer.step(data.batch(indices), RATE);
      for (const [name, updated] of trainer.currentWeights()) {
        const w = weights.has(name) ? before.get(name)?.data() : undefined;
        if (!(w instanceof Float32Array)) continue;
        const w2 = updated.data() as Float32Array;
        const sum = sums.get(name) ?? new Float32Array(w.length);
        for (let i = 0; i < w.length; i++) sum[i] += (w[i] - w2[i]) / RATE;
        sums.set(name, sum);
      }
      trainer.restore(start);
    }
  } finally {
    await trainer.release();
  }
  return sums;
}
