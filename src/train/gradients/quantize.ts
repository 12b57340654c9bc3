// Gradient rules of the quantize family (being written; see gradient-rules.ts).
import type { GradientRule } from '../gradient-context.js';

export const quantizeGradients: Record<string, GradientRule> = {};
