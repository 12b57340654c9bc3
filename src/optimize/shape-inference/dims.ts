// Arithmetic on dims that may be symbolic. A dim is a number, a symbol (`N`, `p2o.DynamicDimension.0`)
// or null (unknown). When an op computes a dim from symbolic ones (a strided Conv over `H`, a Reshape
// that halves `W`), the result is an expression string such as `floor((H-1)/2)+1`: it is a valid
// ONNX dim_param, two values computed the same way get the same string, and `evaluateDim` turns
// it into a number once the symbols are bound. Expressions are kept as written, not simplified
// beyond folding numbers, so two equal dims computed differently compare as different symbols;
// broadcasting then yields unknown rather than a guess.
import type { Dim } from '../../ir/value-info.js';

export type { Dim };

/** Every dim is a number. */
export function isStaticShape(shape: readonly Dim[] | undefined): shape is number[] {
  return shape?.every((d) => typeof d === 'number') === true;
}

/** Product of the dims (an expression when symbolic, null when any is unknown). */
export function dimProduct(dims: readonly Dim[]): Dim {
  let out: Dim = 1;
  for (const d of dims) out = mul(out, d);
  return out;
}

const ATOM = /^[A-Za-z_][\w.]*$|^\d+$/;

/** Wraps a compound expression in parentheses so it can be an operand. */
function operand(d: string | number): string {
  if (typeof d === 'number') return d < 0 ? `(${d})` : String(d);
  return ATOM.test(d) || (/^(floor|ceil|max|min)\(.*\)$/.test(d) && balancedCall(d)) ? d : `(${d})`;
}

/** True when `floor(...)` spans the whole string, not `floor(a)+floor(b)`. */
function balancedCall(d: string): boolean {
  let depth = 0;
  const open = d.indexOf('(');
  for (let i = open; i < d.length; i++) {
    if (d[i] === '(') depth++;
    else if (d[i] === ')') {
      depth--;
      if (depth === 0 && i !== d.length - 1) return false;
    }
  }
  return true;
}

export function add(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  if (typeof b === 'number' && typeof a === 'string') {
    // `H+2` plus -3 is `H-1`: fold into a trailing constant so chained pads/kernels stay short.
    const tail = /^(.*[^+\-*/(])([+-])(\d+)$/.exec(a);
    const [base, constant] = tail === null ? [a, 0] : [tail[1], (tail[2] === '-' ? -1 : 1) * Number(tail[3])];
    const sum = constant + b;
    const head = tail === null ? operand(base) : base;
    return sum === 0 ? (tail === null ? a : base) : sum < 0 ? `${head}-${-sum}` : `${head}+${sum}`;
  }
  return `${operand(a)}+${operand(b as number | string)}`;
}

export function sub(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (a === b) return 0;
  if (typeof b === 'number') return add(a, -b);
  return `${operand(a)}-${operand(b)}`;
}

export function mul(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 0 || b === 0) return 0;
  if (a === 1) return b;
  if (b === 1) return a;
  return `${operand(a)}*${operand(b)}`;
}

/** Integer division rounding down (dims are non-negative, so this is also C-style truncation). */
export function floorDiv(a: Dim, b: Dim): Dim {
  if (a === null || b === null || b === 0) return null;
  if (typeof a === 'number' && typeof b === 'number') return Math.floor(a / b);
  if (b === 1) return a;
  return `floor(${operand(a)}/${operand(b)})`;
}

export function ceilDiv(a: Dim, b: Dim): Dim {
  if (a === null || b === null || b === 0) return null;
  if (typeof a === 'number' && typeof b === 'number') return Math.ceil(a / b);
  if (b === 1) return a;
  return `ceil(${operand(a)}/${operand(b)})`;
}

export function maxDim(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return Math.max(a, b);
  if (a === b) return a;
  return `max(${a},${b})`;
}

export function minDim(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return Math.min(a, b);
  if (a === b) return a;
  return `min(${a},${b})`;
}

