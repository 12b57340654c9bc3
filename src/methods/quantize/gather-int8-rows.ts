// Embedding tables (Gather on axis 0 of a constant [V, D] float table) as int8 rows in standard
// ops, for runtimes without com.microsoft GatherBlockQuantized (the wasm side of onnxruntime-web's
// webgpu bundle, which transformers.js runs, has none):
//   codes  = Gather(table_int8 [V, D], ids)          int8, symmetric, one scale per row
//   scales = Gather(row_scales [V, 1], ids)          the table's float type
//   out    = Mul(Cast(codes, float type), scales)
// Only the rows looked up are dequantized (a DequantizeLinear in front of the Gather would
// dequantize the whole table on every run). Any opset, float32 or float16 tables.
import { blocksSqnrDb } from '../../kernels/sqnr.js';
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Model } from '../../ir/model.js';
import { Node } from '../../ir/node.js';
import { Tensor } from '../../ir/tensor.js';
import { float32ToFloat16Bits } from '../../kernels/quant-formats.js';
import { quantizeBlocks } from '../../kernels/quantize-blocks.js';
import type { Pass } from '../../pipeline/pass.js';
import { PassResult } from '../../optimize/util/report.js';
import { addConstant } from '../../optimize/util/write-constant.js';
import { type QuantizedTensorReport, type WeightQuantReport, dropUnreadConstant, eligibleGathers } from './weight-tensors.js';

export interface GatherInt8RowsOptions {
  /** Nodes to leave alone (reported as excluded). */
  exclude?: (node: Node, graph: Graph) => boolean;
  /** Tables with fewer elements stay float (default 1024: a Cast and a Mul cost more than they save). */
  minElements?: number;
}

/** Converts every Gather of rows of a constant 2-D float table (all scopes) to int8 rows. */
export function quantizeGatherRows(model: Model, options: GatherInt8RowsOptions = {}): WeightQuantReport {
  const result = new PassResult(['gathers', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter']);
  const tensors: QuantizedTensorReport[] = [];
  const minElements = options.minElements ?? 1024;
  /** One int8 copy per table and graph, shared by every Gather that reads it. */
  const done = new Map<Graph, Map<string, { codes: string; scales: string; floatType: DataType }>>();
  for (const { node, graph, tableName, table } of eligibleGathers(model, result, 'int8 embedding rows', options.exclude)) {
    const dims = table.tensor.dims;
    if (table.values.length < minElements) continue;
    const floatType = table.tensor.dataType;
    let shared = done.get(graph)?.get(tableName);
    if (shared === undefined) {
      const [rows, cols] = dims;
      const q = quantizeBlocks(table.values, rows, cols, { bits: 8, blockSize: cols, symmetric: true });
      const codes = new Int8Array(rows * cols);
      for (let i = 0; i < codes.length; i++) codes[i] = q.codes[i] - 128;
      const codeTensor = Tensor.fromArray(graph.uniqueName(`${tableName}_int8`), DataType.INT8, dims, codes);
      const scaleTensor =
        floatType === DataType.FLOAT16
          ? Tensor.fromArray(graph.uniqueName(`${tableName}_row_scale`), DataType.FLOAT16, [rows, 1], Uint16Array.from(q.scales, (s) => float32ToFloat16Bits(s)))
          : Tensor.fromArray(graph.uniqueName(`${tableName}_row_scale`), DataType.FLOAT, [rows, 1], Float32Array.from(q.scales));
      addConstant(model, graph, codeTensor, node);
      addConstant(model, graph, scaleTensor, node);
      shared = { codes: codeTensor.name, scales: scaleTensor.name, floatType };
      if (!done.has(graph)) done.set(graph, new Map());
      done.get(graph)?.set(tableName, shared);
      const report: QuantizedTensorReport = {
        name: tableName,
        op: 'Gather',
        node: node.label,
        bytesBefore: table.tensor.byteLength,
        bytesAfter: codeTensor.byteLength + scaleTensor.byteLength,
        sqnrDb: blocksSqnrDb(table.values, q),
      };
      tensors.push(report);
      result.count('bytesBefore', report.bytesBefore);
      result.count('bytesAfter', report.bytesAfter);
    }
    const output = node.outputs[0];
    const at = graph.nodes.indexOf(node);
    const name = (suffix: string) => graph.uniqueName(`${node.label}_${suffix}`);
    const codes = name('int8_rows');
    const scales = name('row_scales');
    const floats = name('rows');
    // In order: the scales' Gather before the node, the Cast and the Mul after it.
    graph.addNode(new Node({ opType: 'Mul', inputs: [floats, scales], outputs: [output], name: name('Mul') }), at + 1);
    graph.addNode(new Node({ opType: 'Cast', inputs: [codes], outputs: [floats], name: name('Cast'), attributes: [attr.int('to', shared.floatType)] }), at + 1);
    graph.addNode(new Node({ opType: 'Gather', inputs: [shared.scales, node.inputs[1]], outputs: [scales], name: name('Gather_scales'), attributes: [attr.int('axis', 0)] }), at);
    node.inputs[0] = shared.codes;
    node.outputs[0] = codes;
    graph.changed();
    dropUnreadConstant(graph, tableName);
    result.count('quantized');
  }
  const pass = result.done();
  return { stats: pass.stats, warnings: pass.warnings, tensors };
}

export const gatherInt8RowsPass: Pass<GatherInt8RowsOptions> = {
  name: 'gather-int8-rows',
  description: 'Embedding tables as int8 rows with one scale per row, in standard ops (Gather, Cast, Mul)',
  run: (model, options) => quantizeGatherRows(model, options),
};
