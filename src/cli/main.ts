// The `shrink` command line. Each command lives in its own file and exports a `register`
// function; this file only builds the program, lists the commands, and turns every outcome into
// an exit code (0 ok, 1 failure, 2 usage) with at most one line of error text. Options every
// command honours are the program's own (--verbose, --no-progress: commander accepts them before
// or after the command name; commands read them through cliRecipeContext), and SHRINK_DEBUG.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ExitCode, exitCodeFor, formatError } from './errors.js';
import { registerDistill } from './distill-command.js';
import { registerEval } from './eval-command.js';
import { registerBench } from './bench-command.js';
import { registerInspect } from './inspect-command.js';
import { registerOptimize } from './optimize-command.js';
import { registerQat } from './qat-command.js';
import { registerQuantize } from './quantize-command.js';
import { registerRun } from './run-command.js';
import { registerTrain } from './train-command.js';

/** Where commands write; tests and embedding code may capture it. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface CliContext {
  io: CliIO;
}

/** A command file's entry: adds its subcommand to the program. */
export type RegisterCommand = (program: Command, context: CliContext) => void;

// One line per command, in the order `shrink --help` lists them.
const COMMANDS: RegisterCommand[] = [registerInspect, registerEval, registerBench, registerOptimize, registerQuantize, registerRun, registerTrain, registerQat, registerDistill];

const processIO: CliIO = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** Runs the CLI on `argv` (the arguments after the program name) and returns the exit code. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const program = buildProgram({ io });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message (through outputError below) or the help text.
      return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    const verbose = program.opts().verbose === true || argv.includes('--verbose');
    io.stderr(formatError(error, verbose));
    return exitCodeFor(error);
  }
}

export function buildProgram(context: CliContext): Command {
  const { io } = context;
  const program = new Command('shrink');
  // Set before the subcommands are created: commander copies these settings into each of them.
  program
    .description('Make ONNX models smaller and faster, and show the evidence.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--verbose', 'print the stack trace when something fails')
    .option('--no-progress', 'do not report progress of long work on stderr')
    .addHelpText('after', '\nEnvironment:\n  SHRINK_DEBUG=1  per-pass and per-phase timings on stderr; 2 adds per-node detail')
    .helpOption('-h, --help', 'show help')
    // Each command's --help lists the global options too.
    .configureHelp({ showGlobalOptions: true })
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // Commander's own messages ("error: unknown option '--bogus'") become our one-line form.
      outputError: (text, write) => write(`shrink: ${text.replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
    });
  for (const register of COMMANDS) register(program, context);
  return program;
}

/** The version from package.json, found from this file so it works from any working folder. */
function packageVersion(): string {
  try {
    const json = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return json.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
