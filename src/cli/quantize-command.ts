// `shrink quantize IN -o OUT --method M`: runs one quantization method from the registry, writes
// the result (into a folder under the transformers.js file name when OUT is a folder), and
// reports what changed: sizes, nodes quantized and skipped with reasons, weight SQNR, and output
// fidelity against the original on --data or generated samples. --json prints the report object.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { env as ortEnv } from 'onnxruntime-node';
import { compareModels } from '../eval/compare.js';
import type { EvalReport } from '../eval/eval-report.js';
import { modelSignature } from '../eval/match-inputs.js';
import { generatedSamples } from '../eval/sample-generate.js';
import type { SampleSource } from '../eval/samples.js';
import type { Model } from '../ir/model.js';
import { parseQuantizeConfig, type QuantizeConfig, settingsFromConfig } from '../methods/quantize/config.js';
import { CALIBRATOR_NAMES, type CalibratorName } from '../methods/quantize/calibration/registry.js';
import { exactNamePattern, firstAndLastLayers } from '../methods/quantize/first-last-layers.js';
import { type Fp32SearchRound, searchFp32Layers } from '../methods/quantize/fp32-search.js';
import { type QuantizeStep, quantizeSteps } from '../methods/quantize/mixed-precision.js';
import { nodeSelector } from '../methods/quantize/node-selector.js';
import { QUANTIZE_METHOD_NAMES, type QuantizeMethodName, type QuantizeSettings, quantizeMethod } from '../methods/quantize/registry.js';
import { buildQuantizeReport, formatQuantizeReport, type QuantizeReport } from '../methods/quantize/report.js';
import { loadModel, saveModel } from '../node/model-files.js';
import { nodeOrt } from '../node/ort-node.js';
import { openSampleFile } from '../node/sample-files.js';
import { runPass } from '../pipeline/pass.js';
import { inFile, UsageError } from './errors.js';
import { collect, parseDims, positiveNumber, wholeNumber } from './options.js';
import type { CliContext } from './main.js';

interface QuantizeFlags {
  output: string;
  method?: QuantizeMethodName;
  blockSize?: string;
  symmetric?: boolean;
  asymmetric?: boolean;
  exclude: string[];
  keepFirstLast?: string | boolean;
  fp32Search?: string;
  fp32Rounds?: string;
  config?: string;
  compute?: 'ort-cpu' | 'all' | 'none';
  json?: boolean;
  data?: string;
  samples?: string;
  dims?: string;
  perTensor?: boolean;
  reduceRange?: boolean;
  weightType?: 'int8' | 'uint8';
  calib?: string;
  calibrator?: CalibratorName;
  perChannel?: boolean;
}

export function registerQuantize(program: Command, context: CliContext): void {
  program
    .command('quantize')
    .description('quantize a model (fp16, bf16, weight-only int8/int4/int2/ternary/binary) and report size, skipped nodes and fidelity')
    .argument('<input>', 'the ONNX model to quantize')
    .requiredOption('-o, --output <path>', 'output file, or a folder (gets the transformers.js file name, e.g. model_fp16.onnx)')
    .addOption(new Option('--method <method>', 'quantization method').choices([...QUANTIZE_METHOD_NAMES]))
    .option('--block-size <n>', 'weight-only: block size along K (16-256, default 32)')
    .option('--symmetric', 'weight-only: symmetric quantization, no zero points (the default); static-int8: symmetric int8 activations')
    .option('--asymmetric', 'weight-only: asymmetric quantization with zero points')
    .option('--exclude <pattern>', 'keep nodes in float32: an op type or a node-name regex (repeatable)', collect, [])
    .option('--keep-first-last [n]', 'keep the first and the last n weighted layers (Conv, MatMul, Gemm, Gather) in float32 (n default 1)')
    .option('--fp32-search <dB>', 'keep layers in float32 from the input on until no layer of the per-layer report is below this SQNR (compared on --data, else --calib)')
    .option('--fp32-rounds <n>', 'at most this many quantize-and-compare rounds for --fp32-search (default 8)')
    .option('--config <file>', 'JSON precision config: settings and per-node rules {"match", "precision"}')
    .addOption(
      new Option('--compute <policy>', 'fp16: ops computing in float16: those with onnxruntime CPU kernels, all but fragile ones, or none').choices([
        'ort-cpu',
        'all',
        'none',
      ]),
    )
    .option('--per-tensor', 'dynamic-int8: one weight scale per tensor instead of per output channel')
    .option('--reduce-range', 'dynamic-int8: 7-bit weights (for CPUs without VNNI)')
    .addOption(new Option('--weight-type <type>', 'dynamic-int8: weight code type (default int8)').choices(['int8', 'uint8']))
    .option('--calib <path>', 'static-int8: calibration samples (an ONNX test-data folder, .npy, .npz or .json); also the default fidelity data')
    .addOption(new Option('--calibrator <name>', 'static-int8: how activation ranges are chosen (default minmax)').choices([...CALIBRATOR_NAMES]))
    .option('--per-channel', 'static-int8: one weight scale per output channel (needs opset 13)')
    .option('--json', 'print the report as one JSON object')
    .option('--data <path>', 'samples for fidelity: an ONNX test-data folder, .npy, .npz or .json (default: generated inputs)')
    .option('--samples <n>', 'samples to compare (0 skips the fidelity check; default 4 generated)')
    .option('--dims <list>', 'sizes of symbolic input dims for generated samples: name=value,...')
    .action(async (input: string, flags: QuantizeFlags, command: Command) => {
      if (command.optsWithGlobals().verbose !== true) ortEnv.logLevel = 'fatal';
      const report = await quantize(input, flags);
      for (const warning of report.fidelity?.warnings ?? []) context.io.stderr(`shrink: warning: ${warning}\n`);
      context.io.stdout(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatQuantizeReport(report));
    });
}


