// Feeds for BERT-style encoders (models/spam-bert): pseudo-random token ids, the first token 2
// ([CLS]), rows padded from the end by 0, padStep, 2 * padStep, ... tokens (mask 0 there), so a
// mask applied wrongly moves the padded rows' outputs.
import { nodeOrt } from '../../src/node/ort-node.js';

export type TokenFeeds = Record<'input_ids' | 'attention_mask' | 'token_type_ids', InstanceType<typeof nodeOrt.Tensor>>;

export function paddedTokenFeeds(batch: number, length: number, padStep: number, seed: number): TokenFeeds {
  const ids = new BigInt64Array(batch * length);
  const mask = new BigInt64Array(batch * length);
  let state = seed;
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < length - padStep * b; s++) {
      state = (state * 1103515245 + 12345) % 2147483648;
      ids[b * length + s] = s === 0 ? 2n : BigInt(5 + (state % 4000));
      mask[b * length + s] = 1n;
    }
  }
  return {
    input_ids: new nodeOrt.Tensor('int64', ids, [batch, length]),
    attention_mask: new nodeOrt.Tensor('int64', mask, [batch, length]),
    token_type_ids: new nodeOrt.Tensor('int64', new BigInt64Array(batch * length), [batch, length]),
  };
}
