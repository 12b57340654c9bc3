// Mixed precision from a precision config: nodes a config gives another precision than the
// method's own (say fp16 for the attention, int4 for the rest) are left out of the method's pass
// and quantized by a pass of their own that sees only them. Half-precision passes run first: they
// rely on shape inference, which cannot see through the com.microsoft ops (MatMulNBits) that the
// weight-only passes leave behind.
import { type QuantizeMethod, type QuantizeMethodName, type QuantizeSettings, quantizeMethod } from './registry.js';

const MIXED_METHOD = {
  fp16: 'fp16',
  bf16: 'bf16',
  int8: 'int8-weight',
  int4: 'int4',
  int2: 'int2',
  ternary: 'ternary',
  binary: 'binary',
} as const satisfies Record<string, QuantizeMethodName>;

export type MixedPrecision = keyof typeof MIXED_METHOD;

export function isMixedPrecision(precision: string): precision is MixedPrecision {
  return Object.hasOwn(MIXED_METHOD, precision);
}

export interface QuantizeStep {
  method: QuantizeMethod;
  settings: QuantizeSettings;
}

const isHalf = (m: QuantizeMethod) => m.name === 'fp16' || m.name === 'bf16';

/** The passes that realise `settings` under `main`, in the order to run them (main's report first in the list's `main`). */
export function quantizeSteps(main: QuantizeMethod, settings: QuantizeSettings): { main: QuantizeStep; steps: QuantizeStep[] } {
  const { mixed = [], ...common } = settings;
  const mainStep: QuantizeStep = { method: main, settings: mixed.length === 0 ? common : { ...common, exclude: [...(common.exclude ?? []), ...mixed.map((r) => r.match)] } };
  const byPrecision = new Map<string, string[]>();
  for (const rule of mixed) byPrecision.set(rule.precision, [...(byPrecision.get(rule.precision) ?? []), rule.match]);
  const extra: QuantizeStep[] = [];
  for (const [precision, patterns] of byPrecision) {
    if (!isMixedPrecision(precision)) throw new Error(`precision config: ${precision} cannot be mixed in`);
    const method = quantizeMethod(MIXED_METHOD[precision]);
    // A node the config puts in half precision gets it even where the CPU policy would keep float32.
    extra.push({ method, settings: { ...common, only: patterns, force: isHalf(method) ? patterns : common.force } });
  }
  const steps = [mainStep, ...extra].sort((a, b) => Number(isHalf(b.method)) - Number(isHalf(a.method)));
  return { main: mainStep, steps };
}
