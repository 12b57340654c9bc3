// The inspect report as readable terminal text: a few summary lines, then one aligned table per
// section. Every section has a fixed heading so people (and tests) can find it.
import type { InspectReport, LayerReport, Totals } from './inspect.js';
import { formatBytes, formatCount, groupDigits, renderTable } from './table.js';

export const SECTION_HEADINGS = [
  'Model',
  'Inputs',
  'Outputs',
  'Parameters',
  'Weights by dtype',
  'Weight storage',
  'Ops',
  'Largest tensors',
  'Layers',
] as const;

export function formatReport(report: InspectReport): string {
  const out: string[] = [];
  const section = (title: string, lines: string[]) => out.push(title, ...lines, '');

  section('Model', modelLines(report));
  const valueColumns = [{ header: 'name' }, { header: 'type' }];
  section('Inputs', renderTable(valueColumns, report.inputs.map((v) => [v.name, v.type])));
  section('Outputs', renderTable(valueColumns, report.outputs.map((v) => [v.name, v.type])));

  const totalsColumns = [
    { header: 'tensors', align: 'right' as const },
    { header: 'elements', align: 'right' as const },
    { header: 'bytes', align: 'right' as const },
  ];
  const totalsCells = (t: Totals) => [groupDigits(t.tensors), groupDigits(t.elements), formatBytes(t.bytes)];
  section(
    'Parameters',
    renderTable(
      [{ header: 'kind' }, ...totalsColumns, { header: 'what' }],
      [
        ['parameters', ...totalsCells(report.parameters), 'floating-point and 2-16 bit integer weights'],
        ['constants', ...totalsCells(report.constants), 'int32/int64/bool/string: shapes, axes, indices'],
        ['total', ...totalsCells(report.total), `${formatCount(report.parameters.elements)} parameters`],
      ],
    ),
  );
  section(
    'Weights by dtype',
    renderTable(
      [{ header: 'dtype' }, ...totalsColumns, { header: 'counted as' }],
      report.by_dtype.map((d) => [d.dtype, ...totalsCells(d), d.parameter ? 'parameters' : 'constants']),
    ),
  );
  const { storage } = report;
  const externalNote = storage.external.files.length > 0 ? storage.external.files.join(', ') : '';
  section(
    'Weight storage',
    renderTable(
      [{ header: 'where' }, ...totalsColumns, { header: 'files' }],
      [
        ['initializers', ...totalsCells(storage.initializer), ''],
        ['Constant nodes', ...totalsCells(storage.constant_node), ''],
        ['external data', ...totalsCells(storage.external), externalNote],
      ],
    ),
  );

  section(
    'Ops',
    renderTable(
      [{ header: 'op' }, { header: 'count', align: 'right' }, { header: 'in subgraphs', align: 'right' }],
      report.ops.map((o) => [o.op, String(o.count), o.in_subgraphs === 0 ? '' : String(o.in_subgraphs)]),
    ),
  );

  section(
    'Largest tensors',
    renderTable(
      [
        { header: 'name' },
        { header: 'dtype' },
        { header: 'shape' },
        { header: 'elements', align: 'right' },
        { header: 'bytes', align: 'right' },
        { header: 'stored in' },
        { header: 'graph' },
      ],
      report.largest.map((t) => [
        t.name,
        t.dtype,
        `[${t.shape.join(',')}]`,
        groupDigits(t.elements),
        formatBytes(t.bytes),
        t.source,
        t.graph === '' ? 'main' : t.graph,
      ]),
    ),
  );

  section('Layers', layerLines(report.layers));
  return `${out.join('\n').trimEnd()}\n`;
}

function modelLines(report: InspectReport): string[] {
  const opsets = report.opsets.map((o) => `${o.domain === '' ? 'ai.onnx' : o.domain} ${o.version}`).join(', ');
  const producer = [report.producer.name, report.producer.version].filter((s) => s !== '').join(' ') || '(not recorded)';
  const lines = [
    ['file', report.source ?? '(in memory)'],
    ['file size', report.file_bytes === null ? 'unknown' : `${formatBytes(report.file_bytes)} (${groupDigits(report.file_bytes)} bytes)`],
    ['producer', producer],
    ['IR version', String(report.ir_version)],
    ['opsets', opsets],
    ['graphs', `${report.graphs} (${report.graphs - 1} subgraphs), ${report.nodes} nodes, ${report.functions} functions`],
  ];
  if (report.metadata.length > 0) lines.push(['metadata', report.metadata.map((m) => `${m.key}=${m.value}`).join(', ')]);
  return lines.map(([key, value]) => `  ${key.padEnd(11)} ${value}`);
}

/**
 * Rows whose weights are all scalars (a LayerNorm epsilon, a Pow exponent) are counted but not
 * listed: they would bury the layers that hold the model's weights. The JSON keeps them all.
 */
function layerLines(layers: LayerReport[]): string[] {
  const shown = layers.filter((l) => l.weights.some((w) => w.shape.reduce((n, d) => n * d, 1) > 1));
  const lines = renderTable(
    [
      { header: 'node' },
      { header: 'op' },
      { header: 'weights' },
      { header: 'params', align: 'right' },
      { header: 'bytes', align: 'right' },
    ],
    shown.map((l) => [
      l.node,
      l.op_type,
      l.weights.map((w) => `${w.input} [${w.shape.join(',')}]`).join(', '),
      groupDigits(l.parameters),
      formatBytes(l.bytes),
    ]),
  );
  const hidden = layers.length - shown.length;
  if (hidden > 0) lines.push(`  (${hidden} more nodes read only scalar constants; --json lists them)`);
  return lines;
}
