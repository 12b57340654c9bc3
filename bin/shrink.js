#!/usr/bin/env node
// The `shrink` executable: lets Node 20 load the TypeScript sources (tsx), then runs the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// SHRINK_DEBUG=1: the peak memory of this process (child processes, such as a large model's load
// check, are not counted), for benchmarks and for users sizing a machine.
if (Number(process.env.SHRINK_DEBUG ?? 0) >= 1) {
  process.stderr.write(`shrink: debug: peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB (this process)\n`);
}
// Exit only once stdout has taken everything, so a large --json report reaches a pipe whole.
process.stdout.write('', () => process.exit(code));
