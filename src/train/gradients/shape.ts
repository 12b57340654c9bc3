// Gradient rules of the shape family (being written; see gradient-rules.ts).
import type { GradientRule } from '../gradient-context.js';

export const shapeGradients: Record<string, GradientRule> = {};