async function quantize(input: string, flags: QuantizeFlags): Promise<QuantizeReport> {
  const config = flags.config === undefined ? undefined : readConfig(flags.config);
  const methodName = flags.method ?? config?.method;
  if (methodName === undefined) throw new UsageError(`quantize: give --method (${QUANTIZE_METHOD_NAMES.join(', ')}) or "method" in --config`);
  const method = quantizeMethod(methodName);
  if (method.pass === undefined) throw new Error(`quantize: method '${method.name}' is not implemented yet`);
  if (flags.symmetric && flags.asymmetric) throw new UsageError('--symmetric and --asymmetric contradict each other');
  for (const pattern of flags.exclude) checkPattern(pattern);
  const base: QuantizeSettings = {
    exclude: flags.exclude,
    keepFirstLast: flags.keepFirstLast === undefined ? undefined : flags.keepFirstLast === true ? 1 : wholeNumber(flags.keepFirstLast as string, '--keep-first-last', 0),
    blockSize: flags.blockSize === undefined ? undefined : wholeNumber(flags.blockSize, '--block-size', 1),
    symmetric: flags.asymmetric ? false : flags.symmetric ? true : undefined,
    compute: flags.compute,
    perChannel: flags.perTensor ? false : flags.perChannel ? true : undefined,
    calibrator: flags.calibrator,
    reduceRange: flags.reduceRange,
    weightType: flags.weightType,
  };
  const configured = config === undefined ? base : settingsFromConfig(config, method.name, base, flags.config as string);
  const samples = flags.samples === undefined ? undefined : wholeNumber(flags.samples, '--samples', 0);

  const bytesBefore = fileSize(input);
  const original = load(input);
  // The first and last layers are named before the method runs (its own graph clean-up may rename).
  const ends = firstAndLastLayers(original, configured.keepFirstLast ?? 0).map(exactNamePattern);
  const settings: QuantizeSettings = ends.length === 0 ? configured : { ...configured, exclude: [...(configured.exclude ?? []), ...ends] };
  if (method.name === 'static-int8' && flags.calib === undefined) throw new Error('quantize: static-int8 needs calibration data: give --calib DATA (an ONNX test-data folder, .npy, .npz or .json)');
  const calibration = flags.calib === undefined ? undefined : await openSampleFile(flags.calib, modelSignature(original));
  // Nodes a precision config gives another precision get a pass of their own (mixed-precision.ts).
  const plan = quantizeSteps(method, settings);
  type Outcome = Awaited<ReturnType<typeof runPass>>;
  const outcomes = new Map<Model, { outcome: Outcome; extra: Outcome[] }>();
  /** Runs every step on a fresh copy of the input, with `keep` left in float32 by the method. */
  const quantizeCopy = async (keep: ReadonlySet<string>): Promise<Model> => {
    const copy = load(input);
    const kept = [...keep].map(exactNamePattern);
    const results = new Map<QuantizeStep, Outcome>();
    for (const step of plan.steps) {
      const pass = step.method.pass;
      if (pass === undefined) throw new Error(`quantize: method '${step.method.name}' is not implemented yet`);
      const stepSettings = step === plan.main && kept.length > 0 ? { ...step.settings, exclude: [...(step.settings.exclude ?? []), ...kept] } : step.settings;
      results.set(step, await runPass(pass, copy, step.method.options({ ...stepSettings, calibration }) as never, { ort: nodeOrt }));
    }
    outcomes.set(copy, { outcome: results.get(plan.main) as Outcome, extra: plan.steps.filter((step) => step !== plan.main).map((step) => results.get(step) as Outcome) });
    return copy;
  };
  let model: Model;
  let search: Fp32SearchRound[] | undefined;
  let searchKept: string[] | undefined;
  try {
    if (flags.fp32Search === undefined) {
      model = await quantizeCopy(new Set());
    } else {
      const searchSamples = flags.data !== undefined ? await openSampleFile(flags.data, modelSignature(original)) : calibration;
      if (searchSamples === undefined) throw new UsageError('--fp32-search compares layer by layer on --data or --calib samples: give one');
      try {
        const found = await searchFp32Layers(nodeOrt, original, {
          quantize: quantizeCopy,
          samples: searchSamples,
          toleranceDb: positiveNumber(flags.fp32Search, '--fp32-search'),
          maxRounds: flags.fp32Rounds === undefined ? undefined : wholeNumber(flags.fp32Rounds, '--fp32-rounds', 1),
        });
        model = found.model;
        search = found.rounds;
        searchKept = found.kept;
      } finally {
        if (searchSamples !== calibration) await searchSamples.close?.();
      }
    }
  } finally {
    await calibration?.close?.();
  }
  const { outcome, extra } = outcomes.get(model) as { outcome: Outcome; extra: Outcome[] };
  const output = outputPath(flags.output, method.outputFileName(settings));
  try {
    saveModel(model, output);
  } catch (error) {
    throw inFile(output, error);
  }
  const fidelityFlags = { ...flags, data: flags.data ?? flags.calib };
  const { fidelity, skipped } = samples === 0 ? { fidelity: undefined, skipped: '--samples 0' } : await measure(original, output, fidelityFlags, samples);
  return buildQuantizeReport({
    input,
    output,
    method: method.name,
    bytesBefore,
    bytesAfter: fileSize(output),
    outcome,
    extra,
    fidelity,
    fidelitySkipped: skipped,
    search,
    searchKept,
  });
}

