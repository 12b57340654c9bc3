// `shrink quantize MODEL_DIR|MODEL.onnx -o OUT_DIR --target transformers.js --dtype fp16,q8,q4,...`:
// the transformers.js target of quantize. Finds the models (a model folder with onnx/ inside, an
// onnx folder, or one file), asks the library (src/pipeline/transformers-js.ts) for the plan and
// each dtype, writes every file under the name transformers.js requests (external data as
// `<file>_data`), and keeps config.json's `transformers.js_config` true to what is on disk.
// Every file is checked (fidelity, gate, onnxruntime load) before it is written.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { modelSignature } from '../eval/match-inputs.js';
import { generatedSamples } from '../eval/sample-generate.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import { modelFileBytes, type SavedModel, saveModel, saveModelVerified } from '../node/model-files.js';
import { nodeEnvironment } from '../node/environment.js';
import { checkLoads } from '../node/load-check.js';
import { openSampleFile } from '../node/sample-files.js';
import { removeTemp, tempPathFor, trackTemp, untrackTemp } from '../node/temp-files.js';
import { modelBytes } from '../onnx/model-size.js';
import { formatBytes } from '../inspect/table.js';
import type { RecipeContext } from '../pipeline/context.js';
import type { Gate } from '../pipeline/gate.js';
import type { PassWarning } from '../pipeline/pass.js';
import { formatQuantizeReport } from '../pipeline/quantize-report.js';
import { envelope } from '../pipeline/report-envelope.js';
import { sizeChange } from '../pipeline/size-change.js';
import {
  type BuiltDtype,
  DEFAULT_TRANSFORMERS_JS_DTYPES,
  missingConfigDtypes,
  onnxBaseName,
  parseTransformersJsDtypes,
  planTransformersJs,
  quantizeForTransformersJs,
  type TransformersJsDtypeResult,
  type TransformersJsSettings,
  transformersJsDataFileName,
  transformersJsInputs,
  updateTransformersJsConfig,
} from '../pipeline/transformers-js.js';
import type { Labels } from '../eval/labels.js';
import { inFile, UsageError } from './errors.js';
import { loadModelFile, readLabelsFile } from './input-files.js';
import { memoryBudget } from './large-models.js';
import { checkOutput } from './output-checks.js';
import { parseDims, wholeNumber } from './options.js';
import { generatedRanges } from '../eval/generated-ranges.js';

export const TRANSFORMERS_JS_TARGET = 'transformers.js';

/** Flags of `quantize` the target reads. */
export interface TransformersJsFlags {
  output: string;
  dtype?: string;
  data?: string;
  labels?: string;
  samples?: string;
  dims?: string;
  externalData?: boolean;
}

/** Where the models are and where they go; `root`/`outRoot` hold config.json and the tokenizer. */
interface Layout {
  onnxDir: string;
  files: string[];
  root?: string;
  outOnnx: string;
  outRoot?: string;
}

/** Generated inputs for transformers.js models: sizes for the usual symbolic dims and id ranges that stay in bounds. */
const DEFAULT_DIMS: Readonly<Record<string, number>> = { batch_size: 1, sequence_length: 16, encoder_sequence_length: 16, past_sequence_length: 1, total_sequence_length: 17 };

export interface TransformersJsRun {
  outputs: { input: string; dtype: BuiltDtype; file: string; data_file: string | null; bytes: number; report: TransformersJsDtypeResult['report'] }[];
  unchanged: string[];
  config: string | null;
  copied: string[];
}

