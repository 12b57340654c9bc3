// shrink's library surface, usable in Node and in a browser worker. Node-only helpers (model
// files on disk, onnxruntime-node) are exported from src/node/index.ts ("shrink/node").

export { DataType, dataTypeInfo, dataTypeName, byteLengthOf, type DataTypeInfo } from './ir/dtype.js';
export { Tensor } from './ir/tensor.js';
export { Node } from './ir/node.js';
export { Graph } from './ir/graph.js';
export { Model, type OpsetImport, type MetadataEntry } from './ir/model.js';
export { attr, type Attribute, type AttributeKind } from './ir/attribute.js';
export { constantValue, constantNodeValue, allConstants, type ConstantSource } from './ir/constants.js';
export { tensorTypeOf, makeValueInfo, formatType, type TensorType, type Dim } from './ir/value-info.js';

export { readModel, writeModel, type ReadModelOptions, type WriteModelOptions, type ExternalDataOptions, type ExternalDataSink } from './onnx/model-io.js';
export { decodeModelProto, encodeModelProto, PROTOBUF_LIMIT } from './onnx/codec.js';
export { memoryExternalData, type ExternalDataSource } from './onnx/external-data.js';

export { ModelSession, toOrtTensor, fromOrtTensor, withExtraOutputs, type SessionOptions, type GraphOptimization, type Feeds } from './runtime/session.js';
export type { OrtModule, OrtTensor } from './runtime/ort-types.js';

export { topologicalSort, nodeOrder } from './ir/toposort.js';
export { validateGraph, assertValidGraph, type GraphIssue, type GraphIssueCode } from './ir/validate.js';
export { GraphBuilder, buildModel, type NodeOptions } from './ir/builder.js';

