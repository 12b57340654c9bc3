// Gradient rules of the pool family (being written; see gradient-rules.ts).
import type { GradientRule } from '../gradient-context.js';

export const poolGradients: Record<string, GradientRule> = {};
