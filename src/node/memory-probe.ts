// Child-process script for src/node/memory.ts: loads one model (or, for the baseline, a one-node
// model) the way the benchmark does (onnxruntime-node from the file's path, external data beside
// it; onnxruntime-web from bytes), runs it on generated inputs, and prints `{"maxRssBytes": N}` as
// its last stdout line. Run as `node memory-probe.js '<json ProbeRequest>'` (compiled) or
// `node --import tsx memory-probe.ts ...` (sources); memory.ts picks the form (child-script.ts).
import { DataType } from '../ir/dtype.js';
import { buildModel, GraphBuilder } from '../ir/builder.js';
import { readModel, writeModel } from '../onnx/model-io.js';
import type { BenchModel } from '../eval/benchmark.js';
import { benchInputs } from '../eval/bench-inputs.js';
import { ModelSession, toOrtTensor, type Feeds } from '../runtime/session.js';
import type { OrtModule } from '../runtime/ort-types.js';
import type { Model } from '../ir/model.js';
import type { ProbeRequest } from './memory.js';
import { readBenchModel } from './bench-model-file.js';
import { nodeOrt } from './ort-node.js';
import { loadWebOrt, WASM_EXECUTION_PROVIDERS } from './ort-web.js';

/** A model that does (almost) nothing: the baseline pays for the runtime, not for a network. */
function identityModel(): BenchModel & { model: Model } {
  const builder = new GraphBuilder();
  const x = builder.input('x', DataType.FLOAT, [1]);
  builder.output(builder.node('Identity', [x]), DataType.FLOAT, [1]);
  const bytes = writeModel(buildModel(builder.graph));
  return { name: 'baseline', source: bytes, model: readModel(bytes, { source: 'baseline' }) };
}

async function probe(request: ProbeRequest): Promise<number> {
  const ort: OrtModule = request.backend === 'wasm' ? await loadWebOrt() : nodeOrt;
  const { source, model } = request.file === null ? identityModel() : readBenchModel(request.file, request.backend);
  const tensors = await benchInputs(model, { batch: request.batch, dims: request.dims });
  const feeds: Feeds = {};
  for (const [name, tensor] of Object.entries(tensors)) feeds[name] = toOrtTensor(ort, tensor);
  const session = await ModelSession.create(ort, source, {
    threads: request.threads,
    executionProviders: request.backend === 'wasm' ? WASM_EXECUTION_PROVIDERS : undefined,
  });
  for (let run = 0; run < request.runs; run++) await session.run(feeds);
  await session.release();
  // resourceUsage().maxRSS is in kilobytes (getrusage's ru_maxrss on Linux).
  return process.resourceUsage().maxRSS * 1024;
}

const request = JSON.parse(process.argv[2] ?? '{}') as ProbeRequest;
probe(request).then(
  (maxRssBytes) => process.stdout.write(`${JSON.stringify({ maxRssBytes })}\n`),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  },
);
