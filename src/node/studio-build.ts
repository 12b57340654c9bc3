// Where the studio page comes from: the package's dist/studio (built by `npm run build:studio`,
// part of `prepare`, shipped in the npm package), or, when shrink runs from its sources, a fresh
// Vite build of studio/ into node_modules/.cache (Vite is a devDependency, present in a clone).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The package root: this file is src/node/ in a clone and dist/node/ in the package. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const STUDIO_SOURCES = join(ROOT, 'studio');
export const STUDIO_DIST = join(ROOT, 'dist', 'studio');
const STUDIO_CACHE = join(ROOT, 'node_modules', '.cache', 'shrink-studio');

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

/**
 * The folder to serve: dist/studio when it is built and shrink runs compiled; a build of the
 * sources when SHRINK_FROM_SOURCE=1 or dist/studio is missing in a clone (`note` says so).
 */
export async function studioFolder(note: (line: string) => void): Promise<string> {
  const fromSource = process.env.SHRINK_FROM_SOURCE === '1';
  if (!fromSource && existsSync(join(STUDIO_DIST, 'index.html'))) return STUDIO_DIST;
  if (!existsSync(join(STUDIO_SOURCES, 'index.html'))) {
    throw new Error(`the studio page is not built (${STUDIO_DIST} is missing): reinstall shrink, or in a clone run npm run build:studio`);
  }
  note(`building the studio page from ${STUDIO_SOURCES} (Vite)${fromSource ? ' because SHRINK_FROM_SOURCE=1' : ': dist/studio is not built (npm run build:studio)'}`);
  await buildStudio(STUDIO_CACHE);
  return STUDIO_CACHE;
}
