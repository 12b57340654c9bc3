// Weights averaged over the ends of a run's last epochs (stochastic weight averaging, Izmailov et
// al. 2018), fed by Trainer.fit's afterEpoch: each epoch from `from` (0-based) on adds the current
// float weights to a float64 sum; or over whole runs from one start (a model soup, Wortsman et al.
// 2022), fed by `add`. Non-float tensors (counters) keep their last value.
import { DataType } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import type { Trainer } from './trainer.js';

export class WeightAverage {
  private sums = new Map<string, { sum: Float64Array; dims: readonly number[] }>();
  private count = 0;
  private last: Map<string, Tensor> | undefined;

  /** Averages the epochs from `from` on (0-based); from <= epochs - 1. */
  constructor(private readonly from = 0) {}

  readonly afterEpoch = (epoch: number, trainer: Trainer): Record<string, number> => {
    if (epoch < this.from) return {};
    this.add(trainer.currentWeights());
    return this.count > 1 ? { averaged_epochs: this.count } : {};
  };

  /** Adds one set of weights (every set must have the same names and sizes). */
  add(weights: Map<string, Tensor>): void {
    this.last = weights;
    this.count += 1;
    for (const [name, tensor] of weights) {
      if (tensor.dataType !== DataType.FLOAT) continue;
      const values = tensor.data() as Float32Array;
      let entry = this.sums.get(name);
      if (entry === undefined) this.sums.set(name, (entry = { sum: new Float64Array(values.length), dims: tensor.dims }));
      if (values.length !== entry.sum.length) throw new Error(`weight average: '${name}' has ${values.length} values, earlier ${entry.sum.length}`);
      for (let i = 0; i < values.length; i++) entry.sum[i] += values[i];
    }
  }

  /** The averaged weights, or undefined when at most one epoch was seen (the trainer's own are the answer). */
  weights(): Map<string, Tensor> | undefined {
    if (this.count <= 1 || this.last === undefined) return undefined;
    const out = new Map(this.last);
    for (const [name, { sum, dims }] of this.sums) out.set(name, Tensor.fromArray(name, DataType.FLOAT, [...dims], Float32Array.from(sum, (v) => v / this.count)));
    return out;
  }
}
