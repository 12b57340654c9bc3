// The recipe context of a CLI run: onnxruntime-node, progress on stderr (a bar on a terminal,
// plain lines otherwise, shown only for work that lasts; none with --no-progress), SHRINK_DEBUG=1|2
// debug lines, and the thread count.
import type { Command } from 'commander';
import { nodeOrt, setNodeOrtLogLevel } from '../node/ort-node.js';
import { lineProgress, terminalProgress } from '../node/progress.js';
import type { RecipeContext } from '../pipeline/context.js';
import { delayedProgress, silentProgress } from '../pipeline/progress.js';
import { memoryBudget, teacherMemory } from './large-models.js';
import type { CliIO } from './main.js';

/** Progress appears only for tasks longer than this. */
const PROGRESS_DELAY_MS = 2000;

export function cliRecipeContext(command: Command, io: CliIO, options: { threads?: number } = {}): RecipeContext {
  const globals = command.optsWithGlobals() as { verbose?: boolean; progress?: boolean };
  // onnxruntime prints multi-line warnings of its own; its errors reach the user through ours.
  if (globals.verbose !== true) setNodeOrtLogLevel('fatal');
  const inner = process.stderr.isTTY ? terminalProgress(process.stderr) : lineProgress((line) => io.stderr(`${line}\n`));
  return {
    ort: nodeOrt,
    threads: options.threads,
    memoryBudget: memoryBudget(),
    teacherMemory: teacherMemory(),
    progress: globals.progress === false ? silentProgress : delayedProgress(inner, PROGRESS_DELAY_MS),
    debug: debugWriter(io),
  };
}

/** SHRINK_DEBUG=1 prints per-pass lines, =2 per-node detail too. */
export function debugWriter(io: CliIO): (level: 1 | 2, message: string) => void {
  const level = Number(process.env.SHRINK_DEBUG ?? 0);
  return (at, message) => {
    if (level >= at) io.stderr(`shrink: debug: ${message}\n`);
  };
}
