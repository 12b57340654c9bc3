// Identical initializers (same type, dims and bytes) are stored once. Tensors are bucketed by a
// hash of their bytes first, so only likely twins are compared byte by byte. Twins in different
// scopes (an If's two branches, say) share one copy placed in the innermost graph that encloses
// both, where both can read it. Run after constants-to-initializers: Constant nodes are not seen.
import { DataType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import type { Pass } from '../pipeline/pass.js';
import { bytesEqual, hashBytes } from './util/bytes.js';
import { allGraphs } from './util/graph-queries.js';
import { PassResult } from './util/report.js';

interface Entry {
  tensor: Tensor;
  graph: Graph;
}

export const dedupeInitializersPass: Pass = {
  name: 'dedupe-initializers',
  description: 'keeps one copy of initializers with identical type, dims and bytes',
  run(model) {
    const result = new PassResult(['initializersRemoved', 'bytesSaved', 'initializersHoisted']);
    const buckets = new Map<string, Entry[]>();
    for (const graph of allGraphs(model.graph)) {
      for (const tensor of graph.initializers) {
        // Graph inputs may be overridden by the caller; graph outputs must keep their names.
        if (tensor.dataType === DataType.STRING || graph.isGraphInput(tensor.name) || graph.isGraphOutput(tensor.name)) continue;
        const key = `${tensor.dataType}|${tensor.dims.join(',')}|${hashBytes(tensor.bytes())}`;
        const list = buckets.get(key);
        if (list === undefined) buckets.set(key, [{ tensor, graph }]);
        else list.push({ tensor, graph });
      }
    }
    for (const bucket of buckets.values()) {
      if (bucket.length < 2) continue;
      // A hash collision can put different tensors in one bucket: split it by exact bytes.
      const kept: Entry[] = [];
      for (const entry of bucket) {
        const twin = kept.find((k) => bytesEqual(k.tensor.bytes(), entry.tensor.bytes()));
        if (twin === undefined) {
          kept.push(entry);
          continue;
        }
        const home = commonScope(twin.graph, entry.graph);
        if (home !== twin.graph) {
          if (home.parent === undefined && model.irVersion < 4) {
            result.warn('ir-version', `initializer '${entry.tensor.name}' duplicates '${twin.tensor.name}' in another scope; not shared (IR < 4)`, { tensor: entry.tensor.name });
            continue;
          }
          twin.graph.removeInitializer(twin.tensor.name);
          home.initializers.push(twin.tensor);
          home.changed();
          twin.graph = home;
          result.count('initializersHoisted');
        }
        entry.graph.removeInitializer(entry.tensor.name);
        entry.graph.replaceAllUses(entry.tensor.name, twin.tensor.name);
        entry.graph.valueInfo = entry.graph.valueInfo.filter((v) => v.name !== entry.tensor.name);
        entry.graph.changed();
        result.count('initializersRemoved');
        result.count('bytesSaved', entry.tensor.byteLength);
      }
    }
    return result.done();
  },
};

/** The innermost graph enclosing both `a` and `b` (one of them, if one encloses the other). */
function commonScope(a: Graph, b: Graph): Graph {
  const ancestors = new Set<Graph>();
  for (let g: Graph | undefined = a; g !== undefined; g = g.parent) ancestors.add(g);
  for (let g: Graph | undefined = b; g !== undefined; g = g.parent) if (ancestors.has(g)) return g;
  throw new Error(`graphs '${a.name}' and '${b.name}' belong to different models`);
}
