// Writes a whole file or nothing: the bytes go to a hidden temporary name beside the target and
// are renamed into place, so a reader (or a crash) never sees half a file.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeFileAtomic(file: string, contents: string | Uint8Array): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(temporary, contents);
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}
