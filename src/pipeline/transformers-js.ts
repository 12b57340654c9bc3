// The transformers.js target: a model folder quantized into the files transformers.js
// (@huggingface/transformers, read from 4.3.2) loads for each `dtype`, with the meaning it gives
// each dtype, only ops the onnxruntime-web build it runs in browsers can run, external data under
// its naming, and config.json's `transformers.js_config` kept true to the files.
//
// Names (transformers.js src/utils/dtypes.js DEFAULT_DTYPE_SUFFIX_MAPPING, src/utils/model-loader.js):
//   `${base}${suffix}.onnx`, external data `${file}_data` (then `_data_1`, ... for chunks), where
//   base is the model's own file name (model, encoder_model, decoder_model_merged, ...).
// What each dtype is (what transformers.js's own conversion scripts make):
//   fp32   the float model as it is
//   fp16   float16 weights and float16 compute (graph inputs and outputs stay float32)
//   q8     dynamic int8 ("quantized"): int8 weights, activations quantized at run time
//   int8   the same with int8 weight codes; uint8 with uint8 codes
//   q4     4-bit block weights (MatMulNBits, block 32), float32 compute
//   q4f16  a float16 model with 4-bit block weights (MatMulNBits with float16 A and scales)
//   q2, q2f16  the same with 2-bit blocks
//   bnb4   bitsandbytes NF4 blocks (com.microsoft MatMulBnb4, absmax per 64 values), float32 compute
// transformers.js runs onnxruntime-web's webgpu bundle, whose wasm kernels lack com.microsoft
// GatherBlockQuantized: embedding tables become int8 rows in standard ops instead
// (gather-int8-rows.ts), in every integer dtype. The 1-bit dtypes are not built; asking for them
// is an error that says so.
import type { Model } from '../ir/model.js';
import { exactNamePattern, firstAndLastLayers } from '../methods/quantize/first-last-layers.js';
import { gatherInt8RowsPass } from '../methods/quantize/gather-int8-rows.js';
import { matMulBnb4Pass } from '../methods/quantize/matmul-bnb4.js';
import { excludePredicate, type QuantizeMethodName, type QuantizeSettings, quantizeMethod } from '../methods/quantize/registry.js';
import { modelBytes } from '../onnx/model-size.js';
import type { RecipeContext } from './context.js';
import { comparisonWontFit, measureFidelity } from './fidelity.js';
import { checkGate, GateFailedError, isEmptyGate } from './gate.js';
import { type PassReport, runPass } from './pass.js';
import type { QuantizeOptions } from './quantize.js';
import { quantizeHints } from './quantize.js';
import { buildQuantizeReport, type QuantizeReport } from './quantize-report.js';
import { verdictOf } from './verdict.js';

/** The transformers.js release whose names and runtime this target follows (a pinned devDependency tests it). */
export const TRANSFORMERS_JS_VERSION = '4.3.2';

/** File-name suffix of every dtype transformers.js 4.3.2 knows. */
export const TRANSFORMERS_JS_SUFFIXES = {
  fp32: '',
  fp16: '_fp16',
  int8: '_int8',
  uint8: '_uint8',
  q8: '_quantized',
  q4: '_q4',
  q2: '_q2',
  q1: '_q1',
  q4f16: '_q4f16',
  q2f16: '_q2f16',
  q1f16: '_q1f16',
  bnb4: '_bnb4',
} as const;
export type TransformersJsDtype = keyof typeof TRANSFORMERS_JS_SUFFIXES;

/** The dtypes shrink builds, in the order it builds them. */
export const TRANSFORMERS_JS_DTYPES = ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'q2', 'q2f16', 'bnb4'] as const satisfies readonly TransformersJsDtype[];
export type BuiltDtype = (typeof TRANSFORMERS_JS_DTYPES)[number];

/** What `--dtype` means when it is not given: the set model repositories usually carry. */
export const DEFAULT_TRANSFORMERS_JS_DTYPES: readonly BuiltDtype[] = ['fp16', 'q8', 'q4', 'q4f16'];

