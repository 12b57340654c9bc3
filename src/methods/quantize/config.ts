// The precision config file (`shrink quantize --config FILE`): method settings plus per-node
// choices by op type, node name or name regex. Validated with zod so a mistake comes back as one
// line naming the key. Rules that keep nodes in float32 exclude them; rules that ask for the
// method's own precision force it (fp16 on an op the block list would keep); other precisions
// (fp16, bf16 and the weight-only ones) run as extra passes over just those nodes (mixed-precision.ts).
import { z } from 'zod';
import { isMixedPrecision, type MixedPrecision } from './mixed-precision.js';
import { QUANTIZE_METHOD_NAMES, type QuantizeMethodName, type QuantizeSettings } from './registry.js';

const PRECISIONS = ['fp32', 'fp16', 'bf16', 'int8', 'int4', 'int2', 'ternary', 'binary'] as const;

const ConfigSchema = z.strictObject({
  method: z.enum(QUANTIZE_METHOD_NAMES).optional(),
  blockSize: z.number().int().positive().optional(),
  symmetric: z.boolean().optional(),
  rounding: z.enum(['rtn', 'hqq', 'search', 'kquant']).optional(),
  scaleType: z.enum(['float32', 'float16']).optional(),
  accuracyLevel: z.number().int().min(0).max(4).optional(),
  compute: z.enum(['ort-cpu', 'all', 'none']).optional(),
  keepIoTypes: z.boolean().optional(),
  blockOps: z.array(z.string().min(1)).optional(),
  exclude: z.array(z.string().min(1)).optional(),
  keepFirstLast: z.number().int().min(0).optional(),
  nodes: z
    .array(
      z.strictObject({
        match: z.string().min(1),
        precision: z.enum(PRECISIONS),
      }),
    )
    .optional(),
});

export type QuantizeConfig = z.infer<typeof ConfigSchema>;

/** The precision each method gives the nodes it converts. */
const METHOD_PRECISION: Record<QuantizeMethodName, string> = {
  fp16: 'fp16',
  bf16: 'bf16',
  'int8-weight': 'int8',
  int4: 'int4',
  int2: 'int2',
  ternary: 'ternary',
  binary: 'binary',
  'dynamic-int8': 'int8',
  'static-int8': 'int8',
};

/** Parses and validates a config file's text; errors are one line starting with `where`. */
export function parseQuantizeConfig(text: string, where: string): QuantizeConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${where}: not valid JSON (${(error as Error).message})`);
  }
  const parsed = ConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const keys = 'keys' in issue && Array.isArray(issue.keys) ? issue.keys.join(', ') : '';
    const path = [...issue.path.map(String), keys].filter((p) => p !== '').join('.');
    throw new Error(`${where}: ${path === '' ? '' : `'${path}': `}${issue.message}`);
  }
  return parsed.data;
}

/** Settings for `method` from a config (command-line values given in `base` win). */
export function settingsFromConfig(config: QuantizeConfig, method: QuantizeMethodName, base: QuantizeSettings, where: string): QuantizeSettings {
  const exclude = [...(config.exclude ?? []), ...(base.exclude ?? [])];
  const force = [...(base.force ?? [])];
  const mixed: { match: string; precision: MixedPrecision }[] = [];
  for (const [i, rule] of (config.nodes ?? []).entries()) {
    if (rule.precision === 'fp32') exclude.push(rule.match);
    else if (rule.precision === METHOD_PRECISION[method]) force.push(rule.match);
    else if (isMixedPrecision(rule.precision)) mixed.push({ match: rule.match, precision: rule.precision });
    else throw new Error(`${where}: 'nodes.${i}.precision': ${rule.precision} cannot be mixed into --method ${method}`);
  }
  return {
    blockSize: base.blockSize ?? config.blockSize,
    symmetric: base.symmetric ?? config.symmetric,
    rounding: base.rounding ?? config.rounding,
    scaleType: base.scaleType ?? config.scaleType,
    accuracyLevel: base.accuracyLevel ?? config.accuracyLevel,
    compute: base.compute ?? config.compute,
    keepIoTypes: base.keepIoTypes ?? config.keepIoTypes,
    blockOps: [...(config.blockOps ?? []), ...(base.blockOps ?? [])],
    exclude,
    ...(mixed.length === 0 ? {} : { mixed }),
    keepFirstLast: base.keepFirstLast ?? config.keepFirstLast,
    force,
    // Settings the config file does not carry pass through from the command line untouched.
    perChannel: base.perChannel,
    reduceRange: base.reduceRange,
    weightType: base.weightType,
    activationType: base.activationType,
    format: base.format,
    only: base.only,
    calibration: base.calibration,
    calibrator: base.calibrator,
    percentile: base.percentile,
    algorithm: base.algorithm,
    actOrder: base.actOrder,
    awqClip: base.awqClip,
    calibrationSamples: base.calibrationSamples,
    smooth: base.smooth,
    biasCorrection: base.biasCorrection,
    deadZones: base.deadZones,
    floatPrefix: base.floatPrefix,
  };
}
