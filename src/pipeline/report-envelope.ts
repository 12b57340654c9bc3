// One envelope for every command's --json: what ran (command, files), the size in one shape,
// warnings as structured objects, and where it ran (shrink, onnxruntime and Node versions, CPU),
// around the command's own findings. Keys are snake_case throughout, so a script reads every
// command's output the same way.
import type { PassWarning } from './pass.js';
import type { SizeChange } from './size-change.js';

/** Where a result was produced; the HTML report shows it too. */
export interface RunEnvironment {
  shrink: string;
  /** 'onnxruntime-node 1.30.0', 'onnxruntime-web 1.30.0'. */
  runtime: string;
  /** 'node v20.20.2' or the browser's user agent. */
  host: string;
  cpu: string;
  cores: number;
  platform: string;
}

export interface ReportEnvelope {
  command: string;
  /** The files read (a model, or `original` and `candidate`). */
  input: string | Record<string, string>;
  /** The file written; null when the command writes none. */
  output: string | null;
  size?: SizeChange;
  warnings: PassWarning[];
  environment: RunEnvironment;
}

/**
 * `body`'s fields inside the envelope; the envelope's own fields win, and warnings given as
 * plain strings (eval's) become structured ones.
 */
export function envelope<T extends object>(
  head: { command: string; input: ReportEnvelope['input']; output: string | null; size?: SizeChange; warnings?: readonly (PassWarning | string)[] },
  body: T,
  environment: RunEnvironment,
): ReportEnvelope & Omit<T, Exclude<keyof ReportEnvelope, 'size'>> {
  const warnings = (head.warnings ?? []).map((w) => (typeof w === 'string' ? { code: 'note', message: w } : w));
  const { command: _c, input: _i, output: _o, size: bodySize, warnings: _w, environment: _e, ...rest } = body as T & Partial<ReportEnvelope>;
  const size = head.size ?? bodySize;
  return {
    command: head.command,
    input: head.input,
    output: head.output,
    ...(size === undefined ? {} : { size }),
    ...(rest as Omit<T, Exclude<keyof ReportEnvelope, 'size'>>),
    warnings,
    environment,
  };
}

/** batchNormsFolded -> batch_norms_folded: every key of the JSON reports is snake_case. */
export function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** A record of counters (a pass's stats) with snake_case keys. */
export function snakeCaseKeys<V>(record: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [snakeCase(k), v]));
}
