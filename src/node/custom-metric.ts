// Loads a user's metric for `shrink eval --metric file.js`: a JS module, or a TS one when tsx is
// installed (the compiled CLI registers it on demand), whose default export, or export named `metric`, is a function
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
    module = /\.[cm]?ts$/.test(absolute) ? await importTypeScript(file, absolute) : ((await import(pathToFileURL(absolute).href)) as Record<string, unknown>);
  } catch (error) {
    throw new Error(`${file}: cannot load the metric module (${(error as Error).message})`);
  }
  // A TypeScript file outside an ESM package comes back from tsx as CommonJS: its exports under `default`.
  const inner = typeof module.default === 'object' && module.default !== null ? (module.default as Record<string, unknown>) : {};
  const metric = [module.default, module.metric, inner.default, inner.metric].find((m) => typeof m === 'function');
  if (typeof metric !== 'function') {
    throw new Error(`${file}: exports no metric function (export default (reference, candidate, sample) => number, or export const metric = ...)`);
  }
  const label = typeof module.name === 'string' ? module.name : inner.name;
  const name = typeof label === 'string' ? label : path.basename(file).replace(/\.[cm]?[jt]s$/, '');
  const checked: CustomMetric = (reference, candidate, sample) => {
    const value = (metric as CustomMetric)(reference, candidate, sample);
    if (typeof value !== 'number') throw new Error(`${file}: the metric returned ${typeof value} for ${sample.where}, not a number`);
    return value;
  };
  return { name, metric: checked };
}

/** Imports a .ts metric through tsx when it is installed; otherwise says what to do. */
async function importTypeScript(file: string, absolute: string): Promise<Record<string, unknown>> {
  let api: { tsImport: (specifier: string, parent: string) => Promise<Record<string, unknown>> };
  try {
    api = (await import('tsx/esm/api')) as typeof api;
  } catch {
    throw new Error(`a TypeScript metric needs tsx (npm install tsx), or compile it to .js and pass that`);
  }
  return api.tsImport(pathToFileURL(absolute).href, import.meta.url);
}
