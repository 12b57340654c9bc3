// Gradient rules of the conv family (being written; see gradient-rules.ts).
import type { GradientRule } from '../gradient-context.js';

export const convGradients: Record<string, GradientRule> = {};
