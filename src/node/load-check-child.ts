// Child process of load-check.ts: loads the model at argv[2] in onnxruntime-node, exits 0, or
// prints onnxruntime's cause as its last stderr line and exits 1.
import { ortCause } from '../runtime/ort-errors.js';
import { ModelSession } from '../runtime/session.js';
import { nodeOrt } from './ort-node.js';

try {
  const session = await ModelSession.create(nodeOrt, process.argv[2], { graphOptimization: 'basic', logSeverityLevel: 4 });
  await session.release();
} catch (error) {
  process.stderr.write(`${ortCause(error)}\n`);
  process.exitCode = 1;
}
