// Headless Chromium with the pack decoder page (test/browser/pack-entry.ts, bundled by esbuild for
// the browser) served beside onnxruntime-web and a folder of packs. Used by the browser test and
// by bench/pack.ts for the decoder's throughput in Chromium.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './chromium.js';
import { startStaticServer } from './static-server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface PackPage {
  page: Page;
  browser: Browser;
  /** Where the packs folder is served, e.g. http://127.0.0.1:4321/packs/ */
  packsUrl: string;
  metafile: Metafile;
  bundleBytes: number;
  log: string[];
  close(): Promise<void>;
}

export async function openPackPage(packsDir: string): Promise<PackPage> {
  const dir = await mkdtemp(join(tmpdir(), 'shrink-pack-page-'));
  const result = await build({
    entryPoints: [join(ROOT, 'test/browser/pack-entry.ts')],
    outfile: join(dir, 'pack-entry.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['onnxruntime-web/wasm'],
    metafile: true,
    logLevel: 'silent',
  });
  await copyFile(join(ROOT, 'test/browser/pack.html'), join(dir, 'index.html'));
  const server = await startStaticServer({ '/app/': dir, '/ort/': join(ROOT, 'node_modules/onnxruntime-web/dist'), '/packs/': packsDir });
  const log: string[] = [];
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`page error: ${e.message}`));
    await page.goto(`${server.url}/app/index.html`);
    await page.waitForFunction(() => document.body?.dataset.ready === 'true', undefined, { timeout: 15_000 });
    const output = Object.values(result.metafile.outputs)[0];
    const opened = browser;
    return {
      page,
      browser: opened,
      packsUrl: `${server.url}/packs/`,
      metafile: result.metafile,
      bundleBytes: output?.bytes ?? 0,
      log,
      close: async () => {
        await opened.close();
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await browser?.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}${log.length > 0 ? `\npage log:\n  ${log.join('\n  ')}` : ''}`);
  }
}
