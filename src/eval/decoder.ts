// Decoder language models in onnxruntime: perplexity over token ids and greedy generation with the
// KV cache. The model's structure is read from its graph inputs and outputs by name and shape, in
// the form optimum and transformers.js export decoders:
//   inputs  input_ids [batch, sequence] (int64 or int32), attention_mask [batch, past + sequence]
//           (optional), position_ids [batch, sequence] (optional),
//           past_key_values.{i}.key / .value [batch, heads, past, head_dim]
//   outputs logits [batch, sequence, vocabulary], present.{i}.key / .value [batch, heads, past + sequence, head_dim]
// A merged decoder that runs with a past of length 0 is fed empty past tensors; a model without
// past inputs runs each window whole. Generation needs the past/present pairs and says so in one
// line when a model lacks them. optimum's separate pair runs as two sessions: decoder_model (no past
// inputs: perplexity, and the prompt of `generate` through `prefill`) and decoder_with_past_model.
// The fused forms (MultiHeadAttention / GroupQueryAttention) keep these names and run unchanged.
import { DataType } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { float16ToFloat32 } from '../kernels/float16.js';
import type { OrtModule, OrtTensor } from '../runtime/ort-types.js';
import type { ModelSession } from '../runtime/session.js';
import { formatValueType, modelSignature, type ModelValue } from './match-inputs.js';
import type { Sample, SampleSource } from './samples.js';

/** One layer's cache: the past inputs it reads and the present outputs it returns. */
export interface KvPair {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
}

