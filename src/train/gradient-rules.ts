// The registry of gradient rules, keyed by op type (ai.onnx) or `domain:op` for other domains.
// Each family of ops keeps its rules in one file under gradients/.
import { isStandardDomain } from '../ir/constants.js';
import type { GradientRule } from './gradient-context.js';
import { activationGradients } from './gradients/activations.js';
import { arithmeticGradients } from './gradients/arithmetic.js';
import { convGradients } from './gradients/conv.js';
import { matmulGradients } from './gradients/matmul.js';
import { normalizationGradients } from './gradients/normalization.js';
import { poolGradients } from './gradients/pool.js';
import { quantizeGradients } from './gradients/quantize.js';
import { reduceGradients } from './gradients/reduce.js';
import { resizeGradients } from './gradients/resize.js';
import { shapeGradients } from './gradients/shape.js';

export function ruleKey(domain: string, opType: string): string {
  return isStandardDomain(domain) ? opType : `${domain}:${opType}`;
}

const FAMILIES: Record<string, GradientRule>[] = [
  arithmeticGradients,
  matmulGradients,
  reduceGradients,
  activationGradients,
  convGradients,
  poolGradients,
  normalizationGradients,
  shapeGradients,
  quantizeGradients,
  resizeGradients,
];

export const GRADIENT_RULES: ReadonlyMap<string, GradientRule> = new Map(FAMILIES.flatMap((family) => Object.entries(family)));
