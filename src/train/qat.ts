// Quantization-aware training (QAT) for the weight-only methods int8-weight, int4 and int2:
// 1. insertFakeQuant: a copy of the inference model whose quantized weights W are read through
//    fake quantization, W -> DQ(Q(W, s(W))) (qat-fake-quant.ts), in exactly the form the PTQ
//    pass gives each of them (qat-plan.ts). W stays the float weight the trainer updates.
// 2. The Trainer trains that copy; the straight-through estimator lets the float weights move
//    towards values that survive rounding.
// 3. The trained weights go back into the original model (no fake-quant nodes), and the same PTQ
//    pass `shrink quantize` runs (the quantize registry) writes the real quantized format.
import { topologicalSort } from '../ir/toposort.js';
import type { Model } from '../ir/model.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Tensor } from '../ir/tensor.js';
import { upgradeOpset } from '../optimize/upgrade-opset.js';
import { type PassReport, type PassWarning, runPass } from '../pipeline/pass.js';
import type { Progress } from '../pipeline/progress.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { quantizeMethod } from '../methods/quantize/registry.js';
import type { WeightOnlyMethod, WeightOnlyOptions } from '../methods/quantize/weight-only.js';
import { Emitter } from './emitter.js';
import type { OptimizerSpec } from './optimizers.js';
import { emitFakeQuant } from './qat-fake-quant.js';
import { type FakeQuantPlan, type WeightGrouping, planFakeQuant } from './qat-plan.js';
import type { Schedule } from './schedules.js';
import { type EpochRecord, Trainer, type TrainingData, withWeights } from './trainer.js';
import type { LossSpec } from './training-graph.js';

export interface FakeQuantModel {
  /** A copy of the model with fake quantization in front of every weight PTQ quantizes. */
  model: Model;
  plan: FakeQuantPlan;
}

/**
 * A copy of `model` in which each weight the weight-only method quantizes is read through fake
 * quantization; other readers of the same weight (nodes PTQ leaves in float) still read it as is.
 */
export function insertFakeQuant(model: Model, options: WeightOnlyOptions): FakeQuantModel {
  const copy = model.clone();
  // Planned at the model's own opset: PTQ's forms depend on it (per-channel needs 13, int4 blocks 21).
  const plan = planFakeQuant(copy, options);
  // Per-axis QuantizeLinear needs opset 13; the upgrade rewrites nodes in place, so readers stay valid.
  if ((copy.opset('') ?? 1) < 13) upgradeOpset(copy, { to: 13 });
  const e = new Emitter(new GraphBuilder(copy.graph), copy.opset('') ?? 13, new Map(), 'qat');
  for (const target of plan.targets) {
    const fake = emitFakeQuant(e, target);
    for (const { node, input } of target.readers) node.inputs[input] = fake;
  }
  copy.graph.changed();
  topologicalSort(copy.graph);
  return { model: copy, plan };
}

export type QatMethod = Extract<WeightOnlyMethod, 'int8-weight' | 'int4' | 'int2'>;

export interface QatOptions {
  method: QatMethod;
  /** PTQ settings, as `shrink quantize` takes them. */
  blockSize?: number;
  symmetric?: boolean;
  /** Node-name regexes or op types left in float. */
  exclude?: readonly string[];
  data: TrainingData;
  epochs: number;
  batchSize: number;
  schedule: Schedule;
  /** Default: cross-entropy on the model's first output. */
  loss?: LossSpec;
  /** Default: AdamW (with a small rate, e.g. 1e-3, it recovered int2 accuracy better than SGD). */
  optimizer?: OptimizerSpec;
  frozen?: readonly (string | RegExp)[];
  clipNorm?: number;
  batchNorm?: 'batch' | 'frozen';
  seed?: number;
  maxSteps?: number;
  threads?: number;
  progress?: Progress;
  /**
   * Measures a model (e.g. test accuracy in percent); when given, the report holds it for the float
   * model, its plain PTQ result and the QAT result.
   */
  evaluate?: (model: Model) => Promise<number>;
}

