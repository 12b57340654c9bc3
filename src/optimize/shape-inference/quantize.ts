// Rules for quantization ops. QuantizeLinear's output type is y_zero_point's (uint8 when absent,
// or `output_dtype` from opset 21); DequantizeLinear gives x_scale's type (float before opset 19
// allowed only float scales, so the rule is the same). DynamicQuantizeLinear returns uint8 data
// plus scalar scale and zero point.
import { DataType } from '../../ir/dtype.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

export function quantizeLinear(ctx: RuleContext): RuleOutput[] {
  const shape = [...ctx.shape(0)];
  const outputDtype = ctx.attrInt('output_dtype', 0);
  const elemType = ctx.input(2)?.elemType ?? (outputDtype !== 0 ? outputDtype : DataType.UINT8);
  return [tensor(elemType, shape)];
}

export function dequantizeLinear(ctx: RuleContext): RuleOutput[] {
  const shape = [...ctx.shape(0)];
  const outputDtype = ctx.attrInt('output_dtype', 0);
  return [tensor(outputDtype !== 0 ? outputDtype : ctx.elemType(1), shape)];
}

export function dynamicQuantizeLinear(ctx: RuleContext): RuleOutput[] {
  return [tensor(DataType.UINT8, [...ctx.shape(0)]), tensor(DataType.FLOAT, []), tensor(DataType.UINT8, [])];
}
