// What the optimizer checks before it touches a model. A broken graph (a cycle, a value nothing
// defines, a value defined twice) would make passes reason about values that do not exist, so it
// is refused with validateGraph's message. Ops shape inference has no rule for stay opaque: the
// passes leave those nodes alone, and the caller is told which they are. Given onnxruntime, the
// model is also loaded once, so an op nothing implements is named (node, op, domain) before any
// work instead of surfacing later as onnxruntime's multi-line error about the whole model.
import { isStandardDomain } from '../ir/constants.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { validateGraph } from '../ir/validate.js';
import type { PassWarning } from '../pipeline/pass.js';
import type { OrtModule } from '../runtime/ort-types.js';
import { ModelSession } from '../runtime/session.js';
import { SHAPE_RULES } from './shape-inference/index.js';

/** Errors past this many are counted, not listed: the first few are what a user fixes first. */
const LISTED_ERRORS = 3;

/**
 * Throws one line listing the model's structural errors (validateGraph's messages: cycles,
 * dangling inputs, values defined twice, missing outputs or opset imports); warnings such as an
 * unsorted graph are fine, the optimizer sorts it.
 */
export function assertOptimizable(model: Model): void {
  const errors = validateGraph(model).filter((issue) => issue.severity === 'error');
  if (errors.length === 0) return;
  const listed = errors.slice(0, LISTED_ERRORS).map((e) => e.message);
  if (errors.length > LISTED_ERRORS) listed.push(`and ${errors.length - LISTED_ERRORS} more problems`);
  throw new Error(`not a valid graph: ${listed.join('; ')}`);
}

/** One op type (by domain) of a model and the nodes that use it. */
export interface OpUse {
  opType: string;
  /** 'ai.onnx' for the default domain. */
  domain: string;
  nodes: Node[];
  /** Whether shape inference has a rule for it. */
  inferable: boolean;
}

/** Every op (by domain and type) the model uses, subgraphs included, in order of first use. */
export function opsUsed(model: Model): OpUse[] {
  const ops = new Map<string, OpUse>();
  for (const { node } of model.graph.allNodes()) {
    const domain = domainName(node.domain);
    const key = `${domain}|${node.opType}`;
    const entry = ops.get(key);
    if (entry !== undefined) entry.nodes.push(node);
    else ops.set(key, { opType: node.opType, domain, nodes: [node], inferable: isStandardDomain(node.domain) && SHAPE_RULES[node.opType] !== undefined });
  }
  return [...ops.values()];
}

export interface CheckModelOptions {
  /** onnxruntime: when given, the model must load in it (every op has a kernel). */
  ort?: OrtModule;
  /**
   * What onnxruntime loads: the model's bytes or (onnxruntime-node) its file, which spares
   * encoding a large model again. Default: the model itself.
   */
  source?: Model | Uint8Array | string;
}

/**
 * Checks a model before optimizing it: throws one line for a broken graph or (with `ort`) a model
 * onnxruntime cannot load, naming the node and op; returns a warning per op shape inference does
 * not know.
 */
export async function checkModelForOptimize(model: Model, options: CheckModelOptions = {}): Promise<PassWarning[]> {
  assertOptimizable(model);
  const ops = opsUsed(model);
  if (options.ort !== undefined) await assertLoads(model, options.ort, options.source ?? model, ops);
  return ops.filter((op) => !op.inferable).map((op) => ({
    code: 'no-shape-rule',
    message:
      `shape inference does not know op '${op.opType}' (domain ${op.domain}) of ${nodeList(op.nodes)}: ` +
      `its output shapes stay unknown, and passes that need them leave ${op.nodes.length === 1 ? 'it' : 'them'} alone`,
    node: op.nodes[0].label,
  }));
}

/** The model is well formed but onnxruntime cannot load it (an op without a kernel, most often). */
export class ModelLoadError extends Error {}

async function assertLoads(model: Model, ort: OrtModule, source: Model | Uint8Array | string, ops: OpUse[]): Promise<void> {
  let session: ModelSession;
  try {
    // Kernels are assigned when the session is created; no optimization is needed to find a missing one.
    session = await ModelSession.create(ort, source, { graphOptimization: 'disabled', threads: 1, logSeverityLevel: 4 });
  } catch (error) {
    throw new ModelLoadError(explainLoadFailure(model, error, ops));
  }
  await session.release();
}

/**
 * onnxruntime's load error as one line. When it names an op (`No Op registered for Frobnicate`,
 * `com.example:Blend(-1) is not a registered function/op`), the line leads with the node using it.
 */
export function explainLoadFailure(model: Model, error: unknown, ops: readonly OpUse[] = opsUsed(model)): string {
  const message = (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ').trim();
  // ORT phrases this in several ways; its most specific part follows "Error " or "Fatal error: ".
  const core = message.match(/,\s*Error\s+(.*)$/)?.[1] ?? message.replace(/^.*?Fatal error:\s*/, '').replace(/^\[ONNXRuntimeError\][^:]*:\s*/, '');
  const culprit = namedOp(message, ops);
  if (culprit === undefined) return `onnxruntime cannot load the model: ${core}`;
  const opset = model.opset(culprit.domain === 'ai.onnx' ? '' : culprit.domain);
  const domain = culprit.domain === 'ai.onnx' ? 'the default domain ai.onnx' : `domain '${culprit.domain}'`;
  return (
    `${nodeList(culprit.nodes)} uses op '${culprit.opType}' of ${domain}${opset === undefined ? '' : ` (opset ${opset})`}, ` +
    `which onnxruntime does not implement${culprit.inferable ? '' : ' and shape inference does not know'} (onnxruntime: ${core})`
  );
}

/**
 * The op onnxruntime's message is about: `domain:Op` when it writes that, else the op whose node it
 * quotes (`("name", Op, ...)`), else the one op of the model it mentions that shape inference does
 * not know either. Undefined when that leaves no single op (a type error, a bad attribute).
 */
function namedOp(message: string, ops: readonly OpUse[]): OpUse | undefined {
  const mentions = (word: string) => new RegExp(`(^|[^A-Za-z0-9_.])${escape(word)}([^A-Za-z0-9_]|$)`).test(message);
  const named = ops.filter((op) => mentions(op.opType));
  return (
    named.find((op) => message.includes(`${op.domain}:${op.opType}`)) ??
    named.find((op) => op.nodes.some((n) => n.name !== '' && message.includes(`("${n.name}", ${op.opType},`))) ??
    (/No Op registered|not a registered function/.test(message) ? named.find((op) => !op.inferable) : undefined)
  );
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function domainName(domain: string): string {
  return domain === '' ? 'ai.onnx' : domain;
}

/** "node 'a'" or "nodes 'a', 'b' and 3 more". */
function nodeList(nodes: readonly Node[]): string {
  if (nodes.length === 1) return `node '${nodes[0].label}'`;
  const shown = nodes.slice(0, 3).map((n) => `'${n.label}'`).join(', ');
  return `nodes ${shown}${nodes.length > 3 ? ` and ${nodes.length - 3} more` : ''}`;
}
