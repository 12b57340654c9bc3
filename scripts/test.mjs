#!/usr/bin/env node
// Runs the test suite: every test/**/*.test.ts (or the files given) under node:test with tsx.
// Node 20's test runner does not expand globs or pick up .ts files by itself, hence this script.
// SHRINK_FROM_SOURCE=1: the CLI children the tests start (bin/shrink.js) run the TypeScript sources
// too, never a dist/ build that may be older (test/package-consumer.test.ts tests the build).
// SHRINK_NO_BENCH=1: commands skip their speed check (timing is noise in tests; test/speed-check.test.ts
// runs it).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  return readdirSync(dir).flatMap((entry) => {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) return findTests(full);
    return entry.endsWith('.test.ts') ? [full] : [];
  });
}

const args = process.argv.slice(2);
const files = args.length > 0 ? args : findTests('test').sort();
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...files],
  { stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', SHRINK_FROM_SOURCE: '1', SHRINK_NO_BENCH: '1' } },
);
process.exit(result.status ?? 1);
