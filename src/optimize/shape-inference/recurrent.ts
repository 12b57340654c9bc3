// Rules for RNN, GRU and LSTM. X is [seq, batch, input] (or [batch, seq, input] with layout=1,
// opset 14); Y is [seq, num_directions, batch, hidden] and Y_h / Y_c are [num_directions, batch,
// hidden] (batch first again under layout=1). The hidden size is the attribute, or R's last dim.
import type { Dim } from './dims.js';
import { type RuleContext, type RuleOutput, tensor } from './context.js';

export function recurrent(ctx: RuleContext): RuleOutput[] {
  const x = ctx.shape(0);
  if (x.length !== 3) ctx.fail(`X has rank ${x.length}, expected 3`);
  const batchFirst = ctx.attrInt('layout', 0) === 1;
  const [seq, batch] = batchFirst ? [x[1], x[0]] : [x[0], x[1]];
  const directions: Dim = ctx.node.attrString('direction', 'forward') === 'bidirectional' ? 2 : 1;
  const hidden: Dim = ctx.node.attrInt('hidden_size') ?? ctx.input(2)?.shape?.[2] ?? ctx.fail('hidden_size is unknown');
  const elemType = ctx.elemType(0);
  const y = batchFirst ? [batch, seq, directions, hidden] : [seq, directions, batch, hidden];
  const state = batchFirst ? [batch, directions, hidden] : [directions, batch, hidden];
  return ctx.node.outputs.map((_, k) => tensor(elemType, k === 0 ? [...y] : [...state]));
}
