// Shape and type inference: the public surface. Rules live one op family per file and are
// listed in rules.ts; dims.ts holds the symbolic dim arithmetic.
export { inferShapes, type InferShapesOptions, type ShapeInferenceResult, type UninferredNode } from './infer.js';
export { SHAPE_RULES } from './rules.js';
export { type InferredValue, type RuleOutput, type ShapeRule, RuleContext, InferenceGap } from './context.js';
export { type Dim, evaluateDim, broadcastShapes, isStaticShape } from './dims.js';
