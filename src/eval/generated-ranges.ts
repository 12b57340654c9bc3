// Ranges for generated integer inputs, so random inputs are inputs the model can take. Token ids,
// token type ids and position ids reach a Gather over a constant embedding table, and a random id
// past its last row fails in onnxruntime ("indices element out of data bounds"): the graph says how
// many rows each table has. An integer mask (attention_mask) means 0 or 1, and random values
// above 1 drive the additive mask far outside anything the model saw: all ones (every position
// attended) is the input such models get most.
import { constantValue } from '../ir/constants.js';
import { DataType, dataTypeInfo } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { modelSignature } from './match-inputs.js';

/** Ops that pass index values through unchanged (only their shape or type changes). */
const SAME_VALUES = new Set(['Cast', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Identity', 'Expand', 'Transpose']);

/** Integer inputs' ranges: masks all ones, ids inside their tables (see indexRanges). */
export function generatedRanges(model: Model): Record<string, [number, number]> {
  const ranges = indexRanges(model);
  for (const input of modelSignature(model).inputs) {
    if (ranges[input.name] === undefined && isIntegerType(input.elemType) && /mask/i.test(input.name)) ranges[input.name] = [1, 1];
  }
  return ranges;
}

/**
 * `[0, rows - 1]` for every integer graph input whose values end up as the indices of a Gather
 * over a constant table (through value-preserving ops); the smallest table wins when several read it.
 */
export function indexRanges(model: Model): Record<string, [number, number]> {
  const graph = model.graph;
  const ranges: Record<string, [number, number]> = {};
  for (const input of modelSignature(model).inputs) {
    if (!isIntegerType(input.elemType)) continue;
    const rows = smallestTable(graph, input.name, new Set());
    if (rows !== undefined && rows > 0) ranges[input.name] = [0, rows - 1];
  }
  return ranges;
}

function smallestTable(graph: Graph, value: string, seen: Set<string>): number | undefined {
  if (seen.has(value)) return undefined;
  seen.add(value);
  let smallest: number | undefined;
  const keep = (rows: number | undefined) => {
    if (rows !== undefined && (smallest === undefined || rows < smallest)) smallest = rows;
  };
  for (const node of graph.consumers(value)) {
    if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
    if (node.opType === 'Gather' && node.inputs[1] === value) {
      const table = constantValue(graph, node.inputs[0]);
      if (table === undefined || table.dims.length === 0) continue;
      const axis = node.attrInt('axis', 0);
      keep(table.dims[axis < 0 ? axis + table.dims.length : axis]);
    } else if (SAME_VALUES.has(node.opType) && node.inputs[0] === value && node.outputs[0] !== undefined) {
      keep(smallestTable(graph, node.outputs[0], seen));
    }
  }
  return smallest;
}

function isIntegerType(type: number): boolean {
  return type !== 0 && type !== DataType.BOOL && type !== DataType.STRING && !dataTypeInfo(type).isFloat && dataTypeInfo(type).array !== undefined;
}