const NOT_BUILT: Partial<Record<TransformersJsDtype, string>> = {
  q1: 'q1 (1-bit MatMulNBits) is not built: onnxruntime 1.30 has no 1-bit MatMulNBits kernel',
  q1f16: 'q1f16 (1-bit MatMulNBits) is not built: onnxruntime 1.30 has no 1-bit MatMulNBits kernel',
};

/** Ops onnxruntime-web's webgpu bundle (the one transformers.js uses) cannot run on its wasm side. */
const NOT_IN_TRANSFORMERS_JS_WASM: readonly { domain: string; op: string }[] = [{ domain: 'com.microsoft', op: 'GatherBlockQuantized' }];

/** Parses a comma-separated dtype list; unknown or unbuilt dtypes are an error naming the known ones. */
export function parseTransformersJsDtypes(list: string): BuiltDtype[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new Error(`no dtype given (transformers.js dtypes shrink builds: ${TRANSFORMERS_JS_DTYPES.join(', ')})`);
  const dtypes: BuiltDtype[] = [];
  for (const name of names) {
    if (name === 'auto') throw new Error(`dtype 'auto' is chosen by transformers.js at load time; name the dtypes to build (${TRANSFORMERS_JS_DTYPES.join(', ')})`);
    const reason = NOT_BUILT[name as TransformersJsDtype];
    if (reason !== undefined) throw new Error(reason);
    if (!(TRANSFORMERS_JS_DTYPES as readonly string[]).includes(name)) throw new Error(`unknown transformers.js dtype '${name}' (shrink builds ${TRANSFORMERS_JS_DTYPES.join(', ')})`);
    if (!dtypes.includes(name as BuiltDtype)) dtypes.push(name as BuiltDtype);
  }
  return dtypes;
}

/** `decoder_model_merged.onnx` -> `decoder_model_merged`. */
export function onnxBaseName(fileName: string): string {
  const name = fileName.slice(Math.max(fileName.lastIndexOf('/'), fileName.lastIndexOf('\\')) + 1);
  return name.endsWith('.onnx') ? name.slice(0, -'.onnx'.length) : name;
}

/** The file transformers.js requests for `base` at `dtype`: `model` + q4 -> `model_q4.onnx`. */
export function transformersJsFileName(base: string, dtype: TransformersJsDtype): string {
  return `${base}${TRANSFORMERS_JS_SUFFIXES[dtype]}.onnx`;
}

/** The external data file transformers.js requests for a model file (first chunk): `model_q4.onnx_data`. */
export function transformersJsDataFileName(fileName: string): string {
  return `${fileName}_data`;
}

/** A file of the folder that is another file's dtype variant (`model_q4.onnx` beside `model.onnx`). */
export interface DtypeVariant {
  file: string;
  of: string;
  dtype: TransformersJsDtype;
}

/**
 * The .onnx files of a folder that are models to quantize: every one that is not a dtype variant
 * of another file there. `model_fp16.onnx` alone is an input (its base is `model_fp16`).
 */
export function transformersJsInputs(fileNames: readonly string[]): { inputs: string[]; variants: DtypeVariant[] } {
  const onnx = fileNames.filter((f) => f.endsWith('.onnx'));
  const present = new Set(onnx);
  const inputs: string[] = [];
  const variants: DtypeVariant[] = [];
  for (const file of onnx) {
    const base = onnxBaseName(file);
    const variant = (Object.entries(TRANSFORMERS_JS_SUFFIXES) as [TransformersJsDtype, string][]).find(
      ([, suffix]) => suffix !== '' && base.endsWith(suffix) && present.has(`${base.slice(0, -suffix.length)}.onnx`),
    );
    if (variant === undefined) inputs.push(file);
    else variants.push({ file, of: `${base.slice(0, -variant[1].length)}.onnx`, dtype: variant[0] });
  }
  return { inputs: inputs.sort(), variants };
}

