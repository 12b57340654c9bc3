// Gather on a constant embedding table [V, D] -> com.microsoft GatherBlockQuantized. Layout, from
// onnxruntime's CPU kernel (contrib_ops/cpu/quantization/gather_block_quantized.cc), checked
// numerically in test/quant-weight-only.test.ts against onnxruntime-node 1.30:
//   data         uint8 [V, D * bits / 8], each row's codes packed LSB-first (bits 2, 4 or 8)
//   scales       T2 [V, D / block_size], T2 is the output type (float or float16)
//   zero_points  uint8 [V, ceil((D / block_size) * bits / 8)], packed per row like the data;
//                absent means 2^(bits-1)
//   attributes   gather_axis 0, quantize_axis 1 (uint8 data requires these), block_size, bits
//   out[..., j]  = (code - zero_point) * scale
// Only gathers along axis 0 of a 2-D table qualify; others are reported and left alone.
import { blocksSqnrDb } from '../../kernels/sqnr.js';
import { attr } from '../../ir/attribute.js';
import { DataType } from '../../ir/dtype.js';
import type { Model } from '../../ir/model.js';
import { Tensor } from '../../ir/tensor.js';
import { packRows } from '../../kernels/pack.js';
import type { Pass } from '../../pipeline/pass.js';
import { PassResult } from '../../optimize/util/report.js';
import { type BlockWeightOptions, quantizeRows, resolveBlockOptions } from './matmul-nbits.js';
import {
  PerGraphCache,
  type QuantizedTensorReport,
  type WeightQuantReport,
  addTypedConstant,
  becomeMicrosoftOp,
  dropUnreadConstant,
  eligibleGathers,
  ensureMicrosoftOpset,
  floatTensor,
} from './weight-tensors.js';

export type GatherBlockQuantizedOptions = BlockWeightOptions;

/** Converts every Gather that reads rows of a constant 2-D float table (all scopes). */
export function quantizeGathers(model: Model, options: GatherBlockQuantizedOptions): WeightQuantReport {
  const o = resolveBlockOptions(options);
  const result = new PassResult(['gathers', 'quantized', 'skipped', 'bytesBefore', 'bytesAfter']);
  const tensors: QuantizedTensorReport[] = [];
  const done = new PerGraphCache<{ inputs: string[]; report: Omit<QuantizedTensorReport, 'node'> }>();
  for (const { node, graph, tableName, table, skip } of eligibleGathers(model, result, 'GatherBlockQuantized', options.exclude)) {
    const dims = table.tensor.dims;
    const [V, D] = dims;
    if (D % o.blockSize !== 0) {
      skip('block-size-does-not-divide-row', `row length ${D} of '${tableName}' is not a multiple of block size ${o.blockSize}`);
      continue;
    }
    const { value: replacement, fresh } = done.get(graph, tableName, () => {
      const q = quantizeRows(table.values, V, D, o);
      const nBlocks = D / o.blockSize;
      const elemType = table.tensor.dataType;
      const data = Tensor.fromArray('', DataType.UINT8, [V, (D * o.bits) / 8], packRows(q.codes, V, D, o.bits));
      const inputs = [addTypedConstant(model, graph, data, `${tableName}_q${o.bits}`, DataType.UINT8, node)];
      const scales = floatTensor('', q.scales, [V, nBlocks], o.scaleType);
      const scalesName = addTypedConstant(model, graph, scales, `${tableName}_scales`, elemType, node);
      let zeroBytes = 0;
      const zeroInputs: string[] = [];
      if (!q.symmetric) {
        const zeros = Tensor.fromArray('', DataType.UINT8, [V, Math.ceil((nBlocks * o.bits) / 8)], packRows(q.zeroPoints, V, nBlocks, o.bits));
        zeroInputs.push(addTypedConstant(model, graph, zeros, `${tableName}_zero_points`, DataType.UINT8, node));
        zeroBytes = zeros.byteLength;
      }
      return {
        // GatherBlockQuantized reads (data, indices, scales, zero_points): indices go in between.
        inputs: [inputs[0], scalesName, ...zeroInputs],
        report: {
          name: tableName,
          op: 'Gather',
          bytesBefore: table.tensor.byteLength,
          bytesAfter: data.byteLength + scales.byteLength + zeroBytes,
          sqnrDb: blocksSqnrDb(table.values, q),
        },
      };
    });
    if (fresh) {
      result.count('bytesBefore', replacement.report.bytesBefore);
      result.count('bytesAfter', replacement.report.bytesAfter);
    }
    const [dataName, scalesName, ...zeros] = replacement.inputs;
    becomeMicrosoftOp(node, 'GatherBlockQuantized', [dataName, node.inputs[1], scalesName, ...zeros], [
      attr.int('gather_axis', 0),
      attr.int('quantize_axis', 1),
      attr.int('block_size', o.blockSize),
      attr.int('bits', o.bits),
    ]);
    graph.changed();
    dropUnreadConstant(graph, tableName);
    tensors.push({ ...replacement.report, node: node.label });
    result.count('quantized');
  }
  if (result.stats.quantized > 0) ensureMicrosoftOpset(model);
  return { ...result.done(), tensors };
}

export const gatherBlockQuantizedPass: Pass<GatherBlockQuantizedOptions> = {
  name: 'gather-block-quantized',
  description: 'Gather on a constant embedding table -> com.microsoft GatherBlockQuantized (2/4/8-bit blocks along rows)',
  run: (model, options) => quantizeGathers(model, options),
};