export interface DecoderSignature {
  inputIds: string;
  /** int64 or int32, as the model declares input_ids. */
  idType: typeof DataType.INT64 | typeof DataType.INT32;
  attentionMask?: string;
  positionIds?: string;
  logits: string;
  /** Per layer, in layer order; empty for a model without a KV cache. */
  cache: KvPair[];
  /** Heads and head size of the past inputs (numbers, as the model declares them). */
  heads: number;
  headDim: number;
  /** Element type of the past tensors (float32, or float16 for half-precision models). */
  cacheType: DataType;
  /** The logits' last dim, when the model declares it as a number. */
  vocabulary?: number;
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT = /^present\.(\d+)\.(key|value)$/;

/**
 * The decoder structure of `model`. `needCache` (generation) makes missing past/present pairs an
 * error; `where` names the model in errors (its file).
 */
export function decoderSignature(model: Model, where: string, needCache = false): DecoderSignature {
  const { inputs, outputs } = modelSignature(model);
  const named = (values: ModelValue[], name: string) => values.find((v) => v.name === name);
  const ids = named(inputs, 'input_ids');
  if (ids === undefined) throw new Error(`${where}: no 'input_ids' input (a decoder takes input_ids [batch, sequence]); inputs are ${inputs.map((v) => v.name).join(', ')}`);
  if (ids.elemType !== DataType.INT64 && ids.elemType !== DataType.INT32) throw new Error(`${where}: input 'input_ids' must be int64 or int32`);
  const logits = named(outputs, 'logits');
  if (logits === undefined) throw new Error(`${where}: no 'logits' output (a decoder returns logits [batch, sequence, vocabulary]); outputs are ${outputs.map((v) => v.name).join(', ')}`);
  const vocabulary = logits.shape?.length === 3 && typeof logits.shape[2] === 'number' ? logits.shape[2] : undefined;
  const pasts = new Map<number, { key?: ModelValue; value?: ModelValue }>();
  for (const input of inputs) {
    const match = PAST.exec(input.name);
    if (match === null) continue;
    const layer = pasts.get(Number(match[1])) ?? {};
    layer[match[2] as 'key' | 'value'] = input;
    pasts.set(Number(match[1]), layer);
  }
  const presents = new Set(outputs.filter((o) => PRESENT.test(o.name)).map((o) => o.name));
  // Checked after the cache, so a model lacking what generation needs is told that first.
  const checkLogits = () => {
    if (logits.shape !== undefined && logits.shape.length !== 3) throw new Error(`${where}: output 'logits' is ${formatValueType(logits)}, not [batch, sequence, vocabulary]`);
  };
  if (pasts.size === 0) {
    if (needCache) throw new Error(`${where}: no KV cache: generation needs past_key_values.{i}.key/value inputs and present.{i}.key/value outputs, and the model has neither`);
    checkLogits();
    return { inputIds: ids.name, idType: ids.elemType, attentionMask: named(inputs, 'attention_mask')?.name, positionIds: named(inputs, 'position_ids')?.name, logits: logits.name, cache: [], heads: 0, headDim: 0, cacheType: DataType.FLOAT, vocabulary };
  }
  const layers = [...pasts.keys()].sort((a, b) => a - b);
  const cache: KvPair[] = [];
  let heads = 0;
  let headDim = 0;
  let cacheType: DataType = DataType.FLOAT;
  for (const [position, layer] of layers.entries()) {
    if (layer !== position) throw new Error(`${where}: past_key_values.${position}.key/value missing (layers ${layers.join(', ')} have them)`);
    const pair = pasts.get(layer) as { key?: ModelValue; value?: ModelValue };
    for (const kind of ['key', 'value'] as const) {
      const value = pair[kind];
      if (value === undefined) throw new Error(`${where}: past_key_values.${layer}.${kind} missing (past_key_values.${layer}.${kind === 'key' ? 'value' : 'key'} is there)`);
      if (!presents.has(`present.${layer}.${kind}`)) throw new Error(`${where}: output present.${layer}.${kind} missing (the model takes past_key_values.${layer}.${kind})`);
      const shape = value.shape;
      if (shape === undefined || shape.length !== 4 || typeof shape[1] !== 'number' || typeof shape[3] !== 'number') {
        throw new Error(`${where}: past_key_values.${layer}.${kind} must be [batch, heads, past, head_dim] with numeric heads and head_dim`);
      }
      heads = shape[1];
      headDim = shape[3];
      cacheType = value.elemType as DataType;
    }
    cache.push({ pastKey: `past_key_values.${layer}.key`, pastValue: `past_key_values.${layer}.value`, presentKey: `present.${layer}.key`, presentValue: `present.${layer}.value` });
  }
  if (cacheType !== DataType.FLOAT && cacheType !== DataType.FLOAT16) throw new Error(`${where}: past_key_values tensors must be float32 or float16`);
  checkLogits();
  return { inputIds: ids.name, idType: ids.elemType, attentionMask: named(inputs, 'attention_mask')?.name, positionIds: named(inputs, 'position_ids')?.name, logits: logits.name, cache, heads, headDim, cacheType, vocabulary };
}

/** Feeds for `rows` sequences of equal length `length` after a past of `past` tokens (empty caches when `cache` is undefined). */
function decoderFeeds(ort: OrtModule, sig: DecoderSignature, ids: readonly number[], rows: number, past: number, cache?: Record<string, OrtTensor>): Record<string, OrtTensor> {
  const length = ids.length / rows;
  const idTensor = sig.idType === DataType.INT64 ? new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [rows, length]) : new ort.Tensor('int32', Int32Array.from(ids), [rows, length]);
  const feeds: Record<string, OrtTensor> = { [sig.inputIds]: idTensor };
  if (sig.attentionMask !== undefined) feeds[sig.attentionMask] = new ort.Tensor('int64', new BigInt64Array(rows * (past + length)).fill(1n), [rows, past + length]);
  if (sig.positionIds !== undefined) {
    const positions = new BigInt64Array(rows * length);
    for (let r = 0; r < rows; r++) for (let i = 0; i < length; i++) positions[r * length + i] = BigInt(past + i);
    feeds[sig.positionIds] = new ort.Tensor('int64', positions, [rows, length]);
  }
  for (const pair of sig.cache) {
    for (const [input, output] of [[pair.pastKey, pair.presentKey], [pair.pastValue, pair.presentValue]]) {
      const dims = [rows, sig.heads, 0, sig.headDim];
      feeds[input] = cache?.[output] ?? (sig.cacheType === DataType.FLOAT16 ? new ort.Tensor('float16', new Uint16Array(0), dims) : new ort.Tensor('float32', new Float32Array(0), dims));
    }
  }
  return feeds;
}

function floatData(tensor: OrtTensor, name: string): Float32Array {
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') return float16ToFloat32(tensor.data as Uint16Array);
  throw new Error(`output '${name}' is ${tensor.type}, not float32 or float16`);
}

