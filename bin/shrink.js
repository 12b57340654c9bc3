#!/usr/bin/env node
// The `shrink` executable: lets Node 20 load the TypeScript sources (tsx), then runs the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// Exit only once stdout has taken everything, so a large --json report reaches a pipe whole.
process.stdout.write('', () => process.exit(code));
