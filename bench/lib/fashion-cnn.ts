// The Fashion-MNIST CNN of the training benchmark (conv32-bn-relu-pool, conv64-bn-relu-pool,
// fc128, fc10), trained from scratch exactly as bench/train.ts trains it: the model the pruning
// and auto benchmarks compress. 3 epochs of SGD (momentum 0.9, weight decay 5e-4, cosine from 0.05),
// batch 64, seed 1; accuracy on the 10k test images.
import type { Model } from '../../src/ir/model.js';
import { FASHION_MNIST_DIR, readIdxImageSet } from '../../src/node/image-datasets.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { classifierAccuracy, imageTrainingData } from '../../src/train/classification.js';
import { cnnModel } from '../../src/train/init-models.js';
import { Trainer } from '../../src/train/trainer.js';

export const FASHION_CNN_TRAINING = { epochs: 3, batch: 64, lr: 0.05, momentum: 0.9, weightDecay: 5e-4, seed: 1 };

export type FashionSets = { train: ReturnType<typeof readIdxImageSet>; test: ReturnType<typeof readIdxImageSet> };

export function fashionSets(): FashionSets {
  return { train: readIdxImageSet(FASHION_MNIST_DIR, 'train'), test: readIdxImageSet(FASHION_MNIST_DIR, 't10k') };
}

export async function trainFashionCnn(sets: FashionSets, log: (l: string) => void): Promise<{ model: Model; accuracy: number; seconds: number }> {
  const t = FASHION_CNN_TRAINING;
  log(`fashion-cnn: training from scratch (${t.epochs} epochs)`);
  const started = performance.now();
  const trainer = await Trainer.create(nodeOrt, cnnModel({ classes: 10, seed: 5 }), { loss: { kind: 'cross-entropy', output: 'logits' }, optimizer: { kind: 'sgd', momentum: t.momentum, weightDecay: t.weightDecay } }, { threads: 2 });
  await trainer.fit(imageTrainingData(sets.train), { epochs: t.epochs, batchSize: t.batch, schedule: { kind: 'cosine', rate: t.lr }, seed: t.seed });
  const model = trainer.exportModel();
  await trainer.release();
  return { model, accuracy: await classifierAccuracy(nodeOrt, model, sets.test, { threads: 2 }), seconds: (performance.now() - started) / 1000 };
}