/** Runs the target; `settings` and `gate` come from the shared quantize flags. */
export async function runTransformersJs(
  input: string,
  flags: TransformersJsFlags,
  settings: TransformersJsSettings,
  gate: Gate,
  ctx: RecipeContext,
  onOutput: (line: string) => void = () => {},
) {
  let dtypes: BuiltDtype[];
  try {
    dtypes = flags.dtype === undefined ? [...DEFAULT_TRANSFORMERS_JS_DTYPES] : parseTransformersJsDtypes(flags.dtype);
  } catch (error) {
    throw new UsageError(`--dtype: ${(error as Error).message}`);
  }
  const samples = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 0);
  if (flags.labels !== undefined && flags.data === undefined) throw new UsageError('--labels go with --data (the samples they label)');
  if (samples === 0 && Object.keys(gate).length > 0) throw new UsageError('--samples 0 skips the check that --min-cosine/--max-drop need');
  const layout = findLayout(input, flags.output);
  if (flags.data !== undefined && layout.files.length > 1) {
    throw new UsageError(`--data fits one model's inputs; ${layout.onnxDir} holds ${layout.files.length} (${layout.files.join(', ')}): quantize them one file at a time to check each on data`);
  }
  checkOutput({ output: flags.output.endsWith('/') || flags.output.endsWith(path.sep) ? flags.output : `${flags.output}${path.sep}`, flag: '-o', inputs: [flags.data, flags.labels], folderAllowed: true });
  fs.mkdirSync(layout.outOnnx, { recursive: true });
  const sameFolder = realPath(layout.onnxDir) === realPath(layout.outOnnx);
  let plan: ReturnType<typeof planTransformersJs>;
  try {
    plan = planTransformersJs(layout.files, dtypes, { sameFolder });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const labels: Labels | undefined = flags.labels === undefined ? undefined : readLabelsFile(flags.labels);
  const config = readConfig(layout);

  const run: TransformersJsRun = { outputs: [], unchanged: plan.unchanged.map((u) => path.join(layout.outOnnx, u.output)), config: null, copied: [] };
  const warnings: PassWarning[] = [];
  let bytesBefore = 0;
  for (const file of layout.files) {
    const entries = plan.outputs.filter((o) => o.input === file);
    if (entries.length === 0) continue;
    const inputFile = path.join(layout.onnxDir, file);
    const original = loadModelFile(inputFile);
    bytesBefore += modelFileBytes(inputFile, original);
    let source: SampleSource | undefined;
    try {
      source = flags.data === undefined ? undefined : await openSampleFile(flags.data, modelSignature(original));
      const fidelity = samples === 0 ? { skipped: '--samples 0' } : fidelitySamples(original, source, samples, flags.dims, config);
      for (const entry of entries) {
        const { model, report } = await quantizeForTransformersJs(
          original,
          entry.dtype,
          {
            settings,
            gate,
            fidelity: 'samples' in fidelity ? { samples: fidelity.samples, limit: source === undefined ? undefined : samples, labels } : undefined,
            fidelitySkipped: 'skipped' in fidelity ? fidelity.skipped : undefined,
          },
          ctx,
        );
        const target = path.join(layout.outOnnx, entry.output);
        const external = flags.externalData === true || original.graph.initializers.some((t) => t.isExternal) || modelBytes(model) > INLINE_LIMIT;
        const saved = await writeTransformersJsModel(model, target, { externalData: external });
        warnings.push(...saved.warnings);
        run.outputs.push({ input: inputFile, dtype: entry.dtype, file: target, data_file: saved.dataFiles[0] ?? null, bytes: saved.bytes, report });
        onOutput(`${entry.dtype.padEnd(6)} ${target}  ${formatBytes(saved.bytes)}  ${report.verdict.message}`);
      }
    } finally {
      await source?.close?.();
    }
  }

  // config.json: external data recorded per file; defaults that name missing files are warned about.
  if (layout.outRoot !== undefined && config !== undefined) {
    const configFile = path.join(layout.outRoot, 'config.json');
    const onDisk = new Set(fs.readdirSync(layout.outOnnx));
    const written = run.outputs.map((o) => ({ file: path.basename(o.file), chunks: o.data_file === null ? 0 : 1, base: onnxBaseName(o.input) }));
    const writtenNames = new Set(written.map((w) => w.file));
    const others = [...onDisk].filter((f) => f.endsWith('.onnx') && !writtenNames.has(f)).map((file) => ({ file, chunks: 0 }));
    const updated = updateTransformersJsConfig(config.value, written, others);
    if (updated !== undefined || config.file !== configFile) {
      writeJsonAtomically(configFile, updated ?? config.value);
      run.config = configFile;
    }
    const bases = [...new Set([...onDisk].filter((f) => f.endsWith('.onnx')).map((f) => transformersJsInputs([...onDisk]).inputs.includes(f) ? onnxBaseName(f) : undefined).filter((b) => b !== undefined))] as string[];
    for (const message of missingConfigDtypes(updated ?? config.value, bases, (f) => onDisk.has(f))) warnings.push({ code: 'config-dtype-missing', message: `${configFile}: ${message}` });
  }
  // A new model folder gets the input folder's other files (tokenizer, generation config, ...).
  if (layout.root !== undefined && layout.outRoot !== undefined && realPath(layout.root) !== realPath(layout.outRoot)) {
    for (const entry of fs.readdirSync(layout.root, { withFileTypes: true })) {
      if (!entry.isFile() || entry.name === 'config.json') continue;
      const to = path.join(layout.outRoot, entry.name);
      if (fs.existsSync(to)) continue;
      fs.copyFileSync(path.join(layout.root, entry.name), to);
      run.copied.push(to);
    }
  }
  const bytesAfter = run.outputs.reduce((n, o) => n + o.bytes, 0);
  return envelope(
    {
      command: 'quantize',
      input,
      output: layout.outOnnx,
      size: sizeChange(bytesBefore, bytesAfter),
      warnings: [...run.outputs.flatMap((o) => [...o.report.warnings, ...(o.report.fidelity?.warnings ?? [])]), ...warnings],
    },
    { target: TRANSFORMERS_JS_TARGET, dtypes, ...run },
    nodeEnvironment(),
  );
}

