// The real ImageMagick `convert` for the scripts that render OCR fixtures (a stand-in of that name
// may come first on PATH): $CONVERT, /usr/bin/convert, then `convert`, the first that says it is ImageMagick.
import { execFileSync } from 'node:child_process';

export function findConvert(): string {
  for (const candidate of [process.env.CONVERT, '/usr/bin/convert', 'convert']) {
    if (candidate === undefined) continue;
    try {
      if (execFileSync(candidate, ['-version'], { encoding: 'utf8' }).includes('ImageMagick')) return candidate;
    } catch {
      // Not there: try the next one.
    }
  }
  throw new Error('ImageMagick not found: apt-get install imagemagick (or set CONVERT=/path/to/convert)');
}
