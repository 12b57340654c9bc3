// Gradient rules of the normalization family (being written; see gradient-rules.ts).
import type { GradientRule } from '../gradient-context.js';

export const normalizationGradients: Record<string, GradientRule> = {};