/** The text report: one block per file written. */
export function formatTransformersJsRun(run: TransformersJsRun): string {
  const lines: string[] = [];
  for (const o of run.outputs) {
    lines.push(`== ${o.dtype}: ${o.file}${o.data_file === null ? '' : ` (+ ${path.basename(o.data_file)})`}`, formatQuantizeReport(o.report).trimEnd(), '');
  }
  for (const file of run.unchanged) lines.push(`fp32: ${file} is the input itself (left as it is)`);
  if (run.config !== null) lines.push(`config: ${run.config}`);
  for (const file of run.copied) lines.push(`copied: ${file}`);
  return `${lines.join('\n')}\n`;
}

/** Models whose weights pass this are written with external data (protobuf's 2 GiB, less a margin). */
const INLINE_LIMIT = 2 ** 31 - 64 * 2 ** 20;

function findLayout(input: string, output: string): Layout {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(input);
  } catch {
    throw new Error(`${input}: no such file or folder`);
  }
  const outIsFolder = output.endsWith('/') || output.endsWith(path.sep) || (fs.existsSync(output) && fs.statSync(output).isDirectory());
  if (!outIsFolder) throw new UsageError(`-o ${output}: --target ${TRANSFORMERS_JS_TARGET} writes several files into a folder; give a folder (end it with / to create it)`);
  const out = output.replace(/[/\\]+$/, '') || output;
  const configBeside = (onnxDir: string) => (path.basename(path.resolve(onnxDir)) === 'onnx' && fs.existsSync(path.join(path.dirname(path.resolve(onnxDir)), 'config.json')) ? path.dirname(onnxDir) : undefined);
  const outRootOf = (outOnnx: string) => (path.basename(path.resolve(outOnnx)) === 'onnx' ? path.dirname(outOnnx) : undefined);
  if (stat.isFile()) {
    if (!input.endsWith('.onnx')) throw new UsageError(`${input}: not an .onnx file`);
    const onnxDir = path.dirname(input);
    return { onnxDir, files: [path.basename(input)], root: configBeside(onnxDir), outOnnx: out, outRoot: outRootOf(out) };
  }
  const nested = path.join(input, 'onnx');
  if (fs.existsSync(nested) && fs.statSync(nested).isDirectory()) {
    return { onnxDir: nested, files: modelsIn(nested), root: input, outOnnx: path.join(out, 'onnx'), outRoot: out };
  }
  return { onnxDir: input, files: modelsIn(input), root: configBeside(input), outOnnx: out, outRoot: outRootOf(out) };
}