export interface PerplexityOptions {
  /** Tokens per window: the model's context. */
  context: number;
  /** Tokens between window starts (default `context`: windows that do not overlap). */
  stride?: number;
  /** Windows per run (default 8). */
  batch?: number;
  progress?: (done: number, total: number) => void;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood in nats per token. */
  nll: number;
  /** Tokens scored (each predicted from the ones before it in its window). */
  tokens: number;
  windows: number;
  seconds: number;
}

/**
 * exp(mean NLL) of `tokens` under the model. Windows of `context` tokens start every `stride`;
 * the first scores its tokens 2..context, later ones only their last `stride` (each token then
 * sees at least context - stride tokens before it). With stride == context the text is cut to
 * whole windows that do not overlap. Each window runs from an empty cache.
 */
export async function perplexity(ort: OrtModule, session: ModelSession, sig: DecoderSignature, tokens: ArrayLike<number>, options: PerplexityOptions): Promise<PerplexityResult> {
  const { context } = options;
  const stride = options.stride ?? context;
  const batch = options.batch ?? 8;
  if (!(Number.isInteger(context) && context >= 2)) throw new Error(`perplexity: context must be a whole number >= 2, got ${context}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= context)) throw new Error(`perplexity: stride must be between 1 and the context (${context}), got ${stride}`);
  const starts: number[] = [];
  for (let s = 0; s + context <= tokens.length; s += stride) starts.push(s);
  if (starts.length === 0) throw new Error(`perplexity: the text has ${tokens.length} tokens, fewer than one window of ${context}`);
  checkTokens(tokens, sig, 'perplexity');
  const started = performance.now();
  let total = 0;
  let count = 0;
  for (let b = 0; b < starts.length; b += batch) {
    const group = starts.slice(b, b + batch);
    const ids: number[] = [];
    for (const s of group) for (let i = 0; i < context; i++) ids.push(tokens[s + i]);
    const result = await session.run(decoderFeeds(ort, sig, ids, group.length, 0), [sig.logits]);
    const logits = result[sig.logits];
    const vocabulary = logits.dims[2];
    const data = floatData(logits, sig.logits);
    for (const [row, s] of group.entries()) {
      // Position i predicts token i + 1; later windows score only their last `stride` targets.
      const first = s === 0 ? 0 : Math.max(0, context - 1 - stride);
      for (let i = first; i < context - 1; i++) {
        total -= logSoftmaxAt(data, (row * context + i) * vocabulary, vocabulary, tokens[s + i + 1]);
        count++;
      }
    }
    options.progress?.(Math.min(b + batch, starts.length), starts.length);
  }
  const nll = total / count;
  return { perplexity: Math.exp(nll), nll, tokens: count, windows: starts.length, seconds: (performance.now() - started) / 1000 };
}

/** Token ids outside the declared vocabulary (logits' last dim) fail here, not in the embedding's Gather. */
function checkTokens(tokens: ArrayLike<number>, sig: DecoderSignature, what: string): void {
  const limit = sig.vocabulary ?? Infinity;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(Number.isInteger(t) && t >= 0 && t < limit)) throw new Error(`${what}: token ${t} at position ${i} is outside the model's vocabulary${sig.vocabulary === undefined ? '' : ` of ${sig.vocabulary}`}`);
  }
}

/** log softmax(row)[target] of the `n` values at `offset`, in float64. */
function logSoftmaxAt(data: Float32Array, offset: number, n: number, target: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (data[offset + j] > max) max = data[offset + j];
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(data[offset + j] - max);
  return data[offset + target] - max - Math.log(sum);
}

export interface GenerationOptions {
  /** New tokens to generate (greedy: the most likely each step). */
  tokens: number;
  /** Keep the logits of every step (tests compare them with a run without the cache). */
  keepLogits?: boolean;
  /**
   * The prompt's model of a separate pair (optimum's decoder_model.onnx: no past inputs, present
   * outputs named as the with-past model's); the new tokens run through `session`, the with-past one.
   */
  prefill?: { session: ModelSession; sig: DecoderSignature };
}

export interface GenerationResult {
  /** The generated tokens (the prompt not included). */
  tokens: number[];
  /** Seconds of the prompt's run (prefill) and of the new tokens' runs. */
  prefillSeconds: number;
  decodeSeconds: number;
  /** New tokens per second of decoding, each step one token through the KV cache. */
  tokensPerSecond: number;
  /** The last position's logits after the prompt and after each new token (with `keepLogits`). */
  logits?: Float32Array[];
}