export { runPass, type Pass, type PassReport, type PassContext, type PassWarning } from './pipeline/pass.js';
// Recipes: Model in, { model, report } out; the CLI and a page run these same functions.
export type { RecipeContext } from './pipeline/context.js';
export { quantize, quantizeHints, type QuantizeOptions, type QuantizeResult } from './pipeline/quantize.js';
export {
  quantizeForTransformersJs,
  planTransformersJs,
  dtypeRecipe,
  parseTransformersJsDtypes,
  transformersJsFileName,
  transformersJsDataFileName,
  transformersJsInputs,
  transformersJsOpProblems,
  updateTransformersJsConfig,
  missingConfigDtypes,
  TRANSFORMERS_JS_DTYPES,
  TRANSFORMERS_JS_SUFFIXES,
  TRANSFORMERS_JS_VERSION,
  type BuiltDtype,
  type TransformersJsDtype,
  type TransformersJsOutput,
  type TransformersJsSettings,
  type TransformersJsDtypeResult,
} from './pipeline/transformers-js.js';
export { gatherInt8RowsPass, quantizeGatherRows } from './methods/quantize/gather-int8-rows.js';
export { matMulBnb4Pass, quantizeMatMulsBnb4 } from './methods/quantize/matmul-bnb4.js';
export { optimize, type OptimizeStepOptions, type OptimizeReport, type OptimizeResult, type PassSummary } from './pipeline/optimize.js';
export { evaluate, EvalGateError, type EvaluateOptions, type EvaluateReport } from './pipeline/evaluate.js';
export { evaluateDecoders, type DecoderEvalOptions, type DecoderEvalRow } from './pipeline/decoder-eval.js';
export { decoderSamples, decoderSignature, generate, perplexity, type DecoderSignature } from './eval/decoder.js';
export { train, InputModelError, type TrainStepOptions, type TrainStepReport, type TrainStepResult, type EpochSummary } from './pipeline/train.js';
export { qat, type QatStepOptions, type QatStepReport, type QatStepResult } from './pipeline/qat.js';
export { staticInt8Qat, type StaticQatOptions, type StaticQatReport, type StaticQatResult } from './pipeline/qat-static.js';
export { requantize, staticFakeQuant, type StaticFakeQuantModel, type StaticQatUnits } from './train/qat-static-graph.js';
export { distill, type DistillStepOptions, type DistillStepReport, type DistillStepResult } from './pipeline/distill.js';
export { prune, pruneHints, type PruneOptions, type PruneResult, type PruneData, type PruneRecovery } from './pipeline/prune.js';
export { formatPruneReport, type PruneReport } from './pipeline/prune-report.js';
export { arraySamples, arrayLabels } from './pipeline/prune-data.js';
export { PRUNE_METHODS, PRUNE_METHOD_NAMES, pruneMethod, type PruneMethod, type PruneMethodName, type PruneSettings } from './methods/prune/registry.js';
export { planChannels, type ChannelOptions, type ChannelPlan } from './methods/prune/channels.js';
export { countMacs, type MacCount } from './methods/prune/macs.js';
export { cluster, clusterHints, checkClusterSettings, type ClusterStepOptions, type ClusterResult, type ClusterData, type ClusterFinetune } from './pipeline/cluster.js';
export { formatClusterReport, type ClusterReport, type ClusterTensorEntry, type ClusterFinetuneReport } from './pipeline/cluster-report.js';
export { clusterPass, type ClusterOptions, type ClusteredTensor } from './methods/cluster/cluster.js';
export { findClusters, type FoundCluster } from './methods/cluster/decode-graph.js';
export { lowRank, lowRankHints, type LowRankStepOptions, type LowRankResult } from './pipeline/lowrank.js';
export { formatLowRankReport, type LowRankReport, type LowRankLayerEntry } from './pipeline/lowrank-report.js';
export { lowRankPass, type LowRankOptions, type LowRankDetails, type FactoredLayer } from './methods/lowrank/lowrank.js';
export { recoverByTraining, type RecoveryData, type RecoverySettings, type RecoveryReport } from './pipeline/recovery.js';
export { analyzeChannels, type ChannelAnalysis, type ChannelGroup, type ChannelBlock } from './graph-edit/channel-groups.js';
export { removeChannels, zeroChannels, type RewrittenTensor } from './graph-edit/channel-rewrite.js';
export { runRecipe, type RecipeData, type RecipeReport, type RecipeResult, type RecipeStepReport } from './pipeline/run-recipe.js';
export { parseRecipe, recipeFromData, type Recipe, type RecipeStep } from './pipeline/recipe.js';
export { deepCompressionRecipe, type DeepCompressionSettings } from './pipeline/recipes/deep-compression.js';
export type { RecipeStage } from './pipeline/recipe-stages.js';
export { checkGate, describeMiss, GateFailedError, type Gate, type GateMiss } from './pipeline/gate.js';
export { verdictOf, DEFAULT_VERDICT, type Verdict, type VerdictThresholds } from './pipeline/verdict.js';
export { measureFidelity, comparisonWontFit, type FidelityOptions } from './pipeline/fidelity.js';
export { searchFp32Layers, type Fp32SearchOptions, type Fp32SearchResult, type Fp32SearchRound } from './pipeline/fp32-search.js';
export { envelope, snakeCase, snakeCaseKeys, type ReportEnvelope, type RunEnvironment } from './pipeline/report-envelope.js';
export { sizeChange, formatSizeChange, type SizeChange } from './pipeline/size-change.js';
export { modelBytes } from './onnx/model-size.js';
export type { StagedModel } from './runtime/ort-types.js';
export type { TensorSpill } from './ir/graph.js';
export { silentProgress, type Progress } from './pipeline/progress.js';