function modelsIn(folder: string): string[] {
  const { inputs } = transformersJsInputs(fs.readdirSync(folder));
  if (inputs.length === 0) throw new Error(`${folder}: no .onnx model to quantize`);
  return inputs;
}

/** The config.json to update: the output folder's own, else the input folder's. */
function readConfig(layout: Layout): { file: string; value: Record<string, unknown> } | undefined {
  const candidates = [layout.outRoot, layout.root].filter((d) => d !== undefined).map((d) => path.join(d as string, 'config.json'));
  for (const file of candidates) {
    if (!fs.existsSync(file)) continue;
    try {
      const value = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
      return { file, value: value as Record<string, unknown> };
    } catch (error) {
      throw inFile(file, error);
    }
  }
  return undefined;
}

/** --data, else generated inputs with the usual transformers.js dims and ids in range, or why not. */
function fidelitySamples(model: Model, data: SampleSource | undefined, count: number | undefined, dims: string | undefined, config: { value: Record<string, unknown> } | undefined): { samples: SampleSource } | { skipped: string } {
  if (data !== undefined) return { samples: data };
  const inputs = modelSignature(model).inputs;
  const vocab = typeof config?.value.vocab_size === 'number' ? config.value.vocab_size : 100;
  const ranges: Record<string, readonly [number, number]> = generatedRanges(model);
  for (const input of inputs) {
    if (input.name === 'attention_mask') ranges[input.name] = [1, 1];
    else if (input.name === 'token_type_ids' || input.name === 'position_ids') ranges[input.name] = [0, 0];
    else if (input.name === 'input_ids' || input.name.endsWith('input_ids')) ranges[input.name] = [0, Math.max(0, Math.min(vocab, 1000) - 1)];
  }
  try {
    return { samples: generatedSamples(inputs, { count: count ?? 4, dims: { ...DEFAULT_DIMS, ...parseDims(dims) }, ranges }) };
  } catch (error) {
    return { skipped: `${(error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N')}, or pass --data` };
  }
}

/**
 * Writes `model` as `file`, checked by onnxruntime first. External data goes to exactly
 * `<file>_data` (transformers.js requests that name): model and data are written and load-checked
 * together in a temporary folder beside `file`, then the data file and the model are renamed into
 * place, in that order. A replaced model's `<file>_data` is removed when the new one has none.
 */
export async function writeTransformersJsModel(model: Model, file: string, options: { externalData: boolean }): Promise<SavedModel & { warnings: PassWarning[] }> {
  const warnings: PassWarning[] = [];
  const verify = async (temporary: string, bytes: number): Promise<void> => {
    const budget = memoryBudget();
    if (2 * bytes > budget) {
      warnings.push({ code: 'not-load-checked', message: `${file} was not loaded in onnxruntime before it was written: at ${formatBytes(bytes)} it may need twice that, more than the ${formatBytes(budget)} this machine can give it` });
      return;
    }
    try {
      await checkLoads(temporary, bytes);
    } catch (error) {
      throw new Error(`onnxruntime cannot load the result (${(error as Error).message}); nothing was written`);
    }
  };
  const dataFile = `${file}_data`;
  try {
    if (!options.externalData) {
      const saved = await saveModelVerified(model, file, { externalData: false, verify });
      fs.rmSync(dataFile, { force: true });
      return { ...saved, warnings };
    }
    const stage = tempPathFor(file);
    trackTemp(stage);
    try {
      fs.mkdirSync(stage);
      const base = path.basename(file);
      const staged = saveModel(model, path.join(stage, base), { externalData: { location: transformersJsDataFileName(base) } });
      if (staged.dataFiles.length !== 1 || path.basename(staged.dataFiles[0]) !== path.basename(dataFile)) {
        throw new Error(`external data went to ${staged.dataFiles.map((f) => path.basename(f)).join(', ') || 'no file'}, not ${path.basename(dataFile)}`);
      }
      await verify(staged.file, staged.bytes);
      fs.renameSync(staged.dataFiles[0], dataFile);
      fs.renameSync(staged.file, file);
      return { file, dataFiles: [dataFile], bytes: staged.bytes, warnings };
    } finally {
      removeTemp(stage);
      untrackTemp(stage);
    }
  } catch (error) {
    throw inFile(file, error);
  }
}