/** One file to write: `input` (a file name in the folder) at `dtype` as `output`. */
export interface TransformersJsOutput {
  input: string;
  base: string;
  dtype: BuiltDtype;
  output: string;
}

/** Every input at every dtype, in input order; an output that would be one of the inputs is refused. */
export function planTransformersJs(inputs: readonly string[], dtypes: readonly BuiltDtype[], options: { sameFolder: boolean }): { outputs: TransformersJsOutput[]; unchanged: TransformersJsOutput[] } {
  const outputs: TransformersJsOutput[] = [];
  const unchanged: TransformersJsOutput[] = [];
  const taken = new Map<string, string>();
  for (const input of inputs) {
    const base = onnxBaseName(input);
    for (const dtype of dtypes) {
      const output = transformersJsFileName(base, dtype);
      const entry = { input, base, dtype, output };
      // fp32 into the input's own folder is the input itself: nothing to write.
      if (options.sameFolder && output === input) {
        unchanged.push(entry);
        continue;
      }
      if (options.sameFolder && inputs.includes(output)) throw new Error(`${input} at ${dtype} would be written as ${output}, which is one of the models to quantize`);
      const other = taken.get(output);
      if (other !== undefined) throw new Error(`${input} and ${other} would both be written as ${output}`);
      taken.set(output, input);
      outputs.push(entry);
    }
  }
  return { outputs, unchanged };
}

/** One step of a dtype's recipe: a registry method with its settings, or the embedding pass. */
type RecipeStep =
  | { method: QuantizeMethodName; settings: QuantizeSettings; main?: boolean }
  | { embeddings: true; settings: QuantizeSettings }
  | { bnb4: true; settings: QuantizeSettings; main: true };

/** The user's settings a target accepts: exclusions, first/last layers, block size, symmetry, fp16 compute, int8 per-channel/range. */
export type TransformersJsSettings = Pick<QuantizeSettings, 'exclude' | 'keepFirstLast' | 'blockSize' | 'symmetric' | 'compute' | 'perChannel' | 'reduceRange' | 'accuracyLevel'>;

/** The steps that make `dtype`, in order; `settings.exclude` already holds the first/last layers. */
export function dtypeRecipe(dtype: BuiltDtype, settings: TransformersJsSettings): RecipeStep[] {
  const exclude = settings.exclude ?? [];
  const half: RecipeStep = { method: 'fp16', settings: { exclude, compute: settings.compute ?? 'all' } };
  // Weight-only methods would turn Gather into GatherBlockQuantized: embeddings go to their own pass.
  const blocks = (method: 'int4' | 'int2'): RecipeStep => ({
    method,
    main: true,
    settings: { exclude: [...exclude, 'Gather'], blockSize: settings.blockSize, symmetric: settings.symmetric, accuracyLevel: settings.accuracyLevel },
  });
  const dynamic = (weightType: 'int8' | 'uint8'): RecipeStep => ({
    method: 'dynamic-int8',
    main: true,
    settings: { exclude, weightType, perChannel: settings.perChannel ?? true, reduceRange: settings.reduceRange, symmetric: settings.symmetric },
  });
  const embeddings: RecipeStep = { embeddings: true, settings: { exclude } };
  switch (dtype) {
    case 'fp32':
      return [];
    case 'fp16':
      return [{ ...half, main: true }];
    case 'q8':
    case 'int8':
      return [dynamic('int8'), embeddings];
    case 'uint8':
      return [dynamic('uint8'), embeddings];
    case 'q4':
      return [blocks('int4'), embeddings];
    case 'q2':
      return [blocks('int2'), embeddings];
    case 'bnb4':
      return [{ bnb4: true, main: true, settings: { exclude, blockSize: settings.blockSize } }, embeddings];
    // Half precision first: the block quantizer then reads float16 weights and gives MatMulNBits
    // float16 scales for a float16 A, which is what q4f16 means.
    case 'q4f16':
      return [half, blocks('int4'), embeddings];
    case 'q2f16':
      return [half, blocks('int2'), embeddings];
  }
}

