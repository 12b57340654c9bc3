// Plain SVG charts (no chart library in the page): horizontal bars for ranked lists (the op
// histogram, the layers with the most error) and columns in network order (weights per layer).
// Every bar has a <title>, so hovering names it.

export interface Bar {
  label: string;
  value: number;
  /** Tooltip; the label and value by default. */
  title?: string;
  /** Highlighted bar (a warning colour). */
  alert?: boolean;
}

const ROW = 18;
const LABEL_WIDTH = 190;
const VALUE_WIDTH = 70;

/** Horizontal bars, one row each, in the order given; lengths relative to the largest |value|. */
export function BarList({ bars, format, testId }: { bars: readonly Bar[]; format: (v: number) => string; testId?: string }) {
  const width = 560;
  const span = width - LABEL_WIDTH - VALUE_WIDTH;
  const max = Math.max(1e-12, ...bars.map((b) => Math.abs(b.value)));
  return (
    <svg class="chart" data-testid={testId} viewBox={`0 0 ${width} ${bars.length * ROW + 4}`} role="img">
      {bars.map((bar, i) => {
        const length = Math.max(1, (Math.abs(bar.value) / max) * span);
        const y = i * ROW + 2;
        return (
          <g key={bar.label}>
            <title>{bar.title ?? `${bar.label}: ${format(bar.value)}`}</title>
            <text x={LABEL_WIDTH - 6} y={y + 12} text-anchor="end" class="chart-label">
              {bar.label.length > 28 ? `${bar.label.slice(0, 27)}…` : bar.label}
            </text>
            <rect x={LABEL_WIDTH} y={y + 2} width={length} height={ROW - 5} rx="2" class={bar.alert ? 'bar bar-alert' : 'bar'} />
            <text x={LABEL_WIDTH + length + 5} y={y + 12} class="chart-value">
              {format(bar.value)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

/** Columns left to right (network order); the axis shows the largest value. */
/** `width` is in the chart's own units: give the width it is shown at, so its text stays at 11px. */
export function Columns({ bars, format, testId, height = 140, width = 560 }: { bars: readonly Bar[]; format: (v: number) => string; testId?: string; height?: number; width?: number }) {
  const left = 56;
  const plot = height - 22;
  const max = Math.max(1e-12, ...bars.map((b) => b.value));
  const step = (width - left) / Math.max(1, bars.length);
  return (
    <svg class="chart" data-testid={testId} viewBox={`0 0 ${width} ${height}`} role="img">
      <line x1={left} y1={plot} x2={width} y2={plot} class="axis" />
      <text x={left - 6} y={10} text-anchor="end" class="chart-value">
        {format(max)}
      </text>
      <text x={left - 6} y={plot} text-anchor="end" class="chart-value">
        0
      </text>
      {bars.map((bar, i) => {
        const h = Math.max(bar.value > 0 ? 1 : 0, (bar.value / max) * (plot - 4));
        return (
          <rect key={`${bar.label}-${i}`} x={left + i * step + step * 0.1} y={plot - h} width={Math.max(1, step * 0.8)} height={h} class={bar.alert ? 'bar bar-alert' : 'bar'}>
            <title>{bar.title ?? `${bar.label}: ${format(bar.value)}`}</title>
          </rect>
        );
      })}
      <text x={left} y={height - 6} class="chart-label">
        first layer
      </text>
      <text x={width} y={height - 6} text-anchor="end" class="chart-label">
        last layer
      </text>
    </svg>
  );
}
