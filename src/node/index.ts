// Node-only entry ("shrink/node"): model files on disk and onnxruntime-node.
export { loadModel, saveModel, folderExternalData, type SaveOptions } from './model-files.js';
export { nodeOrt } from './ort-node.js';
export { openSampleFile, folderFileTree, fileByteSource, type OpenSamplesOptions } from './sample-files.js';
export { terminalProgress, lineProgress } from './progress.js';
