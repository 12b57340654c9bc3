// The decoder evaluation step: perplexity of one or more language models on the same token ids,
// and greedy generation speed through the KV cache, side by side. `shrink eval MODEL [CANDIDATE]
// --perplexity TEXT` and bench/decoder.ts both measure through this function. A model of optimum's
// separate pair (decoder_model, no past inputs) comes with its `withPast` partner: perplexity runs on
// the first, generation runs the prompt through it and the new tokens through the partner.
import { type DecoderSignature, decoderSignature, generate, type PerplexityResult, perplexity } from '../eval/decoder.js';
import type { Model } from '../ir/model.js';
import { ModelSession } from '../runtime/session.js';
import type { RecipeContext } from './context.js';

export interface DecoderEvalOptions {
  context: number;
  stride?: number;
  batch?: number;
  /** Greedy tokens to generate after `prompt` for the tokens/s figure (0 or undefined: no generation). */
  generate?: number;
  /** Prompt token ids for generation (default: the first 16 tokens of the text). */
  prompt?: readonly number[];
}

export interface DecoderEvalRow {
  name: string;
  perplexity: number;
  nll: number;
  tokens: number;
  windows: number;
  seconds: number;
  generation?: { prompt_tokens: number; new_tokens: number; tokens_per_second: number; prefill_seconds: number; tokens: number[] };
}

/** Perplexity (and generation speed) of each model on `tokens`, in the order given. */
export async function evaluateDecoders(models: readonly { name: string; model: Model; withPast?: { name: string; model: Model } }[], tokens: ArrayLike<number>, options: DecoderEvalOptions, ctx: RecipeContext): Promise<DecoderEvalRow[]> {
  const wantsGeneration = (options.generate ?? 0) > 0;
  // Check every model's structure before running any, so a bad second model fails at once.
  const signatures: DecoderSignature[] = models.map(({ name, model, withPast }) => decoderSignature(model, name, wantsGeneration && withPast === undefined));
  const pastSignatures = models.map(({ withPast }) => (withPast === undefined || !wantsGeneration ? undefined : decoderSignature(withPast.model, withPast.name, true)));
  const prompt = options.prompt ?? Array.from({ length: Math.min(16, tokens.length) }, (_, i) => tokens[i]);
  if (wantsGeneration && prompt.length + (options.generate as number) > options.context) {
    throw new Error(`generation: ${prompt.length} prompt tokens + ${options.generate} new ones exceed the context of ${options.context}`);
  }
  const rows: DecoderEvalRow[] = [];
  for (const [index, { name, model, withPast }] of models.entries()) {
    const session = await ModelSession.create(ctx.ort, model, { threads: ctx.threads });
    let ticked = 0;
    ctx.progress?.start(`perplexity of ${name}`);
    try {
      const sig = signatures[index];
      const measured: PerplexityResult = await perplexity(ctx.ort, session, sig, tokens, {
        context: options.context,
        stride: options.stride,
        batch: options.batch,
        progress: (done) => {
          ctx.progress?.tick(done - ticked);
          ticked = done;
        },
      });
      const row: DecoderEvalRow = { name, ...measured };
      if (wantsGeneration) {
        const pastSig = pastSignatures[index];
        const partner = withPast === undefined || pastSig === undefined ? undefined : await ModelSession.create(ctx.ort, withPast.model, { threads: ctx.threads });
        const generated = await (partner === undefined || pastSig === undefined
          ? generate(ctx.ort, session, sig, prompt, { tokens: options.generate as number })
          : generate(ctx.ort, partner, pastSig, prompt, { tokens: options.generate as number, prefill: { session, sig } }).finally(() => partner.release()));
        row.generation = {
          prompt_tokens: prompt.length,
          new_tokens: generated.tokens.length,
          tokens_per_second: generated.tokensPerSecond,
          prefill_seconds: generated.prefillSeconds,
          tokens: generated.tokens,
        };
      }
      rows.push(row);
    } finally {
      ctx.progress?.done();
      await session.release();
    }
  }
  return rows;
}
