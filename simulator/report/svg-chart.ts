/**
 * A small inline-SVG line chart (no script, no external assets): time on x, one value per
 * series on y, nice ticks, a legend, and vertical markers for faults and actions.
 */

export interface ChartSeries {
  name: string;
  /** [ms since start, value] */
  points: ReadonlyArray<readonly [number, number]>;
  dashed?: boolean;
}

export interface ChartMarker {
  atMs: number;
  label: string;
  kind: 'fault' | 'action';
}

export interface ChartOptions {
  title: string;
  series: readonly ChartSeries[];
  durationMs: number;
  markers?: readonly ChartMarker[];
  /** Formats y tick labels (default: compact number). */
  format?: (v: number) => string;
  /** Lowest top of the y axis (e.g. 1 for ratios, 100 for percentages). */
  minMax?: number;
}

export const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

export const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** 1, 2 or 5 × 10^k steps giving about `count` ticks up to `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

export const compact = (v: number): string => {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 10 || v === 0) return `${Math.round(v)}`;
  return `${+v.toPrecision(2)}`;
};

/** "1h05m", "12m", "45s" for axis labels. */
export function timeLabel(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s % 60 !== 0 || s < 60) return `${Math.floor(s / 60) ? `${Math.floor(s / 60)}m` : ''}${s % 60}s`;
  const m = s / 60;
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}m`;
}

const W = 760;
const H = 220;
const L = 56;
const R = 14;
const T = 28;
const B = 26;

/** Renders the chart as an `<svg>` element. */
export function lineChart(o: ChartOptions): string {
  const format = o.format ?? compact;
  const values = o.series.flatMap((s) => s.points.map((p) => p[1]));
  const top = Math.max(o.minMax ?? 0, ...values, 1e-9);
  const yStep = niceStep(top, 4);
  const yMax = Math.ceil(top / yStep) * yStep;
  const xMax = Math.max(1, o.durationMs);
  const x = (ms: number) => L + ((W - L - R) * ms) / xMax;
  const y = (v: number) => T + (H - T - B) * (1 - v / yMax);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H + 18 * Math.ceil(o.series.length / 4)}" role="img" aria-label="${escapeXml(o.title)}">`,
    `<text x="${L}" y="16" class="title">${escapeXml(o.title)}</text>`,
  );
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(
      `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`,
      `<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" class="tick" text-anchor="end">${escapeXml(format(v))}</text>`,
    );
  }
  const xStep = niceStep(xMax / 60_000, 8) * 60_000;
  for (let t = 0; t <= xMax + 1; t += xStep)
    out.push(
      `<text x="${x(t).toFixed(1)}" y="${H - 8}" class="tick" text-anchor="middle">${timeLabel(t)}</text>`,
    );
  for (const m of o.markers ?? []) {
    const mx = x(m.atMs).toFixed(1);
    out.push(
      `<line x1="${mx}" x2="${mx}" y1="${T}" y2="${H - B}" class="marker ${m.kind}"><title>${escapeXml(`${timeLabel(m.atMs)} ${m.label}`)}</title></line>`,
    );
  }
  o.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (s.points.length === 0) return;
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)} ${y(p[1]).toFixed(1)}`).join('');
    out.push(
      `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="4 3"' : ''}><title>${escapeXml(s.name)}</title></path>`,
    );
  });
  o.series.forEach((s, i) => {
    const lx = L + (i % 4) * 175;
    const ly = H + 6 + Math.floor(i / 4) * 18;
    const color = PALETTE[i % PALETTE.length];
    out.push(
      `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
      `<text x="${lx + 24}" y="${ly + 4}" class="legend">${escapeXml(s.name)}</text>`,
    );
  });
  out.push(
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" class="axis"/>`,
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" class="axis"/>`,
    '</svg>',
  );
  return out.join('\n');
}
