// Compares a candidate model (quantized, pruned, optimized) with its original on the same samples:
// fidelity of every output, task accuracy against labels, a user's own metric, and optionally the
// error of every intermediate layer. Samples stream through in batches and every metric keeps
// running sums only, so memory does not grow with the number of samples. Runs in Node and in a
// browser worker alike: the caller passes the onnxruntime module.
import { allConstants } from '../ir/constants.js';
import { dataTypeInfo } from '../ir/dtype.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { readModel } from '../onnx/model-io.js';
import { silentProgress, type Progress } from '../pipeline/progress.js';
import type { OrtModule, OrtTensor } from '../runtime/ort-types.js';
import { type GraphOptimization, ModelSession, type SessionOptions, fromOrtTensor, toOrtTensor } from '../runtime/session.js';
import { ortCause } from '../runtime/ort-errors.js';
import { type EvalReport, type OutputReport, jsonNumber } from './eval-report.js';
import type { Labels } from './labels.js';
import { checkSample, formatValueType, type ModelSignature, type ModelValue, modelSignature } from './match-inputs.js';
import {
  type AccuracyAccumulator,
  type CustomMetric,
  type MetricAccumulator,
  type MetricOptions,
  type OutputMetrics,
  createAccuracyAccumulator,
  createCustomMetricAccumulator,
  createMetricAccumulator,
} from './metrics.js';
import { feedAs, isolateCandidate, type LayerCut } from './layer-isolation.js';
import { type LayerAccumulator, type LayerPlan, createLayerAccumulator, layerCuts, planLayers } from './per-layer.js';
import { type Sample, type SampleSource, firstSamples } from './samples.js';

export interface CompareOptions {
  /** Compare at most this many samples (default: all the source holds). */
  limit?: number;
  /**
   * Samples concatenated along axis 0 into one run (default 1). Only for models whose every input
   * has a symbolic first axis; others run one sample at a time, with a warning. Concatenation is
   * right only when axis 0 is a batch axis, which is why it is not the default.
   */
  batch?: number;
  /** Intra-op threads of each session (default: onnxruntime's). */
  threads?: number;
  /** Default 'basic', so that onnxruntime's fusions do not hide or add error. */
  graphOptimization?: GraphOptimization;
  executionProviders?: SessionOptions['executionProviders'];
  /** Top-1/top-k settings for classifier-like outputs. */
  metric?: MetricOptions;
  /** Class ids, one per prediction row in sample order: adds accuracy of both models. */
  labels?: Labels;
  /** The output holding class scores or ids for accuracy (default: the first output). */
  labelOutput?: string;
  /** A metric of the user's over each sample's outputs, averaged over samples. */
  customMetric?: CustomMetric;
  customMetricName?: string;
  /** Compare every intermediate value too, and rank layers by the error they add. */
  perLayer?: boolean;
  /**
   * With perLayer: also run the candidate cut at every compared value, fed the original's
   * activations, to measure each layer's own error (default true; one more candidate run per
   * sample). Without it layers are ranked by SQNR drop.
   */
  isolateLayers?: boolean;
  /** What to call the two models in errors (the CLI gives their files). */
  names?: { original?: string; candidate?: string };
  /** Original value name -> candidate value name, for outputs and layers a pass renamed. */
  renames?: Readonly<Record<string, string>>;
  progress?: Progress;
}

/** One model as the comparison holds it: IR for names and structure, bytes if given as bytes. */
interface Loaded {
  model: Model;
  input: Model | Uint8Array;
  signature: ModelSignature;
}

/**
 * Runs `original` and `candidate` on every sample of `samples` (checked against the original's
 * inputs first) and reports how far the candidate's outputs are from the original's. The caller
 * keeps ownership of `samples` (and closes it).
 */
