// Writing a command's model: where OUT is a folder, the method's file name inside it; the files go
// to temporary names, the result must load in onnxruntime there, and only then does it replace
// anything (src/node/model-files.ts). A failure at any point leaves every existing file as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Model } from '../ir/model.js';
import { type SavedModel, saveModelVerified } from '../node/model-files.js';
import { checkLoads } from '../node/load-check.js';
import { formatBytes } from '../inspect/table.js';
import type { PassWarning } from '../pipeline/pass.js';
import { inFile } from './errors.js';
import { memoryBudget } from './large-models.js';
import { refuseInputs } from './output-checks.js';
import { checkSpeed, type SpeedReport, type SpeedRequest } from './speed-check.js';

/**
 * The file to write for `output`: itself, or `fileName` inside it when it is a folder (existing,
 * or named with a trailing slash, then created). Refuses a file that is one of `inputs`.
 */
export function outputFile(output: string, fileName: string, inputs: readonly (string | undefined)[], flag = '-o'): string {
  const isFolder = output.endsWith('/') || output.endsWith(path.sep) || (fs.existsSync(output) && fs.statSync(output).isDirectory());
  if (!isFolder) return output;
  const file = path.join(output, fileName);
  refuseInputs(path.resolve(file), { output: file, flag, inputs });
  return file;
}

/**
 * Saves `model` to `file` once it loads in onnxruntime from its temporary name; external data
 * with `externalData` (and on its own when the weights pass the protobuf limit). A result too
 * large to load on this machine (onnxruntime can take twice its size) is written without the
 * check, and a warning says so. With `speed`, the result is also timed against the original
 * from its temporary name (src/cli/speed-check.ts) before it replaces anything.
 */
export async function writeModelOutput(
  model: Model,
  file: string,
  options: { externalData?: boolean; speed?: SpeedRequest } = {},
): Promise<SavedModel & { warnings: PassWarning[]; speed?: SpeedReport }> {
  const warnings: PassWarning[] = [];
  let speed: SpeedReport | undefined;
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const saved = await saveModelVerified(model, file, {
      externalData: options.externalData === true ? true : undefined,
      verify: async (temporary, bytes) => {
        const budget = memoryBudget();
        if (2 * bytes > budget) {
          warnings.push({
            code: 'not-load-checked',
            message: `${file} was not loaded in onnxruntime before it was written: at ${formatBytes(bytes)} it may need twice that, more than the ${formatBytes(budget)} this machine can give it`,
          });
          if (options.speed !== undefined) speed = { skipped: 'the result is too large to load on this machine' };
          return;
        }
        try {
          await checkLoads(temporary, bytes);
        } catch (error) {
          throw new Error(`onnxruntime cannot load the result (${(error as Error).message}); nothing was written`);
        }
        if (options.speed !== undefined) {
          const checked = await checkSpeed(options.speed, { file: temporary, model, bytes });
          speed = checked.speed;
          warnings.push(...checked.warnings);
        }
      },
    });
    return { ...saved, warnings, ...(speed === undefined ? {} : { speed }) };
  } catch (error) {
    throw inFile(file, error);
  }
}
