// The real `shrink` CLI in a child process, as a user starts it (bin/shrink.js), for the
// end-to-end tests of its commands.
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: the CLI's working folder, and where the real-model paths are relative to. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SHRINK_BIN = fileURLToPath(new URL('../../bin/shrink.js', import.meta.url));

/**
 * Runs `shrink ...args` and waits for it (in the repository root unless `cwd` is given). A child
 * that could not be started or ran past `timeout` ms fails the test; its exit code is the caller's.
 */
export function spawnShrink(args: readonly string[], options: { cwd?: string; timeout?: number } = {}): SpawnSyncReturns<string> {
  const result = spawnSync(process.execPath, [SHRINK_BIN, ...args], { cwd: options.cwd ?? REPO_ROOT, encoding: 'utf8', timeout: options.timeout ?? 60_000 });
  assert.equal(result.error, undefined, `spawn failed: ${result.error}`);
  return result;
}

/** Runs `shrink ...args` in this process through main(), with stdout and stderr captured. */
export async function runShrink(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}
