// `shrink eval MODEL [CANDIDATE] --perplexity TEXT`: perplexity of decoder language models on a
// text (its UTF-8 bytes as token ids, for byte-level models, or token ids from a .json array),
// and with --generate N greedy tokens per second through the KV cache. Reads files, calls the
// decoder evaluation step (src/pipeline/decoder-eval.ts), prints a table or --json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decoderSignature } from '../eval/decoder.js';
import { renderTable } from '../inspect/table.js';
import { nodeEnvironment } from '../node/environment.js';
import { type DecoderEvalRow, evaluateDecoders } from '../pipeline/decoder-eval.js';
import { envelope } from '../pipeline/report-envelope.js';
import { UsageError } from './errors.js';
import { loadModelFile, readInputFile } from './input-files.js';
import type { CliContext } from './main.js';
import { wholeNumber } from './options.js';
import type { cliRecipeContext } from './recipe-context.js';

export interface PerplexityFlags {
  perplexity: string;
  context?: string;
  stride?: string;
  generate?: string;
  prompt?: string;
  json?: boolean;
}

export async function runPerplexityEval(files: string[], flags: PerplexityFlags, ctx: ReturnType<typeof cliRecipeContext>, io: CliContext['io']): Promise<void> {
  const context = flags.context === undefined ? contextFromConfig(files[0]) : wholeNumber(flags.context, '--context', 2);
  const stride = flags.stride === undefined ? undefined : wholeNumber(flags.stride, '--stride', 1);
  if (stride !== undefined && stride > context) throw new UsageError(`--stride ${stride} is longer than the context (${context})`);
  const generateTokens = flags.generate === undefined ? 0 : wholeNumber(flags.generate, '--generate', 1);
  if (flags.prompt !== undefined && generateTokens === 0) throw new UsageError('--prompt goes with --generate N');
  const tokens = readTokens(flags.perplexity);
  const models = files.map((file) => {
    const model = loadModelFile(file);
    const partner = generateTokens > 0 ? withPastPartner(file) : undefined;
    return { name: file, model, ...(partner === undefined ? {} : { withPast: { name: partner, model: loadModelFile(partner) } }) };
  });
  for (const { name, model, withPast } of models) {
    // The structure first (a model lacking what an option needs says so), then the ids against the vocabulary.
    const vocabulary = decoderSignature(model, name, generateTokens > 0 && withPast === undefined).vocabulary;
    if (vocabulary === undefined) continue;
    const outside = Array.prototype.findIndex.call(tokens, (t: number) => t >= vocabulary);
    if (outside >= 0) throw new Error(`${flags.perplexity}: token ${tokens[outside]} at position ${outside} is outside the vocabulary of ${name} (${vocabulary})`);
  }
  const prompt = flags.prompt === undefined ? undefined : Array.from(new TextEncoder().encode(flags.prompt));
  const rows = await evaluateDecoders(models, tokens, { context, stride, generate: generateTokens, prompt }, ctx);
  const body = { text: flags.perplexity, context, stride: stride ?? context, models: rows };
  const report = envelope({ command: 'eval', input: files.length === 1 ? files[0] : { original: files[0], candidate: files[1] }, output: null }, body, nodeEnvironment());
  io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatPerplexity(flags.perplexity, context, stride ?? context, rows));
}

/**
 * optimum's separate pair: beside decoder_model[_suffix].onnx, decoder_with_past_model[_suffix].onnx
 * runs the new tokens of --generate (the first model has no past inputs). Undefined when absent.
 */
function withPastPartner(file: string): string | undefined {
  const base = path.basename(file);
  if (!/^decoder_model(_[\w-]+)?\.onnx$/.test(base)) return undefined;
  const partner = path.join(path.dirname(file), base.replace(/^decoder_model/, 'decoder_with_past_model'));
  return fs.existsSync(partner) ? partner : undefined;
}

/** The text's token ids: a JSON array of integers, else the file's bytes (byte-level models). */
function readTokens(file: string): ArrayLike<number> {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.json') {
    const parsed = JSON.parse(new TextDecoder().decode(readInputFile(file))) as unknown;
    if (!Array.isArray(parsed) || !parsed.every((v) => Number.isInteger(v) && v >= 0)) throw new Error(`${file}: a JSON token file must be an array of non-negative integers`);
    return parsed as number[];
  }
  return readInputFile(file);
}

/** n_positions or max_position_embeddings of the config.json beside the model (or one folder up, transformers.js's onnx/). */
function contextFromConfig(modelFile: string): number {
  const folder = path.dirname(modelFile);
  for (const config of [path.join(folder, 'config.json'), path.join(folder, '..', 'config.json')]) {
    if (!fs.existsSync(config)) continue;
    const parsed = JSON.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
    const value = parsed.n_positions ?? parsed.max_position_embeddings;
    if (typeof value === 'number' && Number.isInteger(value) && value >= 2) return value;
  }
  throw new UsageError(`--perplexity needs the model's context: give --context N (no config.json with n_positions beside ${modelFile})`);
}

function formatPerplexity(text: string, context: number, stride: number, rows: DecoderEvalRow[]): string {
  const generation = rows.some((r) => r.generation !== undefined);
  const lines = [`text       ${text}: ${rows[0].tokens} tokens scored in ${rows[0].windows} windows of ${context} (stride ${stride})`, ''];
  lines.push(
    ...renderTable(
      [
        { header: 'model' },
        { header: 'perplexity', align: 'right' },
        { header: 'nll/token', align: 'right' },
        { header: 'seconds', align: 'right' },
        ...(generation ? [{ header: 'generate tok/s', align: 'right' as const }] : []),
      ],
      rows.map((r) => [r.name, r.perplexity.toFixed(4), r.nll.toFixed(4), r.seconds.toFixed(2), ...(generation ? [r.generation?.tokens_per_second.toFixed(1) ?? ''] : [])]),
      '',
    ),
  );
  if (rows.length === 2) lines.push('', `candidate/original perplexity: ${(rows[1].perplexity / rows[0].perplexity).toFixed(4)}`);
  for (const row of rows) {
    if (row.generation === undefined || row.generation.tokens.some((t) => t > 255)) continue;
    const sample = new TextDecoder().decode(Uint8Array.from(row.generation.tokens.filter((t) => t < 256)));
    lines.push(`${row.name} generates (greedy, ${row.generation.new_tokens} tokens as UTF-8 bytes): ${JSON.stringify(sample)}`);
  }
  return `${lines.join('\n')}\n`;
}
