// Loads a user's metric for `shrink eval --metric file.js`: a JS or TS module (TS works because
// the CLI runs under tsx) whose default export, or export named `metric`, is a function
// `(reference, candidate, sample) => number` over one sample's outputs (see CustomMetric).
// An optional `name` export labels it in reports; the file name does otherwise.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CustomMetric } from '../eval/metrics.js';

export interface LoadedMetric {
  name: string;
  metric: CustomMetric;
}

export async function loadCustomMetric(file: string): Promise<LoadedMetric> {
  const absolute = path.resolve(file);
  if (!fs.existsSync(absolute)) throw new Error(`${file}: no such file`);
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${file}: cannot load the metric module (${(error as Error).message})`);
  }
  const metric = typeof module.default === 'function' ? module.default : module.metric;
  if (typeof metric !== 'function') {
    throw new Error(`${file}: exports no metric function (export default (reference, candidate, sample) => number, or export const metric = ...)`);
  }
  const name = typeof module.name === 'string' ? module.name : path.basename(file).replace(/\.[cm]?[jt]s$/, '');
  const checked: CustomMetric = (reference, candidate, sample) => {
    const value = (metric as CustomMetric)(reference, candidate, sample);
    if (typeof value !== 'number') throw new Error(`${file}: the metric returned ${typeof value} for ${sample.where}, not a number`);
    return value;
  };
  return { name, metric: checked };
}