function readConfig(file: string): QuantizeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw inFile(file, error);
  }
  return parseQuantizeConfig(text, file);
}

function checkPattern(pattern: string): void {
  try {
    nodeSelector(pattern, '--exclude');
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** A folder (existing, or named with a trailing slash) gets the method's file name. */
function outputPath(output: string, fileName: string): string {
  const isFolder = output.endsWith('/') || output.endsWith(path.sep) || (fs.existsSync(output) && fs.statSync(output).isDirectory());
  if (!isFolder) return output;
  fs.mkdirSync(output, { recursive: true });
  return path.join(output, fileName);
}

/** Fidelity of the written model against the original, or why it could not be measured. */
async function measure(original: Model, output: string, flags: QuantizeFlags, count: number | undefined): Promise<{ fidelity?: EvalReport; skipped?: string }> {
  let source: SampleSource;
  const signature = modelSignature(original);
  try {
    source =
      flags.data !== undefined
        ? await openSampleFile(flags.data, signature)
        : generatedSamples(signature.inputs, {
            count: count ?? 4,
            dims: parseDims(flags.dims),
          });
  } catch (error) {
    if (flags.data !== undefined) throw error;
    return {
      skipped: `${(error as Error).message.replace(/give one with dims \{"(.+)": N\}/, 'give one with --dims $1=N')}, or pass --data`,
    };
  }
  try {
    const candidate = new Uint8Array(fs.readFileSync(output));
    return {
      fidelity: await compareModels(nodeOrt, original, candidate, source, {
        limit: flags.data === undefined ? undefined : count,
        threads: 1,
      }),
    };
  } finally {
    await source.close?.();
  }
}

function load(file: string): Model {
  try {
    return loadModel(file);
  } catch (error) {
    throw inFile(file, error);
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch (error) {
    throw inFile(file, error);
  }
}