export async function compareModels(
  ort: OrtModule,
  original: Model | Uint8Array,
  candidate: Model | Uint8Array,
  samples: SampleSource,
  options: CompareOptions = {},
): Promise<EvalReport> {
  const a = load(original, 'original');
  const b = load(candidate, 'candidate');
  checkSameInputs(a.signature, b.signature);
  const renames = options.renames ?? {};
  const outputs = matchOutputs(a.signature, b.signature, renames);
  const warnings: string[] = samples.warning === undefined ? [] : [samples.warning];

  const plan = options.perLayer ? planLayers(a.model, b.model, { renames }) : undefined;
  const sessionOptions = { threads: options.threads, graphOptimization: options.graphOptimization ?? 'basic', executionProviders: options.executionProviders };
  const sessions: ModelSession[] = [];
  try {
    const originalSession = await createSession(ort, a.input, { ...sessionOptions, extraOutputs: plan?.originalOutputs }, 'original', options.names?.original);
    sessions.push(originalSession);
    const candidateSession = await createSession(ort, b.input, { ...sessionOptions, extraOutputs: plan?.candidateOutputs }, 'candidate', options.names?.candidate);
    sessions.push(candidateSession);

    const batch = effectiveBatch(options.batch ?? 1, a.signature.inputs, warnings);
    const metrics = new Map<string, MetricAccumulator>(outputs.map(([name]) => [name, createMetricAccumulator(options.metric)]));
    const layers: LayerAccumulator | undefined = plan === undefined ? undefined : createLayerAccumulator(a.model.graph, plan);
    const accuracy = options.labels === undefined ? undefined : accuracyCounter(options.labels, options.labelOutput ?? outputs[0][0], outputs);
    const custom = options.customMetric === undefined ? undefined : createCustomMetricAccumulator(options.customMetric);
    const progress = options.progress ?? silentProgress;
    const total = options.limit === undefined ? samples.count : Math.min(options.limit, samples.count ?? Infinity);

    // The cut candidate is built after the first run, which tells the types of the values to feed.
    let isolation: Isolation | undefined | null = plan === undefined || options.isolateLayers === false ? null : undefined;
    const layerNotes: string[] = [];
    let count = 0;
    progress.start('eval', total);
    try {
      const stream = checked(options.limit === undefined ? samples : limited(samples, options.limit), a.signature.inputs);
      for await (const group of inGroups(stream, batch)) {
        const feeds = groupFeeds(ort, group);
        const where = group.length === 1 ? group[0].where : `${group[0].where} to ${group[group.length - 1].index}`;
        const fromOriginal = await runOn(originalSession, feeds, 'original', where);
        const fromCandidate = await runOn(candidateSession, feeds, 'candidate', where);
        const reference: Record<string, Tensor> = {};
        const result: Record<string, Tensor> = {};
        for (const [name, candidateName] of outputs) {
          reference[name] = fromOrtTensor(fromOriginal[name], name);
          result[name] = fromOrtTensor(fromCandidate[candidateName], name);
          (metrics.get(name) as MetricAccumulator).add(reference[name], result[name]);
        }
        accuracy?.add(reference, result);
        if (custom !== undefined) {
          for (const [k, sample] of group.entries()) {
            custom.add(sampleOutputs(reference, group, k), sampleOutputs(result, group, k), sample);
          }
        }
        let isolated: ((name: string) => Tensor | undefined) | undefined;
        if (isolation === undefined) {
          isolation = await isolatedSession(ort, b.model, plan as LayerPlan, fromOriginal, fromCandidate, sessionOptions, layerNotes);
          if (isolation !== null) sessions.push(isolation.session);
        }
        if (isolation !== null) {
          const cut = { ...feeds };
          for (const c of isolation.cuts) cut[c.candidateValue] = toOrtTensor(ort, feedAs(fromOrtTensor(fromOriginal[c.value], c.value), c.dataType, c.candidateValue));
          const computed = isolation.computed;
          try {
            const own = await isolation.session.run(cut);
            isolated = (name) => {
              const tensor = own[computed.get(name) ?? ''];
              return tensor === undefined ? undefined : fromOrtTensor(tensor, name);
            };
          } catch (error) {
            // A diagnostic must not fail the comparison: rank by drop instead, and say why.
            layerNotes.push(`layers not measured in isolation (ranked by SQNR drop instead): the cut candidate failed on ${where} (${ortCause(error)})`);
            layers?.dropIsolated();
            isolation = null;
          }
        }
        layers?.add(lookup(fromOriginal), lookup(fromCandidate), isolated);
        count += group.length;
        progress.tick(group.length);
      }
    } finally {
      progress.done();
    }
    if (count === 0) throw new Error(`${samples.description}: no samples to compare`);

    const report: EvalReport = { samples: count, data: samples.description, warnings, outputs: {} };
    for (const [name, candidateName] of outputs) {
      report.outputs[name] = outputReport((metrics.get(name) as MetricAccumulator).result(), name, candidateName);
    }
    if (accuracy !== undefined) {
      report.accuracy = accuracy.report();
      const unused = (options.labels as Labels).ids.length - report.accuracy.total;
      const cut = options.limit !== undefined && (samples.count === undefined || count < samples.count);
      if (unused > 0 && !cut) warnings.push(`${(options.labels as Labels).where}: ${unused} of ${(options.labels as Labels).ids.length} labels were not used; do labels and samples line up?`);
    }
    if (custom !== undefined) {
      const r = custom.result();
      report.custom = { name: options.customMetricName ?? 'custom', mean: jsonNumber(r.mean), min: jsonNumber(r.min), max: jsonNumber(r.max), samples: r.samples };
    }
    if (layers !== undefined) {
      const { layers: ranked, notes } = layers.result();
      report.layers = ranked;
      report.layer_notes = [...notes, ...layerNotes];
    }
    return report;
  } finally {
    for (const session of sessions) await session.release();
  }
}

