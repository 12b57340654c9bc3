// Where the studio page comes from: the package's dist/studio (built by `npm run build:studio`,
// part of `prepare`, shipped in the npm package without onnxruntime-web's files), or, in a clone
// whose dist/studio is missing or older than its sources, a Vite build of studio/ into
// node_modules/.cache (Vite is a devDependency, present in a clone). A build is used only when it
// is newer than every source file, so running from sources (SHRINK_FROM_SOURCE=1) never serves a
// stale page.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The package root: this file is src/node/ in a clone and dist/node/ in the package. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const STUDIO_SOURCES = join(ROOT, 'studio');
export const STUDIO_DIST = join(ROOT, 'dist', 'studio');
const STUDIO_CACHE = join(ROOT, 'node_modules', '.cache', 'shrink-studio');

/**
 * onnxruntime-web's dist/ folder, which holds the files the page loads from ort/ (the npm package
 * ships the page without them: they are onnxruntime-web's own, 14 MB, and a peer dependency).
 */
export function onnxruntimeWebDist(): string {
  try {
    // Its entry for require() sits in dist/, beside the .wasm and .mjs files.
    return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch {
    throw new Error('the studio runs models with onnxruntime-web, a peer dependency that is not installed: npm install onnxruntime-web@^1.30.0');
  }
}

/** Builds the page from studio/ into `outDir` with Vite (from sources only). */
export async function buildStudio(outDir: string): Promise<void> {
  if (!existsSync(join(STUDIO_SOURCES, 'index.html'))) throw new Error(`the studio's sources are not here (${STUDIO_SOURCES}): this is an installed package; its page is dist/studio`);
  let vite: typeof import('vite');
  try {
    vite = await import('vite');
  } catch {
    throw new Error('building the studio page needs Vite (a devDependency): run npm install in the shrink checkout');
  }
  await vite.build({ configFile: join(STUDIO_SOURCES, 'vite.config.ts'), build: { outDir, emptyOutDir: true }, logLevel: 'error' });
}

/** The newest modification time (ms) of the files under the given folders (0 when none exist). */
function newestMtime(dirs: readonly string[]): number {
  let newest = 0;
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
    }
  }
  return newest;
}

/** A built page newer than every source of it (studio/ and the core in src/). */
function isFresh(dir: string): boolean {
  const index = join(dir, 'index.html');
  return existsSync(index) && statSync(index).mtimeMs >= newestMtime([STUDIO_SOURCES, join(ROOT, 'src')]);
}

/**
 * The folder to serve: dist/studio in the installed package, or in a clone when it is current
 * (newer than studio/ and src/); otherwise a build of the sources in node_modules/.cache, made again
 * only when the sources changed. `note` says when it builds.
 */
export async function studioFolder(note: (line: string) => void): Promise<string> {
  const built = existsSync(join(STUDIO_DIST, 'index.html'));
  if (!existsSync(join(STUDIO_SOURCES, 'index.html'))) {
    if (built) return STUDIO_DIST;
    throw new Error(`the studio page is not built (${STUDIO_DIST} is missing): reinstall shrink`);
  }
  if (built && isFresh(STUDIO_DIST)) return STUDIO_DIST;
  if (isFresh(STUDIO_CACHE)) return STUDIO_CACHE;
  note(`building the studio page from studio/ with Vite (${built ? 'dist/studio is older than the sources' : 'dist/studio is not built'}; npm run build:studio makes dist/studio current)`);
  await buildStudio(STUDIO_CACHE);
  return STUDIO_CACHE;
}
