// Where a model's time goes in onnxruntime-node: the session's own profile (enableProfiling), each
// node's fastest run over many (the least disturbed by a shared machine), summed by op type; and
// the op types of the model onnxruntime builds (optimizedModelFilePath), which show its fusions.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Model } from '../../src/ir/model.js';
import { nodeOrt } from '../../src/node/ort-node.js';
import { readModel } from '../../src/onnx/model-io.js';
import type { OrtTensor } from '../../src/runtime/ort-types.js';
import { round } from './stats.js';

export interface OrtProfile {
  /** Sum over nodes of each node's fastest kernel time, ms per run. */
  totalMs: number;
  /** Per op type, ms per run, largest first. */
  byOp: { op: string; ms: number; share: number }[];
  /** Op types (domain-less) of the optimized model and how many of each. */
  built: Record<string, number>;
}

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

export async function profileModel(bytes: Uint8Array, feeds: Record<string, OrtTensor>, options: { threads: number; runs: number; level?: 'basic' | 'extended' | 'all' }): Promise<OrtProfile> {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-profile-'));
  try {
    const optimized = path.join(folder, 'optimized.onnx');
    const session = await nodeOrt.InferenceSession.create(bytes, {
      graphOptimizationLevel: options.level ?? 'all',
      intraOpNumThreads: options.threads,
      interOpNumThreads: 1,
      enableProfiling: true,
      profileFilePrefix: path.join(folder, 'profile'),
      optimizedModelFilePath: optimized,
      logSeverityLevel: 3,
    });
    for (let i = 0; i < options.runs; i++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const file = fs.readdirSync(folder).find((f) => f.startsWith('profile') && f.endsWith('.json'));
    if (file === undefined) throw new Error(`onnxruntime wrote no profile in ${folder}`);
    const events = JSON.parse(fs.readFileSync(path.join(folder, file), 'utf8')) as ProfileEvent[];
    const fastest = new Map<string, { op: string; us: number }>();
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const known = fastest.get(e.name);
      if (known === undefined || e.dur < known.us) fastest.set(e.name, { op: e.args?.op_name ?? '?', us: e.dur });
    }
    const sums = new Map<string, number>();
    for (const { op, us } of fastest.values()) sums.set(op, (sums.get(op) ?? 0) + us / 1000);
    const totalMs = [...sums.values()].reduce((a, b) => a + b, 0);
    const byOp = [...sums.entries()].sort((a, b) => b[1] - a[1]).map(([op, ms]) => ({ op, ms: round(ms), share: round(ms / totalMs) }));
    return { totalMs: round(totalMs), byOp, built: opTypes(readModel(fs.readFileSync(optimized))) };
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

function opTypes(model: Model): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const node of model.graph.nodes) counts[node.opType] = (counts[node.opType] ?? 0) + 1;
  return counts;
}