function writeJsonAtomically(file: string, value: unknown): void {
  const temporary = tempPathFor(file);
  trackTemp(temporary);
  try {
    fs.writeFileSync(temporary, `${JSON.stringify(value, null, 2)}\n`);
    fs.renameSync(temporary, file);
  } finally {
    untrackTemp(temporary);
    fs.rmSync(temporary, { force: true });
  }
}

/** The path with links resolved when it exists. */
function realPath(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/** The quantize flags the target reads, and those it refuses (they choose what --dtype chooses). */
export interface QuantizeTargetFlags extends TransformersJsFlags {
  target?: string;
  exclude: string[];
  keepFirstLast?: string | boolean;
  blockSize?: string;
  accuracyLevel?: string;
  symmetric?: boolean;
  asymmetric?: boolean;
  compute?: 'ort-cpu' | 'all' | 'none';
  perTensor?: boolean;
  perChannel?: boolean;
  reduceRange?: boolean;
  [flag: string]: unknown;
}

/** Flags of quantize that pick a method or its formats: --dtype does that for the target. */
const REFUSED_WITH_TARGET: readonly [string, string][] = [
  ['method', '--method'],
  ['config', '--config'],
  ['fp32Search', '--fp32-search'],
  ['fp32Rounds', '--fp32-rounds'],
  ['calib', '--calib'],
  ['calibrator', '--calibrator'],
  ['weightType', '--weight-type'],
  ['activationType', '--activation-type'],
  ['format', '--format'],
];

/** The target's settings from quantize's flags; flags it cannot honour are refused (exit 2). */
export function transformersJsSettingsFromFlags(flags: QuantizeTargetFlags): TransformersJsSettings {
  if (flags.target !== undefined && flags.target !== TRANSFORMERS_JS_TARGET) throw new UsageError(`--target must be ${TRANSFORMERS_JS_TARGET}, got '${flags.target}'`);
  if (flags.target === undefined) throw new UsageError(`--dtype goes with --target ${TRANSFORMERS_JS_TARGET}`);
  for (const [key, flag] of REFUSED_WITH_TARGET) {
    if (flags[key] !== undefined) throw new UsageError(`${flag} does not go with --target ${TRANSFORMERS_JS_TARGET}: --dtype chooses each file's method and format`);
  }
  if (Array.isArray(flags.only) && flags.only.length > 0) throw new UsageError(`--only does not go with --target ${TRANSFORMERS_JS_TARGET}: use --exclude`);
  if (flags.symmetric && flags.asymmetric) throw new UsageError('--symmetric and --asymmetric contradict each other');
  if (flags.perTensor && flags.perChannel) throw new UsageError('--per-tensor and --per-channel contradict each other');
  const blockSize = flags.blockSize === undefined ? undefined : wholeNumber(flags.blockSize, '--block-size', 1);
  if (blockSize !== undefined && ![16, 32, 64, 128, 256].includes(blockSize)) throw new UsageError(`--block-size must be 16, 32, 64, 128 or 256, got ${blockSize}`);
  return {
    exclude: flags.exclude,
    keepFirstLast: flags.keepFirstLast === undefined ? undefined : flags.keepFirstLast === true ? 1 : wholeNumber(flags.keepFirstLast as string, '--keep-first-last', 0),
    blockSize,
    accuracyLevel: flags.accuracyLevel === undefined ? undefined : wholeNumber(flags.accuracyLevel, '--accuracy-level', 0),
    symmetric: flags.asymmetric ? false : flags.symmetric ? true : undefined,
    compute: flags.compute,
    perChannel: flags.perTensor ? false : undefined,
    reduceRange: flags.reduceRange,
  };
}