/** Candidates with more weights than this are not run a third time for isolated per-layer error. */
const ISOLATE_MAX_BYTES = 2 ** 30;

function constantBytes(model: Model): number {
  let bytes = 0;
  for (const { tensor } of allConstants(model.graph)) bytes += tensor.byteLength;
  return bytes;
}

interface Isolation {
  session: ModelSession;
  cuts: LayerCut[];
  computed: ReadonlyMap<string, string>;
}

/**
 * A session of the candidate cut at every value both models computed alike (layer-isolation.ts),
 * or null, with a note, when there is nothing to cut or onnxruntime refuses the cut model.
 */
async function isolatedSession(
  ort: OrtModule,
  candidate: Model,
  plan: LayerPlan,
  original: Record<string, OrtTensor>,
  computed: Record<string, OrtTensor>,
  options: SessionOptions,
  notes: string[],
): Promise<Isolation | null> {
  const cuts = layerCuts(plan, lookup(original), lookup(computed));
  if (cuts.length === 0) return null;
  const weights = constantBytes(candidate);
  if (weights > ISOLATE_MAX_BYTES) {
    notes.push(`layers not measured in isolation (ranked by SQNR drop instead): a third session of the candidate's ${(weights / 2 ** 30).toFixed(1)} GiB of weights would not be worth its memory`);
    return null;
  }
  const isolated = isolateCandidate(candidate, cuts);
  try {
    const session = await ModelSession.create(ort, isolated.model, { ...options, extraOutputs: [...isolated.computed.values()] });
    return { session, cuts: isolated.cuts, computed: isolated.computed };
  } catch (error) {
    notes.push(`layers not measured in isolation (ranked by SQNR drop instead): onnxruntime cannot load the candidate cut at every compared value (${ortCause(error)})`);
    return null;
  }
}

function load(model: Model | Uint8Array, role: string): Loaded {
  const ir = model instanceof Uint8Array ? readModel(model, { source: role }) : model;
  return { model: ir, input: model, signature: modelSignature(ir) };
}

async function createSession(ort: OrtModule, model: Model | Uint8Array, options: SessionOptions, role: string, name?: string): Promise<ModelSession> {
  try {
    return await ModelSession.create(ort, model, options);
  } catch (error) {
    throw new Error(`${role} model${name === undefined ? '' : ` ${name}`}: onnxruntime cannot load it (${ortCause(error)})`);
  }
}

async function runOn(session: ModelSession, feeds: Record<string, OrtTensor>, role: string, where: string): Promise<Record<string, OrtTensor>> {
  try {
    return await session.run(feeds);
  } catch (error) {
    throw new Error(`${where}: the ${role} model failed in onnxruntime (${ortCause(error)})`);
  }
}

