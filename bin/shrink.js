#!/usr/bin/env node
// The `shrink` executable: runs the compiled CLI in dist/ (what the npm package ships).
//
// In a clone of the repository dist/ is built by `npm install` (the prepare script) and by
// `npm run build`. The sources run instead, through tsx (a devDependency), when
//   - SHRINK_FROM_SOURCE=1 is set (the test suite sets it, so tests never depend on a build), or
//   - dist/ is missing or older than a file in src/ (an edit since the last build); this says so
//     on stderr, once per run, and `npm run build` makes the compiled CLI current again.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/cli/main.js', root);
const sources = new URL('src/', root);

/** The newest modification time (ms) of a file under `dir`. */
function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** Why the sources must run instead of dist/, or null when dist/ is current (or there are no sources). */
function reasonForSources() {
  if (process.env.SHRINK_FROM_SOURCE === '1') return '';
  // The published package has no src/: nothing can be stale.
  if (!existsSync(sources)) return null;
  if (!existsSync(compiled)) return 'dist/ is not built';
  // tsc rewrites its build-info file on every build, so its time is the time of the last build.
  const built = new URL('dist/.tsbuildinfo', root);
  const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
  if (newestMtime(fileURLToPath(sources)) > builtAt) return 'dist/ is older than src/';
  return null;
}

const reason = reasonForSources();
let main;
if (reason === null) {
  ({ main } = await import(compiled.href));
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(`shrink: ${reason || 'SHRINK_FROM_SOURCE=1'} and tsx (a devDependency) is not installed: run npm install, or npm run build\n`);
    process.exit(1);
  }
  if (reason) process.stderr.write(`shrink: ${reason}, running the TypeScript sources through tsx (npm run build for the faster compiled CLI)\n`);
  register();
  ({ main } = await import(new URL('src/cli/main.ts', root).href));
}
const code = await main(process.argv.slice(2));
// SHRINK_DEBUG=1: the peak memory of this process (child processes, such as a large model's load
// check, are not counted), for benchmarks and for users sizing a machine.
if (Number(process.env.SHRINK_DEBUG ?? 0) >= 1) {
  process.stderr.write(`shrink: debug: peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB (this process)\n`);
}
// Exit only once stdout has taken everything, so a large --json report reaches a pipe whole.
process.stdout.write('', () => process.exit(code));
