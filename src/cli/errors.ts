// How the CLI reports failure: exactly one line on stderr, `shrink: <file>: <what is wrong>`,
// and an exit code a script can act on. The stack is only for `--verbose`: a user who fed us a
// truncated file needs to know that, not where in our code we noticed.

import { GateFailedError } from '../pipeline/gate.js';

/** The exit codes the CLI uses. */
export const ExitCode = {
  OK: 0,
  /** Bad input (missing, empty, corrupt, unsupported model) or a failed operation. */
  FAILURE: 1,
  /** The command line itself is wrong: unknown option or command, missing argument. */
  USAGE: 2,
  /** A gate did not hold (--min-cosine, --max-drop, a recipe's gate step): nothing was written. */
  GATE: 3,
} as const;

/** A command-line mistake found after parsing (an option value that makes no sense). */
export class UsageError extends Error {}

/** Node's system error codes, in words, for failures that happen before our own checks run. */
const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  EMFILE: 'too many open files',
  ENOSPC: 'no space left on the device',
};

/** The error's message as one line (multi-line messages are joined). */
export function oneLine(error: unknown): string {
  let message: string;
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    message = typeof code === 'string' && code in SYSTEM_ERRORS ? describeSystemError(error, code) : error.message;
  } else {
    message = String(error);
  }
  return message.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
}

function describeSystemError(error: Error, code: string): string {
  const path = (error as { path?: unknown }).path;
  return typeof path === 'string' ? `${path}: ${SYSTEM_ERRORS[code]}` : SYSTEM_ERRORS[code];
}

/**
 * Makes sure a failure starts with the file it concerns. Most errors from the loader already do;
 * those from deeper code (a node, a tensor) get it prefixed.
 */
export function inFile(file: string, error: unknown): Error {
  let message = oneLine(error);
  if (message.startsWith(`${file}: `)) return error instanceof Error ? withMessage(error, message) : new Error(message);
  // The file leads, once, even when a deeper message mentions it in the middle.
  message = `${file}: ${message.split(`${file}: `).join('')}`;
  const wrapped = new Error(message);
  if (error instanceof Error) wrapped.stack = `${wrapped.message}\n${stackFrames(error)}`;
  return wrapped;
}

function withMessage(error: Error, message: string): Error {
  if (error.message === message) return error;
  const copy = new Error(message);
  copy.stack = `${message}\n${stackFrames(error)}`;
  return copy;
}

/** The `    at ...` lines of a stack, without its first (message) line. */
function stackFrames(error: Error): string {
  return (error.stack ?? '')
    .split('\n')
    .filter((l) => /^\s+at /.test(l))
    .join('\n');
}

/** The text to print for a failure: one line, plus the stack frames with `verbose`. */
export function formatError(error: unknown, verbose: boolean): string {
  const line = `shrink: ${oneLine(error)}\n`;
  if (!verbose || !(error instanceof Error)) return line;
  const frames = stackFrames(error);
  return frames === '' ? line : `${line}${frames}\n`;
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.USAGE;
  if (error instanceof GateFailedError) return ExitCode.GATE;
  return ExitCode.FAILURE;
}
