// Node-only entry ("shrink/node"): model files on disk and onnxruntime-node.
export { loadModel, saveModel, saveModelVerified, folderExternalData, modelFileBytes, externalDataFiles, type SaveOptions, type SavedModel } from './model-files.js';
export { stageModel } from './model-stage.js';
export { scratchSpill, type ScratchSpill } from './tensor-spill.js';
export { checkLoads } from './load-check.js';
export { nodeEnvironment, shrinkVersion } from './environment.js';
export { nodeOrt } from './ort-node.js';
export { openSampleFile, folderFileTree, fileByteSource, type OpenSamplesOptions } from './sample-files.js';
export { terminalProgress, lineProgress } from './progress.js';
export { loadCustomMetric, type LoadedMetric } from './custom-metric.js';
export { measureMemory } from './memory.js';
export { readReportAssets, writeReportFile, writeEvalReportFile, reportModelFromFile } from './report-assets.js';
export { loadWebOrt } from './ort-web.js';
export { readIdxImageSet, FASHION_MNIST_DIR, type ImageSet } from './image-datasets.js';
export { saveCheckpoint, loadCheckpointState, CHECKPOINT_MODEL, CHECKPOINT_STATE } from './checkpoint.js';
export { stderrProgress } from './progress.js';
