// Which layer of the reference model a layer row of another model is. Quantization renames what
// it touches: weights become W_q4 + W_scales or W_quantized + W_scale + W_zero_point, a MatMul may
// become fc2_DynamicQuantizeMatMul, a Conv becomes conv1_quantized (QLinearConv). Without a join,
// a report shows those as new layers beside empty originals. The join tries, in order: the same
// node name; a weight whose name is a reference weight's name plus a suffix (W -> W_q4); a node
// name that is a reference node's name plus a suffix. Weights behind DequantizeLinear or Cast are
// already counted at the node that reads them (src/node/report-assets.ts).

/** One row of a model's weight table: a node and the constant tensors it reads. */
export interface ReportLayer {
  /** The node whose weights these are: for weights behind DequantizeLinear/Cast, the node reading them. */
  name: string;
  opType?: string;
  bytes: number;
  /** The tensors counted, with their element type (joins renamed tensors; sizes by dtype). */
  weights?: { name: string; dtype: string; bytes: number }[];
}

/** A row under the reference's layer name (its own name when nothing matched). */
export interface JoinedLayer {
  layer: string;
  /** The reference layer's op type when joined, else the row's own. */
  op: string;
  row: ReportLayer;
}

/** What may follow a reference name in a derived one: `W_q4`, `fc2.quantized`, `x:0`, `a/b`. */
const SEPARATORS = new Set(['_', '.', ':', '/', '-']);

/** The rows of `rows` under `reference`'s layer names (the reference joins to itself). */
export function joinLayers(reference: readonly ReportLayer[], rows: readonly ReportLayer[]): JoinedLayer[] {
  const ops = new Map<string, string>();
  for (const r of reference) if (!ops.has(r.name)) ops.set(r.name, r.opType ?? '');
  const owners = new Map<string, string>();
  for (const r of reference) for (const w of r.weights ?? []) if (!owners.has(w.name)) owners.set(w.name, r.name);
  return rows.map((row) => {
    const layer = layerOf(row, ops, owners);
    return { layer, op: ops.get(layer) || row.opType || '', row };
  });
}

function layerOf(row: ReportLayer, layers: ReadonlyMap<string, string>, owners: ReadonlyMap<string, string>): string {
  if (layers.has(row.name)) return row.name;
  let best: { name: string; length: number } | undefined;
  for (const w of row.weights ?? []) {
    const owner = longestPrefix(w.name, owners);
    if (owner !== undefined && (best === undefined || owner.length > best.length)) best = { name: owners.get(owner) as string, length: owner.length };
  }
  if (best !== undefined) return best.name;
  return longestPrefix(row.name, layers) ?? row.name;
}

/** The longest key of `names` that `text` equals, or starts with followed by a separator. */
export function longestPrefix(text: string, names: ReadonlyMap<string, unknown>): string | undefined {
  if (names.has(text)) return text;
  for (let end = text.length - 1; end > 0; end--) {
    if (SEPARATORS.has(text[end]) && names.has(text.slice(0, end))) return text.slice(0, end);
  }
  return undefined;
}