/** Both models must take the same feeds: same required inputs, same element types. */
function checkSameInputs(original: ModelSignature, candidate: ModelSignature): void {
  const byName = new Map(candidate.inputs.map((i) => [i.name, i]));
  for (const input of original.inputs.filter((i) => !i.optional)) {
    const other = byName.get(input.name);
    if (other === undefined) {
      throw new Error(`candidate model has no input '${input.name}' (original expects ${formatValueType(input)}; candidate inputs: ${names(candidate.inputs)})`);
    }
    if (input.elemType !== 0 && other.elemType !== 0 && input.elemType !== other.elemType) {
      throw new Error(`candidate model's input '${input.name}' is ${formatValueType(other)}, the original's is ${formatValueType(input)}: both must take the same samples`);
    }
  }
  const fed = new Set(original.inputs.map((i) => i.name));
  const extra = candidate.inputs.find((i) => !i.optional && !fed.has(i.name));
  if (extra !== undefined) throw new Error(`candidate model needs input '${extra.name}' (${formatValueType(extra)}), which the original does not take`);
}

/** [original name, candidate name] of each output both models have. */
function matchOutputs(original: ModelSignature, candidate: ModelSignature, renames: Readonly<Record<string, string>>): [string, string][] {
  const present = new Set(candidate.outputs.map((o) => o.name));
  const pairs: [string, string][] = [];
  for (const output of original.outputs) {
    const candidateName = renames[output.name] ?? output.name;
    if (present.has(candidateName)) pairs.push([output.name, candidateName]);
  }
  if (pairs.length === 0) {
    throw new Error(`the models share no output: original has ${names(original.outputs)}, candidate has ${names(candidate.outputs)} (pass renames to pair them)`);
  }
  return pairs;
}

function names(values: readonly ModelValue[]): string {
  return values.map((v) => `'${v.name}'`).join(', ') || 'none';
}

/** The batch size that can be used: 1 unless every input has a symbolic axis 0 to stack samples on. */
function effectiveBatch(batch: number, inputs: readonly ModelValue[], warnings: string[]): number {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new Error(`batch must be a whole number >= 1, got ${batch}`);
  if (batch === 1) return 1;
  const fixed = inputs.find((i) => !i.optional && (i.shape === undefined || i.shape.length === 0 || typeof i.shape[0] === 'number' || i.elemType === 0 || dataTypeInfo(i.elemType).array === undefined));
  if (fixed !== undefined) {
    warnings.push(`batch ${batch} ignored: input '${fixed.name}' (${formatValueType(fixed)}) has no symbolic first axis to stack samples on, so samples ran one at a time`);
    return 1;
  }
  return batch;
}

/** Samples grouped up to `size` at a time; a group closes early when a sample's other dims differ. */
async function* inGroups(samples: AsyncIterable<Sample>, size: number): AsyncGenerator<Sample[]> {
  let group: Sample[] = [];
  for await (const sample of samples) {
    if (group.length > 0 && !stackable(group[0], sample)) {
      yield group;
      group = [];
    }
    group.push(sample);
    if (group.length === size) {
      yield group;
      group = [];
    }
  }
  if (group.length > 0) yield group;
}

function stackable(first: Sample, next: Sample): boolean {
  for (const [name, tensor] of Object.entries(first.inputs)) {
    const other = next.inputs[name];
    if (other === undefined || other.dims.length !== tensor.dims.length || other.dims.some((d, i) => i > 0 && d !== tensor.dims[i])) return false;
  }
  return Object.keys(next.inputs).length === Object.keys(first.inputs).length;
}

/** The group's inputs stacked along axis 0, as onnxruntime feeds. */
function groupFeeds(ort: OrtModule, group: Sample[]): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  for (const name of Object.keys(group[0].inputs)) {
    feeds[name] = toOrtTensor(ort, stack(group.map((s) => s.inputs[name]), name));
  }
  return feeds;
}

function stack(tensors: Tensor[], name: string): Tensor {
  if (tensors.length === 1) return tensors[0];
  const first = tensors[0];
  const rows = tensors.reduce((n, t) => n + t.dims[0], 0);
  const bytes = new Uint8Array(tensors.reduce((n, t) => n + t.byteLength, 0));
  let at = 0;
  for (const t of tensors) {
    bytes.set(t.bytes(), at);
    at += t.byteLength;
  }
  return Tensor.fromBytes(name, first.dataType, [rows, ...first.dims.slice(1)], bytes);
}