export interface TransformersJsDtypeOptions extends Pick<QuantizeOptions, 'fidelity' | 'fidelitySkipped' | 'gate' | 'verdict'> {
  settings?: TransformersJsSettings;
}

export interface TransformersJsDtypeResult {
  model: Model;
  report: QuantizeReport & { dtype: BuiltDtype };
}

/**
 * Builds `dtype` of `model` (a new Model; the input is unchanged), measures it against the
 * original, gives the verdict, and checks the gate (GateFailedError on a miss).
 */
export async function quantizeForTransformersJs(model: Model, dtype: BuiltDtype, options: TransformersJsDtypeOptions, ctx: RecipeContext): Promise<TransformersJsDtypeResult> {
  const given = options.settings ?? {};
  const ends = firstAndLastLayers(model, given.keepFirstLast ?? 0).map(exactNamePattern);
  const settings: TransformersJsSettings = { ...given, exclude: [...(given.exclude ?? []), ...ends] };
  const steps = dtypeRecipe(dtype, settings);
  const candidate = model.clone();
  const reports: { step: RecipeStep; report: PassReport }[] = [];
  for (const step of steps) {
    if ('embeddings' in step) {
      reports.push({ step, report: await runPass(gatherInt8RowsPass, candidate, { exclude: excludePredicate(step.settings) }, ctx) });
      continue;
    }
    if ('bnb4' in step) {
      reports.push({ step, report: await runPass(matMulBnb4Pass, candidate, { blockSize: step.settings.blockSize, exclude: excludePredicate(step.settings) }, ctx) });
      continue;
    }
    const method = quantizeMethod(step.method);
    if (method.pass === undefined) throw new Error(`quantize: method '${method.name}' is not implemented yet`);
    reports.push({ step, report: await runPass(method.pass, candidate, method.options(step.settings) as never, ctx) });
  }
  const unsupported = transformersJsOpProblems(candidate);
  if (unsupported.length > 0) throw new Error(`transformers.js ${dtype}: the result uses ${unsupported.join(', ')}, which the onnxruntime-web build transformers.js runs cannot run`);

  const { fidelity, fidelitySkipped, gate, verdict } = options;
  const tooLarge = fidelity === undefined ? undefined : comparisonWontFit(model, candidate, ctx);
  const measured = fidelity === undefined || tooLarge !== undefined ? undefined : await measureFidelity(model, candidate, fidelity, ctx);
  const skipped = fidelity === undefined ? (fidelitySkipped ?? 'no samples given') : tooLarge;
  const main = reports.find((r) => 'main' in r.step && r.step.main === true) ?? reports[0];
  const mainMethod = main !== undefined && 'method' in main.step ? quantizeMethod(main.step.method) : undefined;
  const before = modelBytes(model);
  const after = modelBytes(candidate);
  const report = buildQuantizeReport({
    method: `transformers.js ${dtype}`,
    bytesBefore: before,
    bytesAfter: after,
    outcome: main?.report ?? { pass: 'none', stats: {}, warnings: [], ms: 0 },
    extra: reports.filter((r) => r !== main).map((r) => r.report),
    fidelity: measured,
    fidelitySkipped: skipped,
    verdict: verdictOf(measured, { thresholds: verdict, hints: mainMethod === undefined ? [] : quantizeHints(mainMethod, settings), why: skipped }),
  });
  if (gate !== undefined && !isEmptyGate(gate)) {
    const misses = checkGate(gate, measured, after / before);
    report.gate = { passed: misses.length === 0, misses };
    if (misses.length > 0) throw new GateFailedError(misses, `quantize gate (transformers.js ${dtype})`);
  }
  return { model: candidate, report: { ...report, dtype } };
}

