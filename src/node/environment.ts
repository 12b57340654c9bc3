// Where this run happens, for reports: shrink's and onnxruntime-node's versions, Node, the CPU.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import type { RunEnvironment } from '../pipeline/report-envelope.js';

const require = createRequire(import.meta.url);

let cached: RunEnvironment | undefined;

export function nodeEnvironment(): RunEnvironment {
  cached ??= {
    shrink: shrinkVersion(),
    runtime: `onnxruntime-node ${packageVersion('onnxruntime-node')}`,
    host: `node ${process.version}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.arch()}`,
  };
  return cached;
}

/** shrink's version from its package.json, found from this file so it works from any folder. */
export function shrinkVersion(): string {
  try {
    const json = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return json.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function packageVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
