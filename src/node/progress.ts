// Progress for the Node CLI: a bar on an interactive terminal, plain lines (about every 10%)
// when output goes to a file or CI log, where a redrawn bar would turn into noise.
import cliProgress from 'cli-progress';
import { type Progress, silentProgress } from '../pipeline/progress.js';

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY) return barProgress(stream);
  return lineProgress((line) => stream.write(`${line}\n`));
}

function barProgress(stream: NodeJS.WriteStream): Progress {
  let bar: cliProgress.SingleBar | undefined;
  return {
    start(label, total) {
      bar = new cliProgress.SingleBar(
        { stream, format: `${label} [{bar}] {value}/{total} {eta_formatted}`, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total ?? 0, 0);
    },
    tick(steps = 1) {
      bar?.increment(steps);
    },
    done() {
      bar?.stop();
      bar = undefined;
    },
  };
}

export function lineProgress(write: (line: string) => void): Progress {
  let label = '';
  let total: number | undefined;
  let count = 0;
  let nextReport = 0;
  const started = { at: 0 };
  return {
    start(l, t) {
      label = l;
      total = t;
      count = 0;
      nextReport = 0;
      started.at = Date.now();
      write(`${label}: started${total === undefined ? '' : ` (${total} steps)`}`);
    },
    tick(steps = 1) {
      count += steps;
      const fraction = total === undefined || total === 0 ? undefined : count / total;
      if (fraction !== undefined && fraction >= nextReport && fraction < 1) {
        write(`${label}: ${count}/${total} (${Math.floor(fraction * 100)}%)`);
        nextReport = Math.floor(fraction * 10 + 1) / 10;
      }
    },
    done() {
      write(`${label}: done, ${count} steps in ${((Date.now() - started.at) / 1000).toFixed(1)} s`);
    },
  };
}

/** A bar when stderr is a terminal, plain lines through `write` otherwise; nothing when not wanted. */
export function stderrProgress(wanted: boolean, write: (line: string) => void): Progress {
  if (!wanted) return silentProgress;
  return process.stderr.isTTY ? terminalProgress(process.stderr) : lineProgress(write);
}
