// Per-node kernel times of one model, from onnxruntime's own profiler: the session writes a JSON
// trace (one event per kernel per run) to a file, read back here and removed. Runs at the level
// models are deployed and timed at ('all'), 1 thread, so the times are of the fused kernels that
// actually run (QLinearConv, not Q/DQ around a float Conv); the first run is a warm-up and left out.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Tensor } from '../ir/tensor.js';
import type { NodeProfile, NodeTime } from '../pipeline/latency-model.js';
import { toOrtTensor } from '../runtime/session.js';
import { nodeOrt } from './ort-node.js';

interface TraceEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

/** Median kernel time of every node over `runs` runs (after one warm-up), and the median run. */
export async function profileNodes(model: Uint8Array, inputs: Readonly<Record<string, Tensor>>, options: { runs?: number; threads?: number } = {}): Promise<NodeProfile> {
  const runs = options.runs ?? 5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-profile-'));
  try {
    const session = await nodeOrt.InferenceSession.create(model, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
      enableProfiling: true,
      profileFilePrefix: path.join(dir, 'profile'),
    } as never);
    const feeds = Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, toOrtTensor(nodeOrt, t)]));
    try {
      for (let i = 0; i < runs + 1; i++) await session.run(feeds);
      (session as unknown as { endProfiling(): void }).endProfiling();
    } finally {
      await session.release();
    }
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (file === undefined) throw new Error('onnxruntime wrote no profile');
    return fromTrace(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as TraceEvent[]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Node events grouped by the run that contains them; each node's median over the runs after the first. */
function fromTrace(events: readonly TraceEvent[]): NodeProfile {
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').map((e) => ({ from: e.ts ?? 0, to: (e.ts ?? 0) + (e.dur ?? 0) }));
  const kept = runs.slice(1);
  const times = new Map<string, { op: string; us: number[]; input?: number; output?: number }>();
  for (const e of events) {
    if (e.cat !== 'Node' || e.name === undefined || !e.name.endsWith('_kernel_time')) continue;
    const run = kept.findIndex((r) => (e.ts ?? 0) >= r.from && (e.ts ?? 0) <= r.to);
    if (run < 0) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    const entry = times.get(name) ?? { op: e.args?.op_name ?? '', us: new Array<number>(kept.length).fill(0), input: elements(e.args?.input_type_shape?.[0]), output: elements(e.args?.output_type_shape?.[0]) };
    entry.us[run] += e.dur ?? 0;
    times.set(name, entry);
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? 0 : sorted[Math.floor(sorted.length / 2)];
  };
  const nodes: NodeTime[] = [...times].map(([name, t]) => ({ name, op: t.op, ms: median(t.us) / 1000, input_elements: t.input, output_elements: t.output }));
  return { nodes, run_ms: median(kept.map((r) => r.to - r.from)) / 1000 };
}

/** Elements of a profiled tensor (`{ float: [1, 4, 640, 640] }`). */
function elements(typeShape: Record<string, number[]> | undefined): number | undefined {
  const dims = typeShape === undefined ? undefined : Object.values(typeShape)[0];
  return dims === undefined ? undefined : dims.reduce((a, b) => a * b, 1);
}
