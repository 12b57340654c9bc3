// Training a compressed model back towards the original, for the steps that change weights and
// shapes (prune, low-rank). With labels it fine-tunes with cross-entropy (`train`); without, it distils from
// the original: KL on softened logits for a classifier's [N, classes] output, MSE on the output
// otherwise. The settings and the report have the shapes of the prune step's.
import { DataType, type TypedArray } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import { inferShapes } from '../optimize/shape-inference/index.js';
import { arrayTrainingData } from '../train/array-data.js';
import { precomputedField, precomputeTeacher } from '../train/distill-teacher.js';
import { Trainer } from '../train/trainer.js';
import { LABEL_INPUT, TARGETS } from '../train/training-graph.js';
import type { RecipeContext } from './context.js';
import { distill } from './distill.js';
import type { PruneData, PruneRecovery } from './prune.js';
import type { PruneRecoveryReport } from './prune-report.js';
import { train } from './train.js';

export type RecoveryData = PruneData;
export type RecoverySettings = PruneRecovery;
export type RecoveryReport = PruneRecoveryReport;

/** The inputs with their class ids under LABEL_INPUT, as the training step reads them. */
export function labelledData(data: RecoveryData) {
  return arrayTrainingData({ ...data.inputs, [LABEL_INPUT]: { data: data.labels as TypedArray, sampleDims: [], dataType: DataType.INT64 } });
}

/** Fine-tunes `student` with labels, or distils it from `teacher` without them. `masks` keep zeroed weights at zero. */
export async function recoverByTraining(
  teacher: Model,
  student: Model,
  data: RecoveryData,
  recovery: RecoverySettings,
  output: string | undefined,
  ctx: RecipeContext,
  masks?: Map<string, Tensor>,
): Promise<{ model: Model; report: RecoveryReport }> {
  const started = performance.now();
  const fit = { epochs: recovery.epochs, batchSize: recovery.batchSize, schedule: recovery.schedule, optimizer: recovery.optimizer, seed: recovery.seed, maxSteps: recovery.maxSteps };
  const samples = Object.values(data.inputs)[0];
  const count = samples.data.length / samples.sampleDims.reduce((a, b) => a * b, 1);
  const seconds = () => (performance.now() - started) / 1000;
  if (data.labels !== undefined) {
    const { model, report } = await train(student, { ...fit, data: labelledData(data), logits: output, masks }, ctx);
    return {
      model,
      report: { kind: 'fine-tune', loss: 'cross-entropy', epochs: report.epochs.length, steps: report.steps, samples: count, mean_loss: report.epochs.map((e) => e.mean_loss), seconds: seconds(), accuracy: report.accuracy },
    };
  }
  const rank = output === undefined ? undefined : inferShapes(teacher).main.get(output)?.shape?.length;
  if (rank === 2) {
    const { model, report } = await distill(teacher, student, { ...fit, data: { inputs: data.inputs }, alpha: 0, temperature: recovery.temperature ?? 4, teacherOutput: output, studentOutput: output, masks }, ctx);
    return { model, report: { kind: 'distill', loss: 'kl', epochs: report.epochs.length, steps: report.steps, samples: report.samples, mean_loss: report.epochs.map((e) => e.mean_loss), seconds: seconds() } };
  }
  if (output === undefined) throw new Error('recovery: the model has no output to distil');
  const targets = (await precomputeTeacher(ctx.ort, teacher, data.inputs, [output], { threads: ctx.threads, progress: ctx.progress })).get(output);
  if (targets === undefined) throw new Error(`recovery: the original gave no '${output}'`);
  const trainer = await Trainer.create(ctx.ort, student, { loss: { kind: 'mse', output }, optimizer: recovery.optimizer, masks }, { threads: ctx.threads });
  try {
    const history = await trainer.fit(arrayTrainingData({ ...data.inputs, [TARGETS]: precomputedField(targets, DataType.FLOAT) }), { ...fit, progress: ctx.progress });
    return {
      model: trainer.exportModel(),
      report: { kind: 'distill', loss: 'mse', epochs: history.length, steps: trainer.stepCount, samples: count, mean_loss: history.map((h) => h.meanLoss), seconds: seconds() },
    };
  } finally {
    await trainer.release();
  }
}