/**
 * Multidirectional (numpy) broadcasting of one dim pair. A size other than 1 wins over anything
 * (the other side must equal it or be 1); equal symbols stay; two different symbols, or an
 * unknown and a symbol, give unknown. Returns 'mismatch' for two different sizes > 1.
 */
export function broadcastDim(a: Dim, b: Dim): Dim | 'mismatch' {
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number' && typeof b === 'number') return a === b ? a : 'mismatch';
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return a !== null && a === b ? a : null;
}

/** Broadcasts shapes right-aligned; returns a message instead when two sizes cannot broadcast. */
export function broadcastShapes(shapes: readonly (readonly Dim[])[]): Dim[] | string {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const shape of shapes) {
      const at = shape.length - rank + i;
      if (at < 0) continue;
      const next = broadcastDim(dim, shape[at]);
      if (next === 'mismatch') return `cannot broadcast [${shapes.map((s) => s.join(',')).join('] with [')}]`;
      dim = next;
    }
    out.push(dim);
  }
  return out;
}

/** Two inferences of one value (If branches, Loop iterations): equal dims stay, others become `fresh()`. */
export function mergeDims(a: Dim, b: Dim, fresh: () => string): Dim {
  if (a === b) return a;
  if (a === null || b === null) return null;
  return fresh();
}

/** Normalises an axis against a rank (negative counts from the end); undefined when out of range. */
export function normalizeAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : undefined;
}

/**
 * Evaluates a dim (number, symbol or expression from this file) with symbols bound to sizes;
 * undefined when a symbol is unbound or the text is not an expression this file writes.
 */
export function evaluateDim(dim: Dim, bindings: ReadonlyMap<string, number>): number | undefined {
  if (typeof dim === 'number') return dim;
  if (dim === null) return undefined;
  if (bindings.has(dim)) return bindings.get(dim);
  const parser = new ExpressionParser(dim, bindings);
  try {
    const value = parser.parse();
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Recursive descent over `+ - * /`, parentheses, numbers, symbols and floor/ceil/max/min calls. */
class ExpressionParser {
  private at = 0;

  constructor(
    private readonly text: string,
    private readonly bindings: ReadonlyMap<string, number>,
  ) {}

  parse(): number {
    const value = this.sum();
    if (this.at !== this.text.length) throw new Error('trailing text');
    return value;
  }

  private sum(): number {
    let value = this.product();
    while (this.text[this.at] === '+' || this.text[this.at] === '-') {
      const op = this.text[this.at++];
      const right = this.product();
      value = op === '+' ? value + right : value - right;
    }
    return value;
  }

  private product(): number {
    let value = this.factor();
    while (this.text[this.at] === '*' || this.text[this.at] === '/') {
      const op = this.text[this.at++];
      const right = this.factor();
      value = op === '*' ? value * right : value / right;
    }
    return value;
  }

  private factor(): number {
    const rest = this.text.slice(this.at);
    if (rest.startsWith('(')) {
      this.at++;
      const value = this.sum();
      this.expect(')');
      return value;
    }
    if (rest.startsWith('-')) {
      this.at++;
      return -this.factor();
    }
    const call = /^(floor|ceil|max|min)\(/.exec(rest);
    if (call !== null) {
      this.at += call[0].length;
      const args = [this.sum()];
      while (this.text[this.at] === ',') {
        this.at++;
        args.push(this.sum());
      }
      this.expect(')');
      const fn = { floor: Math.floor, ceil: Math.ceil, max: Math.max, min: Math.min }[call[1] as 'floor'];
      return (fn as (...x: number[]) => number)(...args);
    }
    const number = /^\d+(\.\d+)?/.exec(rest);
    if (number !== null) {
      this.at += number[0].length;
      return Number(number[0]);
    }
    const symbol = /^[A-Za-z_][\w.]*/.exec(rest);
    if (symbol !== null && this.bindings.has(symbol[0])) {
      this.at += symbol[0].length;
      return this.bindings.get(symbol[0]) as number;
    }
    throw new Error(`cannot read '${rest}'`);
  }

  private expect(char: string): void {
    if (this.text[this.at] !== char) throw new Error(`expected '${char}'`);
    this.at++;
  }
}
