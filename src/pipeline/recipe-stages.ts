// The stage table of a recipe run: after every step, what the model scores and what it weighs,
// against the recipe's input — the table of the Deep Compression paper (original, P, P+Q, P+Q+H)
// for any recipe. Accuracy with labels, else the fidelity figures; bytes of the ONNX file, and of
// the pack for a pack step; `compression` is the input's bytes over the stage's (pack bytes for
// the pack step), so 40 means forty times smaller.
import type { EvalReport } from '../eval/eval-report.js';
import { numberFromJson } from '../eval/eval-report.js';
import { formatBytes, renderTable } from '../inspect/table.js';

export interface RecipeStage {
  /** 'input', or the step's kind. */
  step: string;
  /** The steps so far in the paper's letters: P prune, Q quantize/cluster, L low-rank, O optimize, H pack. */
  label: string;
  /** Share of labels predicted correctly (0..1), with labels. */
  accuracy?: number;
  /** Lowest output cosine and the first output's top-1 agreement against the input. */
  cosine?: number;
  top1_agreement?: number;
  /** Bytes of the model as an ONNX file. */
  bytes: number;
  /** Bytes of the .shrink pack (the pack step). */
  pack_bytes?: number;
  /** Input bytes / this stage's bytes (pack bytes for the pack step). */
  compression: number;
  /** Why nothing was measured, when it was not. */
  not_measured?: string;
}

const LETTERS: Record<string, string> = { prune: 'P', cluster: 'Q', quantize: 'Q', lowrank: 'L', optimize: 'O', pack: 'H' };

/** The label after `steps` (kinds, in order): 'P+Q+H'. */
export function stageLabel(steps: readonly string[]): string {
  return steps.map((s) => LETTERS[s] ?? s).join('+');
}

export function stageRow(step: string, label: string, inputBytes: number, bytes: number, report: EvalReport | undefined, options: { packBytes?: number; original?: boolean; why?: string } = {}): RecipeStage {
  const outputs = report === undefined ? [] : Object.values(report.outputs);
  const cosine = Math.min(...outputs.map((o) => numberFromJson(o.cosine)));
  const top1 = outputs[0]?.top1_agreement;
  const accuracy = report?.accuracy === undefined ? undefined : options.original === true ? report.accuracy.original : report.accuracy.candidate;
  const stored = options.packBytes ?? bytes;
  return {
    step,
    label,
    ...(accuracy === undefined ? {} : { accuracy: round(accuracy, 6) }),
    ...(report === undefined || options.original === true || !Number.isFinite(cosine) ? {} : { cosine: round(cosine, 6) }),
    ...(report === undefined || options.original === true || top1 === undefined ? {} : { top1_agreement: round(top1, 6) }),
    bytes,
    ...(options.packBytes === undefined ? {} : { pack_bytes: options.packBytes }),
    compression: stored === 0 ? 0 : round(inputBytes / stored, 2),
    ...(report === undefined && options.why !== undefined ? { not_measured: options.why } : {}),
  };
}

/** The table as terminal lines; columns nothing fills (accuracy without labels, pack without a pack step) are left out. */
export function formatStages(stages: readonly RecipeStage[]): string[] {
  const percent = (x: number | undefined) => (x === undefined ? '' : `${(x * 100).toFixed(2)}%`);
  const columns: [header: string, right: boolean, cell: (s: RecipeStage) => string][] = [
    ['stage', false, (s) => s.label],
    ['step', false, (s) => s.step],
    ['accuracy', true, (s) => percent(s.accuracy)],
    ['cosine', true, (s) => (s.cosine === undefined ? '' : s.cosine.toFixed(4))],
    ['top-1', true, (s) => percent(s.top1_agreement)],
    ['ONNX', true, (s) => formatBytes(s.bytes)],
    ['pack', true, (s) => (s.pack_bytes === undefined ? '' : formatBytes(s.pack_bytes))],
    ['vs input', true, (s) => `${s.compression.toFixed(1)}x`],
  ];
  const shown = columns.filter(([, , cell]) => stages.some((s) => cell(s) !== ''));
  return renderTable(
    shown.map(([header, right]) => (right ? { header, align: 'right' as const } : { header })),
    stages.map((s) => shown.map(([, , cell]) => cell(s))),
    '  ',
  );
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));
