// The `shrink` command line. Each command lives in its own file and exports a `register`
// function; this file only builds the program, lists the commands, and turns every outcome into
// an exit code (0 ok, 1 failure, 2 usage) with at most one line of error text. Options every
// command honours are the program's own (--verbose, --no-progress: commander accepts them before
// or after the command name; commands read them through cliRecipeContext), and SHRINK_DEBUG.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ExitCode, exitCodeFor, formatError } from './errors.js';

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

/**
 * One line per command, in the order `shrink --help` lists them. Command files are imported only
 * when their command runs (all of them for help and for a name that needs suggestions), so
 * `shrink --version` loads none and `shrink inspect` never loads onnxruntime or the quantizers:
 * module loading was most of the CLI's start-up time (bench/results/cli-startup.md).
 */
const COMMANDS: { name: string; load: () => Promise<RegisterCommand> }[] = [
  { name: 'inspect', load: async () => (await import('./inspect-command.js')).registerInspect },
  { name: 'eval', load: async () => (await import('./eval-command.js')).registerEval },
  { name: 'bench', load: async () => (await import('./bench-command.js')).registerBench },
  { name: 'optimize', load: async () => (await import('./optimize-command.js')).registerOptimize },
  { name: 'quantize', load: async () => (await import('./quantize-command.js')).registerQuantize },
  { name: 'run', load: async () => (await import('./run-command.js')).registerRun },
  { name: 'train', load: async () => (await import('./train-command.js')).registerTrain },
  { name: 'qat', load: async () => (await import('./qat-command.js')).registerQat },
  { name: 'distill', load: async () => (await import('./distill-command.js')).registerDistill },
  { name: 'prune', load: async () => (await import('./prune-command.js')).registerPrune },
  { name: 'lowrank', load: async () => (await import('./lowrank-command.js')).registerLowRank },
  { name: 'cluster', load: async () => (await import('./cluster-command.js')).registerCluster },
  { name: 'pack', load: async () => (await import('./pack-command.js')).registerPack },
  { name: 'unpack', load: async () => (await import('./pack-command.js')).registerUnpack },
  { name: 'compress', load: async () => (await import('./compress-command.js')).registerCompress },
  { name: 'studio', load: async () => (await import('./studio-command.js')).registerStudio },
  { name: 'auto', load: async () => (await import('./auto-command.js')).registerAuto },
  { name: 'worker', load: async () => (await import('./worker-command.js')).registerWorker },
];

/**
 * The commands `argv` needs: the one it names (the first argument that is not an option: the
 * program's own options take no values), none for a bare --version, every one otherwise (help,
 * no command, or an unknown name that commander answers with suggestions).
 */
function commandsFor(argv: readonly string[]): typeof COMMANDS {
  const first = argv.find((arg) => !arg.startsWith('-'));
  const named = COMMANDS.find((c) => c.name === first);
  if (named) return [named];
  if (first === undefined && argv.some((arg) => arg === '--version' || arg === '-V') && !argv.some((arg) => arg === '--help' || arg === '-h')) return [];
  return COMMANDS;
}

/** The register functions of the commands `argv` needs (all of them when no argv is given), in help order. */
export async function loadCommands(argv?: readonly string[]): Promise<RegisterCommand[]> {
  return Promise.all((argv === undefined ? COMMANDS : commandsFor(argv)).map((c) => c.load()));
}

const processIO: CliIO = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** Runs the CLI on `argv` (the arguments after the program name) and returns the exit code. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const program = buildProgram({ io }, await loadCommands(argv));
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

/** The program with the given commands (see loadCommands) registered. */
export function buildProgram(context: CliContext, commands: readonly RegisterCommand[]): Command {
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
  for (const register of commands) register(program, context);
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
