// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core.
// A browser that cannot start fails the test with the reason; skipping would hide the breakage
// these tests exist to catch.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** No sandbox or GPU (containers), and nothing that reaches the network on its own. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Starts Chromium, or throws a message that says whether it is missing or failed to start. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM} (Debian: apt-get install chromium); the browser test cannot run`);
  }
  try {
    return await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS], timeout: 30_000 });
  } catch (error) {
    throw new Error(`Chromium at ${CHROMIUM} failed to start: ${(error as Error).message}`);
  }
}
