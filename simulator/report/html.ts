/**
 * The self-contained HTML report of a run: verdict and expectations, charts (offered load,
 * instances, weights, error rate and p99 latency per version) with faults and actions marked,
 * per-type numbers and the full timeline. One file, inline CSS and SVG, nothing fetched.
 */
import { clockText } from '../time-text.js';
import type { SimResult } from '../engine/run.js';
import type { Sample } from '../engine/recorder.js';
import { escapeXml as esc, lineChart, type ChartMarker, type ChartSeries } from './svg-chart.js';

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}
.pass{background:#2a7d2e}.fail{background:#b3261e}.muted{color:#666}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:1fr;gap:10px}svg{width:100%;height:auto;background:#fff;border:1px solid #eee}
svg .title{font-size:13px;font-weight:600;fill:#333}svg .tick{font-size:10px;fill:#666}svg .legend{font-size:11px;fill:#333}
svg .grid{stroke:#eee}svg .axis{stroke:#999}svg .marker{stroke-width:1.2;stroke-dasharray:3 3}svg .marker.fault{stroke:#d62728}svg .marker.action{stroke:#1f77b4}
.k-scaling{color:#2a6}.k-rollout{color:#85c}.k-fault{color:#c33}.k-action{color:#27c}.k-nlb{color:#a60}.k-instance{color:#888}.k-expectation{color:#333}
`;

type Pick = (s: Sample) => number | undefined;

function series(samples: readonly Sample[], name: string, pick: Pick, dashed = false): ChartSeries {
  const points: Array<[number, number]> = [];
  for (const s of samples) {
    const v = pick(s);
    if (v !== undefined && Number.isFinite(v)) points.push([s.tMs, v]);
  }
  return { name, points, dashed };
}

/** Renders the report. */
export function renderHtml(r: SimResult): string {
  const samples = r.samples;
  const types = Object.keys(r.types);
  const versions = [...new Set(samples.flatMap((s) => Object.keys(s.versions)))].sort();
  const markers: ChartMarker[] = r.timeline
    .filter((e) => e.kind === 'fault' || e.kind === 'action')
    .map((e) => ({
      atMs: e.atMs,
      kind: e.kind as 'fault' | 'action',
      label: `${[e.type, e.version].filter(Boolean).join(' ')} ${e.message}`,
    }));
  const chart = (
    title: string,
    list: ChartSeries[],
    extra: { format?: (v: number) => string; minMax?: number } = {},
  ) => lineChart({ title, series: list, durationMs: r.durationMs, markers, ...extra });
  const v =
    (key: string, f: keyof Sample['versions'][string]): Pick =>
    (s) =>
      s.versions[key]?.[f];
  const t =
    (type: string, f: keyof Sample['types'][string]): Pick =>
    (s) =>
      s.types[type]?.[f];
  const pct = (x: number) => `${+(x * 100).toPrecision(3)}%`;

  const charts = [
    chart(
      'Offered and served load (requests/s)',
      types.flatMap((ty) => [
        series(samples, `${ty} offered`, t(ty, 'offeredRps')),
        series(samples, `${ty} served`, t(ty, 'servedRps'), true),
      ]),
    ),
    chart(
      'Instances registered (solid) and desired by the controller (dashed)',
      versions.flatMap((k) => [
        series(samples, k, v(k, 'instances')),
        series(samples, `${k} desired`, v(k, 'desiredInstances'), true),
      ]),
    ),
    chart(
      'Traffic weight per version (%)',
      versions.map((k) => series(samples, k, v(k, 'weight'))),
      { minMax: 100 },
    ),
    chart(
      'Error rate per version',
      versions.map((k) => series(samples, k, v(k, 'errorRate'))),
      { format: pct, minMax: 0.01 },
    ),
    chart(
      'p99 latency per version (ms)',
      versions.map((k) => series(samples, k, v(k, 'p99LatencyMs'))),
    ),
    chart(
      'CPU per version (%)',
      versions.map((k) => series(samples, k, v(k, 'cpuPercent'))),
      { minMax: 100 },
    ),
  ];

  const rows = (cells: string[][], numeric: number[] = []) =>
    cells
      .map(
        (c) =>
          `<tr>${c.map((x, i) => `<td${numeric.includes(i) ? ' class="num"' : ''}>${x}</td>`).join('')}</tr>`,
      )
      .join('\n');

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(r.scenario.name)} — MarchProxy simulation</title><style>${CSS}</style></head>
<body>
<h1>${esc(r.scenario.name)} <span class="verdict ${r.passed ? 'pass' : 'fail'}">${r.passed ? 'PASSED' : 'FAILED'}</span></h1>
<p class="muted">seed ${esc(r.seed)} · ${clockText(r.durationMs)} simulated in ${(r.wallMs / 1000).toFixed(1)} s (${Math.round(r.speedUp)}×, ${r.speed}) · peak RSS ${r.peakRssMb} MB${r.scenario.file ? ` · ${esc(r.scenario.file)}` : ''}</p>
${r.scenario.description ? `<p>${esc(r.scenario.description)}</p>` : ''}
<h2>Expectations</h2>
<table><tr><th></th><th>Expectation</th><th>Why</th></tr>
${rows(r.expectations.map((x) => [x.passed ? '✓' : '<b style="color:#b3261e">✗</b>', esc(x.name), esc(x.reason)]))}
</table>
<h2>Charts</h2>
<p class="muted">Dashed vertical lines: <span class="k-fault">faults</span> and <span class="k-action">actions</span> (hover for details).</p>
<div class="charts">${charts.join('\n')}</div>
<h2>Module types</h2>
<table><tr><th>Type</th><th>Peak instances</th><th>Final</th><th>Scale-ups</th><th>Scale-downs</th><th>Failed Scale calls</th><th>Offered requests</th><th>Failed</th><th>Lost</th></tr>
${rows(
  Object.entries(r.types).map(([ty, s]) => [
    esc(ty),
    String(s.peakInstances),
    String(s.finalInstances),
    String(s.scaleUps),
    String(s.scaleDowns),
    String(s.failedScaleCalls),
    String(s.offeredRequests),
    String(s.failedRequests),
    String(s.lostRequests),
  ]),
  [1, 2, 3, 4, 5, 6, 7, 8],
)}
</table>
<h2>Timeline</h2>
<table><tr><th>Time</th><th>Kind</th><th>Module</th><th>Event</th></tr>
${rows(r.timeline.map((e) => [clockText(e.atMs), `<span class="k-${e.kind}">${e.kind}</span>`, esc([e.type, e.version].filter(Boolean).join(' ')), esc(e.message)]))}
</table>
</body></html>
`;
}
