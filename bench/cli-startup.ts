// CLI start-up: wall time of `shrink --version` and of `shrink inspect` on a small model (the
// Fashion-MNIST MLP, 0.9 MB), each a fresh process as a user starts it, for three ways of running:
//   before   the CLI as it was before the package was compiled (commit BEFORE_COMMIT: bin/shrink.js
//            registered tsx and imported every command's TypeScript sources), extracted with
//            `git archive` into bench/work/ and run against today's node_modules;
//   sources  today's bin with SHRINK_FROM_SOURCE=1 (tsx on the sources: what the tests run);
//   dist     today's bin on the compiled dist/ (what the npm package runs; built first).
// Beside them `node -e 0`, Node's own start-up, the floor. Runs go in rounds (every variant and
// command once per round), so a busy spell of the machine hits all of them alike.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { machineInfo } from './lib/machine.js';
import { median, round } from './lib/stats.js';
import type { Bench, BenchOutput } from './run.js';

/** The last commit whose CLI ran its TypeScript sources through tsx at every start. */
const BEFORE_COMMIT = '8fee293922c6808315f695709a5a225ac89f6c68';
const SMALL_MODEL = 'models/fashion-mnist/mlp.onnx';
const ROUNDS = 20;
/** The goal from issue 11 for `shrink --version`. */
const VERSION_GOAL_MS = 500;

interface Variant {
  name: string;
  what: string;
  argv: (args: string[]) => string[];
  env?: Record<string, string>;
}

interface Case {
  variant: string;
  command: string;
  samplesMs: number[];
  medianMs: number;
  minMs: number;
}

function beforeCli(root: string, log: (line: string) => void): string | null {
  const folder = path.join(root, 'bench/work/cli-startup-before');
  const bin = path.join(folder, 'bin/shrink.js');
  if (fs.existsSync(bin)) return bin;
  try {
    fs.mkdirSync(folder, { recursive: true });
    const archive = execFileSync('git', ['archive', BEFORE_COMMIT, 'bin', 'src', 'package.json'], { cwd: root, maxBuffer: 256 * 2 ** 20 });
    execFileSync('tar', ['-x', '-C', folder], { input: archive });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(folder, 'node_modules'));
    return bin;
  } catch (error) {
    log(`no 'before' variant: cannot extract ${BEFORE_COMMIT.slice(0, 7)} (${(error as Error).message.split('\n')[0]})`);
    fs.rmSync(folder, { recursive: true, force: true });
    return null;
  }
}

function timeOnce(argv: string[], env: Record<string, string> | undefined): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, argv, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  const ms = performance.now() - started;
  if (result.status !== 0) throw new Error(`node ${argv.join(' ')} failed (${result.status}): ${result.stderr}`);
  return ms;
}

async function run(log: (line: string) => void): Promise<BenchOutput> {
  const root = process.cwd();
  log('building dist/ (npm run build)');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const bin = path.join(root, 'bin/shrink.js');
  const variants: Variant[] = [];
  const before = beforeCli(root, log);
  if (before) variants.push({ name: 'before', what: `${BEFORE_COMMIT.slice(0, 7)}: tsx on the sources, every command loaded`, argv: (args) => [before, ...args] });
  variants.push({ name: 'sources', what: 'today, SHRINK_FROM_SOURCE=1: tsx on the sources, only the named command loaded', argv: (args) => [bin, ...args], env: { SHRINK_FROM_SOURCE: '1' } });
  variants.push({ name: 'dist', what: 'today, compiled dist/ (the npm package), only the named command loaded', argv: (args) => [bin, ...args], env: { SHRINK_FROM_SOURCE: '' } });
  const commands: { name: string; args: string[] }[] = [
    { name: '--version', args: ['--version'] },
    { name: `inspect ${path.basename(SMALL_MODEL)}`, args: ['inspect', SMALL_MODEL] },
  ];
  const cases: Case[] = [];
  const samples = new Map<string, number[]>();
  const key = (variant: string, command: string) => `${variant}\u0000${command}`;
  // One warm-up round: the first start after a build reads every file from disk.
  for (const variant of variants) for (const command of commands) timeOnce(variant.argv(command.args), variant.env);
  const nodeFloor: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    nodeFloor.push(timeOnce(['-e', '0'], undefined));
    for (const variant of variants) {
      for (const command of commands) {
        const k = key(variant.name, command.name);
        samples.set(k, [...(samples.get(k) ?? []), timeOnce(variant.argv(command.args), variant.env)]);
      }
    }
    if ((r + 1) % 5 === 0) log(`round ${r + 1}/${ROUNDS}`);
  }
  for (const variant of variants) {
    for (const command of commands) {
      const ms = samples.get(key(variant.name, command.name)) ?? [];
      cases.push({ variant: variant.name, command: command.name, samplesMs: ms.map(round), medianMs: round(median(ms)), minMs: round(Math.min(...ms)) });
    }
  }
  const floor = { samplesMs: nodeFloor.map(round), medianMs: round(median(nodeFloor)), minMs: round(Math.min(...nodeFloor)) };
  const version = cases.find((c) => c.variant === 'dist' && c.command === '--version');
  const json = {
    machine: machineInfo(),
    beforeCommit: BEFORE_COMMIT,
    model: { file: SMALL_MODEL, bytes: fs.statSync(SMALL_MODEL).size },
    rounds: ROUNDS,
    variants: variants.map(({ name, what }) => ({ name, what })),
    nodeStartup: floor,
    cases,
    versionGoalMs: VERSION_GOAL_MS,
    versionGoalMet: version !== undefined && version.medianMs < VERSION_GOAL_MS,
  };
  return { json, markdown: markdown(json.machine, variants, commands.map((c) => c.name), cases, floor.medianMs) };
}

function markdown(machine: ReturnType<typeof machineInfo>, variants: Variant[], commands: string[], cases: Case[], floorMs: number): string {
  const cell = (variant: string, command: string) => {
    const c = cases.find((x) => x.variant === variant && x.command === command);
    return c ? `${c.medianMs.toFixed(0)} ms (min ${c.minMs.toFixed(0)})` : 'n/a';
  };
  const lines = [
    '# CLI start-up',
    '',
    `Wall time of one \`shrink\` process, median of ${ROUNDS} runs in rounds (${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, ${machine.date}, load ${machine.loadAverage}). Node alone (\`node -e 0\`): ${floorMs.toFixed(0)} ms.`,
    '',
    `| variant | ${commands.map((c) => `\`shrink ${c}\``).join(' | ')} |`,
    `|---|${commands.map(() => '---:').join('|')}|`,
    ...variants.map((v) => `| ${v.name}: ${v.what} | ${commands.map((c) => cell(v.name, c)).join(' | ')} |`),
    '',
  ];
  const before = cases.find((c) => c.variant === 'before' && c.command === '--version');
  const after = cases.find((c) => c.variant === 'dist' && c.command === '--version');
  if (before && after) {
    lines.push(`\`shrink --version\`: ${before.medianMs.toFixed(0)} ms before, ${after.medianMs.toFixed(0)} ms from dist/ (${(before.medianMs / after.medianMs).toFixed(1)}x; goal < ${VERSION_GOAL_MS} ms).`, '');
  }
  return `${lines.join('\n')}\n`;
}

export const cliStartupBench: Bench = { name: 'cli-startup', run };