export interface QatTarget {
  weight: string;
  format: string;
  bits: number;
  symmetric: boolean;
  grouping: WeightGrouping;
}

export interface QatReport {
  method: QatMethod;
  /** The weights trained under fake quantization. */
  targets: QatTarget[];
  history: EpochRecord[];
  steps: number;
  /** The final PTQ pass's report on the trained model. */
  quantization: PassReport;
  warnings: PassWarning[];
  /** `evaluate` on the float model, on its PTQ result, and on the QAT result. */
  metric?: { float: number; ptq: number; qat: number };
}

export interface QatResult {
  /** The quantized model, in the format PTQ writes. */
  model: Model;
  /** The float model with the weights QAT trained (before the final PTQ pass). */
  trained: Model;
  report: QatReport;
}

/** Fine-tunes `model` under fake quantization, then quantizes it with the method's PTQ pass. */
export async function quantizationAwareTraining(ort: OrtModule, model: Model, options: QatOptions): Promise<QatResult> {
  const method = quantizeMethod(options.method);
  if (method.pass === undefined) throw new Error(`qat: method '${options.method}' is not implemented`);
  const pass = method.pass;
  // The same options object the PTQ pass gets: the plan and the final pass agree by construction.
  const ptqOptions = method.options({ blockSize: options.blockSize, symmetric: options.symmetric, exclude: options.exclude }) as WeightOnlyOptions;
  const quantize = async (float: Model) => {
    const out = float.clone();
    const report = await runPass(pass, out, ptqOptions as never, { ort });
    return { model: out, report };
  };

  // The float model first: a model onnxruntime cannot load fails here, with onnxruntime's reason,
  // before the training graph built from it fails for the same reason less plainly.
  const floatMetric = options.evaluate === undefined ? undefined : await options.evaluate(model);
  const fake = insertFakeQuant(model, ptqOptions);
  if (fake.plan.targets.length === 0) throw new Error(`qat: ${options.method} quantizes no weight of this model that training can reach (no MatMul, Gemm, Conv or Gather with a constant float weight in the main graph)`);
  const output = model.graph.outputs[0]?.name;
  if (options.loss === undefined && output === undefined) throw new Error('qat: the model has no outputs to train on');
  const trainer = await Trainer.create(
    ort,
    fake.model,
    {
      loss: options.loss ?? { kind: 'cross-entropy', output: output as string },
      optimizer: options.optimizer ?? { kind: 'adamw' },
      frozen: options.frozen,
      clipNorm: options.clipNorm,
      batchNorm: options.batchNorm,
    },
    { threads: options.threads },
  );
  let history: EpochRecord[];
  let weights: Map<string, Tensor>;
  try {
    history = await trainer.fit(options.data, { epochs: options.epochs, batchSize: options.batchSize, schedule: options.schedule, seed: options.seed, maxSteps: options.maxSteps, progress: options.progress });
    weights = trainer.currentWeights();
  } finally {
    await trainer.release();
  }
  // The weights go into the original graph: the fake-quant nodes were only for training.
  const trained = withWeights(model, weights);
  const final = await quantize(trained);
  const report: QatReport = {
    method: options.method,
    targets: fake.plan.targets.map((t) => ({ weight: t.weight, format: t.format, bits: t.bits, symmetric: t.symmetric, grouping: t.grouping })),
    history,
    steps: history.reduce((n, h) => n + h.steps, 0),
    quantization: final.report,
    warnings: fake.plan.warnings,
  };
  if (options.evaluate !== undefined && floatMetric !== undefined) {
    const ptq = await quantize(model);
    report.metric = { float: floatMetric, ptq: await options.evaluate(ptq.model), qat: await options.evaluate(final.model) };
  }
  return { model: final.model, trained, report };
}
