// Training checkpoints on disk: a folder holding `model.onnx` (the inference model with the
// weights so far, usable as it is) and `trainer-state.npz` (weights, optimizer state, running
// statistics and the step/epoch counters) to resume from. Both files are written atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import { npyToTensor, tensorToNpy } from '../eval/npy.js';
import { readNpz, writeNpz } from '../eval/npz.js';
import type { Trainer, TrainerState } from '../train/trainer.js';
import { writeFileAtomic } from './atomic-file.js';
import { saveModel } from './model-files.js';

export const CHECKPOINT_MODEL = 'model.onnx';
export const CHECKPOINT_STATE = 'trainer-state.npz';
/** Key of the [step, epoch] counters in the state archive (tensor names never start with '#'). */
const COUNTERS = '#counters';

export function saveCheckpoint(trainer: Trainer, folder: string): void {
  fs.mkdirSync(folder, { recursive: true });
  const state = trainer.state();
  const arrays: Parameters<typeof writeNpz>[0] = {};
  // Tensor names may hold '/', which zip would read as folders: keys are URI-encoded.
  for (const [name, tensor] of state.tensors) arrays[encodeURIComponent(name)] = tensorToNpy(tensor);
  arrays[encodeURIComponent(COUNTERS)] = tensorToNpy(Tensor.fromArray(COUNTERS, DataType.INT64, [2], BigInt64Array.of(BigInt(state.step), BigInt(state.epoch))));
  writeFileAtomic(path.join(folder, CHECKPOINT_STATE), writeNpz(arrays));
  saveModel(trainer.exportModel(), path.join(folder, CHECKPOINT_MODEL));
}

export async function loadCheckpointState(folder: string): Promise<TrainerState> {
  const file = path.join(folder, CHECKPOINT_STATE);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    throw new Error(`${file}: no such file (not a shrink training checkpoint)`);
  }
  const tensors = new Map<string, Tensor>();
  let counters: number[] | undefined;
  for (const [key, array] of await readNpz(bytes, file)) {
    const name = decodeURIComponent(key);
    const tensor = npyToTensor(array, name);
    if (name === COUNTERS) counters = Array.from(tensor.data() as BigInt64Array, Number);
    else tensors.set(name, tensor);
  }
  if (counters === undefined || counters.length !== 2) throw new Error(`${file}: no step/epoch counters`);
  return { tensors, step: counters[0], epoch: counters[1] };
}
