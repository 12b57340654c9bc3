// Ranges no reader can tell apart. A value read only by a HardSwish ignores everything below -3
// (HardSwish is 0 there), one read only by a HardSigmoid everything outside [-beta/alpha,
// (1 - beta)/alpha], one read only by a Relu everything below 0, one read only by a Clip everything
// outside its bounds. Calibration sees the value's whole spread, so a Conv in front of a HardSwish
// gets a range like [-98, 107] on PP-OCRv4 det, where [-3, 107] computes the same outputs: the
// quantization step of every such value shrinks (det: 1.3-2.3x, 1.7x at the median of its 24
// HardSwish inputs) at no cost, since QuantizeLinear saturates to the same output the reader would
// have given. It is exact, not a clipping trade-off: nothing the readers compute changes.
import { isStandardDomain } from '../../../ir/constants.js';
import type { Graph } from '../../../ir/graph.js';
import type { Node } from '../../../ir/node.js';
import { subgraphReaders } from '../../../optimize/util/graph-queries.js';
import { scalarConstant } from '../../../optimize/util/pattern.js';
import type { CalibrationRange } from './calibrator.js';

/** The interval outside which `reader` gives the same output for `value` as at the interval's ends, if it has one. */
function readerWindow(graph: Graph, reader: Node, value: string): CalibrationRange | undefined {
  if (!isStandardDomain(reader.domain)) return undefined;
  switch (reader.opType) {
    case 'Relu':
      return { min: 0, max: Infinity };
    case 'HardSwish':
      // x * HardSigmoid(x; 1/6, 1/2): zero for x <= -3 (ONNX spec); unbounded above.
      return { min: -3, max: Infinity };
    case 'HardSigmoid':
      return hardSigmoidWindow(reader);
    case 'Clip':
      return clipWindow(graph, reader);
    case 'Mul':
      return swishWindow(graph, reader, value);
    default:
      return undefined;
  }
}

function hardSigmoidWindow(node: Node): CalibrationRange | undefined {
  const alpha = node.attrFloat('alpha', 0.2);
  const beta = node.attrFloat('beta', 0.5);
  if (!(alpha > 0)) return undefined;
  return { min: -beta / alpha, max: (1 - beta) / alpha };
}

function clipWindow(graph: Graph, node: Node): CalibrationRange | undefined {
  // Opset 6 keeps the bounds in attributes, 11+ in optional inputs.
  const bound = (index: number, attribute: string, fallback: number): number | undefined => {
    const name = node.inputs[index] ?? '';
    return name === '' ? node.attrFloat(attribute, fallback) : scalarConstant(graph, name);
  };
  const min = bound(1, 'min', -Infinity);
  const max = bound(2, 'max', Infinity);
  return min === undefined || max === undefined ? undefined : { min, max };
}

/**
 * x * HardSigmoid(x) as two nodes (hard swish before the optimizer fuses it, or below opset 14):
 * the Mul reads x and a HardSigmoid of the same x; where the gate is 0 the product is 0 whatever x
 * is, and where the gate saturates at 1 the product is x itself, so only the lower edge is dead.
 */
function swishWindow(graph: Graph, mul: Node, value: string): CalibrationRange | undefined {
  if (mul.inputs.length !== 2 || mul.inputs[0] === mul.inputs[1]) return undefined;
  const other = mul.inputs[0] === value ? mul.inputs[1] : mul.inputs[0];
  const gate = graph.producer(other);
  if (gate === undefined || gate.opType !== 'HardSigmoid' || !isStandardDomain(gate.domain) || gate.inputs[0] !== value) return undefined;
  const window = hardSigmoidWindow(gate);
  return window === undefined ? undefined : { min: window.min, max: Infinity };
}

/**
 * The interval its readers can tell apart for `value`: the union of every reader's window.
 * Undefined when any reader has no window, when a subgraph reads the value, or when it is a graph
 * output (whoever reads it sees the whole value).
 */
export function readersWindow(graph: Graph, value: string): CalibrationRange | undefined {
  if (graph.isGraphOutput(value)) return undefined;
  const readers = graph.consumers(value);
  // A subgraph's readers are not in `consumers`, so they cannot be vouched for.
  if (readers.length === 0 || subgraphReaders(graph, value).length > 0) return undefined;
  let min = Infinity;
  let max = -Infinity;
  for (const reader of readers) {
    const window = readerWindow(graph, reader, value);
    if (window === undefined) return undefined;
    min = Math.min(min, window.min);
    max = Math.max(max, window.max);
  }
  return min === -Infinity && max === Infinity ? undefined : { min, max };
}

/**
 * `range` (a calibrated activation range quantized on `levels` codes) without what its readers
 * cannot tell apart (readersWindow), plus one step of margin on each side it cut.
 */
export function withoutDeadZones(graph: Graph, value: string, range: CalibrationRange, levels = 256): CalibrationRange {
  const window = readersWindow(graph, value);
  if (window === undefined) return range;
  const clipped = { min: Math.max(range.min, window.min), max: Math.min(range.max, window.max) };
  // A range that lies wholly in a dead zone (a channel that never reaches the live part) is left as it was.
  if (!(clipped.min < clipped.max)) return range;
  // One step of margin on each side cut: the zero point rounds, so the lowest code can read back
  // up to half a step inside the window (-2.98 for -3), where a HardSwish gives -0.01, not 0, and
  // every value of the dead zone (most of them, after a HardSwish) would carry that bias. With the
  // margin the end codes read back beyond the window's edge, where the reader is exactly flat.
  const step = (clipped.max - clipped.min) / (levels - 2);
  return {
    min: clipped.min > range.min ? Math.max(range.min, clipped.min - step) : clipped.min,
    max: clipped.max < range.max ? Math.min(range.max, clipped.max + step) : clipped.max,
  };
}