/** Ops of `model` (all scopes) that transformers.js's onnxruntime-web build cannot run, as `domain:op`. */
export function transformersJsOpProblems(model: Model): string[] {
  const found = new Set<string>();
  for (const { node } of model.graph.allNodes()) {
    if (NOT_IN_TRANSFORMERS_JS_WASM.some((o) => o.op === node.opType && o.domain === node.domain)) found.add(`${node.domain}:${node.opType}`);
  }
  return [...found];
}

/** External data in config.json: a chunk count (or boolean) for all files, or one per file name. */
export type ExternalDataSetting = boolean | number | Record<string, boolean | number>;

/** A model file in the output folder and how many external data chunks transformers.js must fetch for it. */
export interface ModelFileData {
  file: string;
  chunks: number;
  /** The name transformers.js also looks the setting up by: the model's base name without the dtype suffix (`model` for `model_q4.onnx`). */
  base?: string;
}

/**
 * `config` with `transformers.js_config.use_external_data_format` (top level and per device)
 * true to the files: `written` are the files just written, `others` the .onnx files already in
 * the folder with what they use. A global setting that would now be wrong for some file becomes a
 * per-file map (transformers.js reads `file.onnx` before the base name). Returns the new config,
 * or undefined when nothing needs to change.
 */
export function updateTransformersJsConfig(config: Record<string, unknown>, written: readonly ModelFileData[], others: readonly ModelFileData[]): Record<string, unknown> | undefined {
  const current = (config['transformers.js_config'] ?? {}) as Record<string, unknown>;
  const next: Record<string, unknown> = structuredClone(current);
  let changed = false;
  const update = (holder: Record<string, unknown>, always: boolean): void => {
    const old = holder.use_external_data_format as ExternalDataSetting | null | undefined;
    const needed = written.some((w) => w.chunks > 0);
    if (!always && old === undefined) return;
    if ((old === undefined || old === null || old === false || old === 0) && !needed) return;
    const map: Record<string, boolean | number> = typeof old === 'object' && old !== null ? { ...old } : {};
    if (typeof old !== 'object' && old !== null && old !== undefined && Number(old) > 0) for (const o of others) map[o.file] = Number(old);
    for (const w of written) {
      const base = w.base ?? onnxBaseName(w.file);
      if (w.chunks > 0 || map[w.file] !== undefined || map[base] !== undefined) map[w.file] = w.chunks;
    }
    const before = JSON.stringify(old ?? null);
    const after = JSON.stringify(map);
    if (before !== after) {
      holder.use_external_data_format = map;
      changed = true;
    }
  };
  update(next, true);
  const devices = next.device_config as Record<string, Record<string, unknown>> | undefined;
  if (devices !== undefined) for (const device of Object.values(devices)) if (device !== null && typeof device === 'object') update(device, false);
  if (!changed) return undefined;
  return { ...config, 'transformers.js_config': next };
}

/**
 * Dtypes config.json names as defaults (`transformers.js_config.dtype`, per device too) whose
 * files the folder does not have: transformers.js would request a missing file.
 */
export function missingConfigDtypes(config: Record<string, unknown>, bases: readonly string[], has: (file: string) => boolean): string[] {
  const current = (config['transformers.js_config'] ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  const check = (where: string, dtype: unknown): void => {
    if (dtype === undefined || dtype === null) return;
    const entries: [string[], unknown][] = typeof dtype === 'string' ? [[[...bases], dtype]] : Object.entries(dtype as Record<string, unknown>).map(([base, d]) => [[base], d]);
    for (const [forBases, d] of entries) {
      if (typeof d !== 'string' || !(d in TRANSFORMERS_JS_SUFFIXES)) continue;
      for (const base of forBases) {
        const file = transformersJsFileName(base, d as TransformersJsDtype);
        if (!has(file)) problems.push(`${where} is '${d}' but the folder has no ${file}`);
      }
    }
  };
  check('transformers.js_config.dtype', current.dtype);
  const devices = current.device_config as Record<string, Record<string, unknown>> | undefined;
  for (const [device, settings] of Object.entries(devices ?? {})) check(`transformers.js_config.device_config.${device}.dtype`, settings?.dtype);
  return problems;
}
