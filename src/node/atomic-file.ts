// Writes a whole file or nothing: the bytes go to a hidden temporary name beside the target and
// are renamed into place, so a reader (or a crash) never sees half a file.
import * as fs from 'node:fs';
import { removeStaleTemps, removeTemp, tempPathFor, trackTemp, untrackTemp } from './temp-files.js';
import * as path from 'node:path';

export function writeFileAtomic(file: string, contents: string | Uint8Array): void {
  removeStaleTemps(path.dirname(path.resolve(file)));
  const temporary = tempPathFor(file);
  trackTemp(temporary);
  try {
    fs.writeFileSync(temporary, contents);
    fs.renameSync(temporary, file);
    untrackTemp(temporary);
  } catch (error) {
    removeTemp(temporary);
    throw error;
  }
}
