// The recipes the studio offers ready-made, as the YAML a user would write in a recipe file
// (`shrink run recipe.yaml model.onnx`): picking one fills the editor, where it can be changed.
export interface BuiltInRecipe {
  id: string;
  label: string;
  text: string;
}

export const BUILT_IN_RECIPES: readonly BuiltInRecipe[] = [
  {
    id: 'int8-weight',
    label: 'int8 weights (per channel)',
    text: `description: int8 weights per channel, activations stay float
steps:
  - optimize: {}
  - quantize:
      method: int8-weight
  - gate:
      min_cosine: 0.98
`,
  },
  {
    id: 'static-int8',
    label: 'static int8 (QDQ, calibrated on the samples)',
    text: `description: int8 weights and activations, calibrated on the samples
steps:
  - optimize: {}
  - quantize:
      method: static-int8
      calibrator: entropy
`,
  },
  {
    id: 'dynamic-int8',
    label: 'dynamic int8',
    text: `description: int8 weights, activations quantized at run time
steps:
  - quantize:
      method: dynamic-int8
`,
  },
  {
    id: 'fp16',
    label: 'float16',
    text: `description: float16 weights and compute where onnxruntime has kernels
steps:
  - quantize:
      method: fp16
`,
  },
  {
    id: 'prune-int8',
    label: 'prune 50% + int8 weights',
    text: `description: half of each layer's weights zeroed by magnitude, then int8
steps:
  - prune:
      method: magnitude
      sparsity: 0.5
  - quantize:
      method: int8-weight
`,
  },
  {
    id: 'optimize',
    label: 'optimize only (lossless)',
    text: `steps:
  - optimize:
      level: full
`,
  },
];
