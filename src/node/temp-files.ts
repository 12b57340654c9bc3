// Temporary files of this process: named so they can be recognised later, removed when the process
// is interrupted (Ctrl-C, SIGTERM) or exits, and removed by a later run when a crash left them.
// Every file shrink writes goes to such a name first and is renamed into place only when complete.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * `.<name>.shrink-<pid>-<n>.tmp` beside outputs, `.shrink-session-<pid>-XXXXXX` folders in the
 * system's temporary folder (model-stage.ts): hidden, tied to the process that made them.
 */
const TEMP_PATTERN = /^\.(?:.+\.shrink-(\d+)-\d+\.tmp|shrink-session-(\d+)-.+)$/;

const live = new Set<string>();
let counter = 0;
let handlersInstalled = false;

/** A fresh temporary name beside `file` (same folder, so the final rename stays on one file system). */
export function tempPathFor(file: string): string {
  const name = `.${path.basename(file)}.shrink-${process.pid}-${++counter}.tmp`;
  return path.join(path.dirname(file), name);
}

/** Records a temporary file or folder to remove if the process is interrupted or exits first. */
export function trackTemp(file: string): void {
  installHandlers();
  live.add(file);
}

/** The file was renamed into place or removed: no longer ours to clean up. */
export function untrackTemp(file: string): void {
  live.delete(file);
}

/** Removes a tracked temporary file or folder now. */
export function removeTemp(file: string): void {
  fs.rmSync(file, { force: true, recursive: true });
  live.delete(file);
}

/**
 * Removes temporary files in `folder` left by shrink processes that no longer run (a crash, a
 * kill -9). Files of running processes, including this one, are left alone.
 */
export function removeStaleTemps(folder: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(folder);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const match = TEMP_PATTERN.exec(entry);
    if (match === null || isRunning(Number(match[1] ?? match[2]))) continue;
    try {
      fs.rmSync(path.join(folder, entry), { force: true, recursive: true });
      removed.push(entry);
    } catch {
      // Someone else's file, or gone already: not ours to insist on.
    }
  }
  return removed;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cleanUp(): void {
  for (const file of live) {
    try {
      fs.rmSync(file, { force: true, recursive: true });
    } catch {
      // Best effort: the process is going away.
    }
  }
  live.clear();
}

/** Signal handlers remove the temporary files, then end the process with the usual 128 + signal code. */
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanUp);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      cleanUp();
      process.stderr.write(`\nshrink: interrupted (${signal}); temporary files removed, nothing was written\n`);
      process.exit(code);
    });
  }
}