/** Greedy generation after `prompt`, one token per run, feeding each run's present tensors back as the next past. */
export async function generate(ort: OrtModule, session: ModelSession, sig: DecoderSignature, prompt: readonly number[], options: GenerationOptions): Promise<GenerationResult> {
  if (sig.cache.length === 0) throw new Error('generate: the model has no KV cache (past_key_values / present)');
  if (prompt.length === 0) throw new Error('generate: the prompt is empty');
  checkTokens(prompt, sig, 'generate');
  const outputs = [sig.logits, ...sig.cache.flatMap((p) => [p.presentKey, p.presentValue])];
  const kept: Float32Array[] = [];
  const generated: number[] = [];
  let cache: Record<string, OrtTensor> | undefined;
  let past = 0;
  let next = prompt;
  let prefillSeconds = 0;
  let decodeSeconds = 0;
  for (let step = 0; step <= options.tokens; step++) {
    const started = performance.now();
    const first = step === 0 ? options.prefill : undefined;
    const result = first === undefined ? await session.run(decoderFeeds(ort, sig, next, 1, past, cache), outputs) : await first.session.run(decoderFeeds(ort, first.sig, next, 1, past), outputs);
    const logits = result[sig.logits];
    const vocabulary = logits.dims[2];
    const last = floatData(logits, sig.logits).subarray((next.length - 1) * vocabulary, next.length * vocabulary);
    let best = 0;
    for (let j = 1; j < vocabulary; j++) if (last[j] > last[best]) best = j;
    const seconds = (performance.now() - started) / 1000;
    if (step === 0) prefillSeconds = seconds;
    else decodeSeconds += seconds;
    if (options.keepLogits) kept.push(Float32Array.from(last));
    if (step === options.tokens) break;
    generated.push(best);
    past += next.length;
    cache = result;
    next = [best];
  }
  return { tokens: generated, prefillSeconds, decodeSeconds, tokensPerSecond: decodeSeconds > 0 ? options.tokens / decodeSeconds : 0, ...(options.keepLogits ? { logits: kept } : {}) };
}

/**
 * Calibration samples for a decoder: `count` windows of `context` tokens taken from `tokens` one
 * after another, each as the inputs of a run from an empty cache (past tensors of length 0).
 */
export function decoderSamples(sig: DecoderSignature, tokens: ArrayLike<number>, context: number, count: number, description = 'decoder windows'): SampleSource {
  const windows = Math.min(count, Math.floor(tokens.length / context));
  if (windows === 0) throw new Error(`decoder samples: ${tokens.length} tokens are fewer than one window of ${context}`);
  const make = (w: number): Record<string, Tensor> => {
    const ids = Array.from({ length: context }, (_, i) => tokens[w * context + i]);
    const inputs: Record<string, Tensor> = {
      [sig.inputIds]: sig.idType === DataType.INT64 ? Tensor.fromArray(sig.inputIds, DataType.INT64, [1, context], BigInt64Array.from(ids, BigInt)) : Tensor.fromArray(sig.inputIds, DataType.INT32, [1, context], Int32Array.from(ids)),
    };
    if (sig.attentionMask !== undefined) inputs[sig.attentionMask] = Tensor.fromArray(sig.attentionMask, DataType.INT64, [1, context], new BigInt64Array(context).fill(1n));
    if (sig.positionIds !== undefined) inputs[sig.positionIds] = Tensor.fromArray(sig.positionIds, DataType.INT64, [1, context], BigInt64Array.from({ length: context }, (_, i) => BigInt(i)));
    for (const pair of sig.cache) {
      for (const name of [pair.pastKey, pair.pastValue]) {
        inputs[name] = Tensor.fromArray(name, sig.cacheType, [1, sig.heads, 0, sig.headDim], sig.cacheType === DataType.FLOAT16 ? new Uint16Array(0) : new Float32Array(0));
      }
    }
    return inputs;
  };
  return {
    inputs: Object.keys(make(0)),
    count: windows,
    description: `${description} (${windows} x ${context} tokens)`,
    async *[Symbol.asyncIterator]() {
      for (let w = 0; w < windows; w++) yield { index: w, where: `${description} window ${w}`, inputs: make(w) } satisfies Sample;
    },
  };
}