/** Sample `k`'s rows of a group's outputs (all of them when the group is one sample). */
function sampleOutputs(outputs: Record<string, Tensor>, group: Sample[], k: number): Record<string, Tensor> {
  if (group.length === 1) return outputs;
  const rowsOf = (s: Sample) => Object.values(s.inputs)[0].dims[0];
  const rows = group.map(rowsOf);
  const total = rows.reduce((x, y) => x + y, 0);
  const start = rows.slice(0, k).reduce((x, y) => x + y, 0);
  const sliced: Record<string, Tensor> = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    const rowBytes = tensor.byteLength / (tensor.dims[0] ?? 0);
    if (tensor.dims[0] !== total || !Number.isInteger(rowBytes)) {
      throw new Error(`custom metric: output '${name}' has dims [${tensor.dims.join(',')}], which do not split into the ${group.length} batched samples; use batch 1`);
    }
    const bytes = tensor.bytes().subarray(start * rowBytes, (start + rows[k]) * rowBytes);
    sliced[name] = Tensor.fromBytes(name, tensor.dataType, [rows[k], ...tensor.dims.slice(1)], bytes);
  }
  return sliced;
}

function lookup(values: Record<string, OrtTensor>): (name: string) => Tensor | undefined {
  return (name) => (values[name] === undefined ? undefined : fromOrtTensor(values[name], name));
}

/** The samples, each checked against the model's inputs (a one-line error for the first misfit). */
async function* checked(samples: AsyncIterable<Sample>, inputs: readonly ModelValue[]): AsyncGenerator<Sample> {
  for await (const sample of samples) {
    checkSample(sample.inputs, inputs, sample.where);
    yield sample;
  }
}

async function* limited(samples: AsyncIterable<Sample>, limit: number): AsyncGenerator<Sample> {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`sample limit must be a whole number >= 1, got ${limit}`);
  yield* firstSamples(samples, limit);
}

/** Accuracy of both models, taking labels in order as prediction rows come. */
function accuracyCounter(labels: Labels, output: string, outputs: readonly [string, string][]) {
  if (!outputs.some(([name]) => name === output)) {
    throw new Error(`label output '${output}' is not an output both models have (${outputs.map(([n]) => `'${n}'`).join(', ')})`);
  }
  const original: AccuracyAccumulator = createAccuracyAccumulator(labels.where);
  const candidate: AccuracyAccumulator = createAccuracyAccumulator(labels.where);
  let used = 0;
  return {
    add(reference: Record<string, Tensor>, result: Record<string, Tensor>) {
      const prediction = reference[output];
      const isFloat = dataTypeInfo(prediction.dataType).isFloat;
      const classes = isFloat ? (prediction.dims[prediction.dims.length - 1] ?? 1) : 1;
      const rows = classes === 0 ? 0 : prediction.elementCount / classes;
      if (used + rows > labels.ids.length) {
        throw new Error(`${labels.where}: ${labels.ids.length} labels, but output '${output}' gives more predictions (${used + rows} so far)`);
      }
      const slice = labels.ids.subarray(used, used + rows);
      original.add(prediction, slice);
      candidate.add(result[output], slice);
      used += rows;
    },
    report() {
      const a = original.result();
      const b = candidate.result();
      return { original: a.accuracy, candidate: b.accuracy, correct_original: a.correct, correct_candidate: b.correct, total: a.total, output, labels: labels.where };
    },
  };
}

function outputReport(m: OutputMetrics, name: string, candidateName: string): OutputReport {
  const report: OutputReport = {
    elements: m.elements,
    cosine: jsonNumber(m.cosine),
    sqnr_db: jsonNumber(m.sqnrDb),
    max_abs: jsonNumber(m.maxAbs),
    mean_abs: jsonNumber(m.meanAbs),
    relative: jsonNumber(m.relative),
    non_finite: m.nonFinite,
  };
  if (m.top1Agreement !== undefined) {
    report.top1_agreement = m.top1Agreement;
    report.topk_overlap = m.topKOverlap;
    report.k = m.k;
    report.rows = m.rows;
  }
  if (candidateName !== name) report.candidate_name = candidateName;
  return report;
}