export { parseNpy, writeNpy, npyToTensor, tensorToNpy, type NpyArray } from './eval/npy.js';
export { readNpz, writeNpz, listNpz } from './eval/npz.js';
export { memoryByteSource, blobByteSource, type ByteSource } from './eval/byte-source.js';
export { modelSignature, checkSample, sampleMismatches, SampleMismatchError, type ModelSignature, type ModelValue } from './eval/match-inputs.js';
export {
  checkedSamples,
  inBatches,
  firstSamples,
  sampleFeeds,
  jsonSamples,
  testDataSamples,
  memoryFileTree,
  type Sample,
  type SampleSource,
  type FileTree,
} from './eval/samples.js';
export { npySamples, npzSamples } from './eval/sample-arrays.js';
export { generatedSamples, GENERATED_DATA_WARNING, type GenerateOptions } from './eval/sample-generate.js';
export {
  createMetricAccumulator,
  computeMetrics,
  createAccuracyAccumulator,
  createCustomMetricAccumulator,
  predictedClasses,
  type OutputMetrics,
  type MetricOptions,
  type CustomMetric,
} from './eval/metrics.js';
export { parseIdx, type IdxArray } from './eval/idx.js';
export { inspectModel, type InspectReport } from './inspect/inspect.js';
export { compareModels, type CompareOptions } from './eval/compare.js';
export { planLayers, createLayerAccumulator, type LayerPlan, type LayerPair, type PerLayerOptions } from './eval/per-layer.js';
export { parseLabels, labelsFromNpy, labelsFromJson, type Labels } from './eval/labels.js';
export {
  jsonNumber,
  numberFromJson,
  SQNR_CAP_DB,
  type EvalReport,
  type OutputReport,
  type LayerReport,
  type AccuracyReport,
  type CustomMetricReport,
  type JsonNumber,
} from './eval/eval-report.js';
export { inferShapes, evaluateDim, SHAPE_RULES, type InferShapesOptions, type ShapeInferenceResult, type UninferredNode } from './optimize/shape-inference/index.js';
export {
  benchmarkModels,
  withMemory,
  latencyStats,
  quantile,
  BENCH_DEFAULTS,
  type BenchReport,
  type BenchModel,
  type BenchOptions,
  type BenchModelResult,
  type MemoryUsage,
} from './eval/benchmark.js';
export { benchInputs, benchDims } from './eval/bench-inputs.js';
export { renderReportHtml, type ReportAssets } from './report/html.js';
export { reportCharts, type ReportInput, type ReportModel } from './report/report-input.js';
export { optimizeModel } from './optimize/optimize.js';
export { OPTIMIZER_PASSES } from './optimize/passes.js';
export { float16Pass, type Float16Options } from './methods/quantize/fp16.js';
export { QUANTIZE_METHODS, quantizeMethod } from './methods/quantize/registry.js';
export { buildQuantizeReport, type QuantizeReport } from './pipeline/quantize-report.js';
export { quantizeWeightsOnly, weightOnlyPass, WEIGHT_ONLY_METHODS } from './methods/quantize/weight-only.js';
export * from './kernels/float16.js';
export { ctcAlphabet, decodeCtcGreedy, missingCharacters } from './eval/ctc.js';
export { sileroProbabilities } from './eval/silero.js';
export { blamePass, compareOnSamples, CHANGED_OUTPUT_RELATIVE_ERROR, type PassBlame, type CompareOutputs } from './optimize/blame-pass.js';
export { checkModelForOptimize, assertOptimizable, ModelLoadError } from './optimize/check-model.js';
// Training on ONNX graphs (backward graphs in standard ops, run in onnxruntime).
export { addGradients, type GradientOptions, type GradientResult } from './train/autodiff.js';
export { GRADIENT_RULES, ruleKey } from './train/gradient-rules.js';
export { GradientContext, GradientError, type GradientRule } from './train/gradient-context.js';
export { buildTrainingStep, LABEL_INPUT, type TrainingSpec, type TrainingStep, type LossSpec } from './train/training-graph.js';
export { Trainer, withWeights, type TrainingData, type FitOptions, type EpochRecord, type TrainerState } from './train/trainer.js';
export { arrayTrainingData, type ArrayField } from './train/array-data.js';
export { imageTrainingData, classifierAccuracy } from './train/classification.js';
export { crossEntropy, meanSquaredError, distillationKl } from './train/losses.js';
export { emitOptimizer, clipByGlobalNorm, type OptimizerSpec } from './train/optimizers.js';
export { learningRate, type Schedule } from './train/schedules.js';
export { mlpModel, cnnModel } from './train/init-models.js';
export { insertFakeQuant, quantizationAwareTraining, type QatOptions, type QatResult } from './train/qat.js';
// The lower-level distillation loop; the recipe step `distill` (above) wraps it with a report.
export { distill as distillStudent, type DistillData, type FeatureMatch, type DistillOptions, type DistillResult } from './train/distill.js';
// The transport pack (docs/pack-format.md): decodes to the packed ONNX bytes exactly; the decoder needs nothing else of shrink.
export { packOnnx, type PackOptions, type PackReport, type PackResult } from './methods/pack/pack.js';
export { unpack, unpackStream, unpackStreamToBytes, PackError } from './onnx/pack-decode.js';
