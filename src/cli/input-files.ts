// Reading the files a command is given, with errors that name the file (and exit 1).
import * as fs from 'node:fs';
import type { Model } from '../ir/model.js';
import { loadModel } from '../node/model-files.js';
import { type Labels, parseLabels } from '../eval/labels.js';
import { inFile } from './errors.js';

export function loadModelFile(file: string): Model {
  try {
    return loadModel(file);
  } catch (error) {
    throw inFile(file, error);
  }
}

export function readInputFile(file: string): Uint8Array {
  try {
    const buffer = fs.readFileSync(file);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    throw inFile(file, error);
  }
}

/** Class ids from a .npy of integers or a JSON array, with errors naming the file. */
export function readLabelsFile(file: string): Labels {
  return parseLabels(readInputFile(file), file);
}

/** A text file (a recipe, a config), with errors naming the file. */
export function readTextFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw inFile(file, error);
  }
}
