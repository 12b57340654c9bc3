// `shrink studio [--port N] [--host H] [--open] [--dir D]`: serves the studio page (studio/, built
// with Vite) on this machine and waits until Ctrl+C. Everything happens in the browser tab: the
// server only hands out the page's files.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { startStudioServer } from '../node/studio-server.js';
import { onnxruntimeWebDist, studioFolder } from '../node/studio-build.js';
import { UsageError } from './errors.js';
import type { CliContext } from './main.js';

interface StudioFlags {
  port: string;
  host: string;
  open?: boolean;
  dir?: string;
}

/** The port `shrink studio` listens on unless told otherwise. */
export const STUDIO_PORT = 5183;

export function registerStudio(program: Command, { io }: CliContext): void {
  program
    .command('studio')
    .description('serve the studio page: drop a model, inspect it, run a recipe, compare and download, all in the browser')
    .option('--port <n>', 'port to listen on (0: any free port)', String(STUDIO_PORT))
    .option('--host <address>', 'address to listen on (other machines reach the page only if you change it)', '127.0.0.1')
    .option('--open', 'open the page in the default browser')
    .option('--dir <folder>', 'serve this built page instead of the package\'s own')
    .action(async (flags: StudioFlags) => {
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected a port number 0-65535, got '${flags.port}'`);
      const dir = flags.dir ?? (await studioFolder((line) => io.stderr(`shrink: ${line}\n`)));
      const ortDir = existsSync(join(dir, 'ort')) ? undefined : onnxruntimeWebDist();
      const server = await startStudioServer({ dir, ortDir, host: flags.host, port });
      io.stdout(`shrink studio: ${server.url} (serving ${dir}; Ctrl+C to stop)\n`);
      if (flags.open) openInBrowser(server.url, (line) => io.stderr(`shrink: ${line}\n`));
      await new Promise<void>((done) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          done();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
    });
}

function openInBrowser(url: string, note: (line: string) => void): void {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  const child = spawn(command, args, { stdio: 'ignore', detached: true });
  child.on('error', () => note(`could not open a browser (${command}): open ${url} yourself`));
  child.unref();
}
