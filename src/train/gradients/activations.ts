// Gradient rules of the activations family (being written; see gradient-rules.ts).
import type { GradientRule } from '../gradient-context.js';

export const activationGradients: Record<string, GradientRule> = {};
