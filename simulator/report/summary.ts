/**
 * A run's result for people (a text summary: expectations with their reasons, per-type
 * numbers, the timeline) and for golden files (only what a fixed seed fixes: no wall time).
 */
import type { SimResult } from '../engine/run.js';
import { clockText } from '../time-text.js';
import type { TimelineEvent } from '../engine/recorder.js';

const pad = (s: string, n: number) => s.padEnd(n);

/** The events worth reading in a terminal; instance health changes are counted, not listed. */
function notable(timeline: readonly TimelineEvent[], limit: number): { lines: string[]; hidden: number } {
  const shown = timeline.filter((e) => e.kind !== 'instance' && e.kind !== 'expectation');
  const lines = shown.slice(0, limit).map((e) => {
    const scope = [e.type, e.version].filter(Boolean).join(' ');
    return `  ${pad(clockText(e.atMs), 8)} ${pad(e.kind, 8)} ${scope ? `${scope}: ` : ''}${e.message}`;
  });
  return { lines, hidden: shown.length - lines.length };
}

/** The text `mpctl sim run` prints. */
export function formatSummary(r: SimResult, o: { timelineLimit?: number } = {}): string {
  const out: string[] = [];
  out.push(
    `scenario ${r.scenario.name} (seed ${r.seed}): ${r.passed ? 'PASSED' : 'FAILED'}`,
    `  ${clockText(r.durationMs)} simulated in ${(r.wallMs / 1000).toFixed(1)} s (${Math.round(r.speedUp)}×, ${r.speed}), peak RSS ${r.peakRssMb} MB`,
    '',
    'expectations',
  );
  for (const x of r.expectations) out.push(`  ${x.passed ? '✓' : '✗'} ${x.name}`, `      ${x.reason}`);
  out.push('', 'module types');
  out.push(
    `  ${pad('type', 6)} ${pad('peak', 6)} ${pad('final', 6)} ${pad('ups', 5)} ${pad('downs', 6)} ${pad('offered', 11)} ${pad('failed', 9)} lost`,
  );
  for (const [t, s] of Object.entries(r.types))
    out.push(
      `  ${pad(t, 6)} ${pad(String(s.peakInstances), 6)} ${pad(String(s.finalInstances), 6)} ${pad(String(s.scaleUps), 5)} ${pad(String(s.scaleDowns), 6)} ${pad(String(s.offeredRequests), 11)} ${pad(String(s.failedRequests), 9)} ${s.lostRequests}`,
    );
  const deployments = Object.entries(r.deployments);
  if (deployments.length) {
    out.push('', 'deployments');
    for (const [t, d] of deployments)
      out.push(
        `  ${pad(t, 6)} ${d.phase}, stable ${d.stableVersion}: ${Object.entries(d.weights)
          .map(([v, w]) => `${v} ${w} %`)
          .join(', ')}`,
      );
  }
  const { lines, hidden } = notable(r.timeline, o.timelineLimit ?? 60);
  const health = r.timeline.filter((e) => e.kind === 'instance').length;
  out.push('', 'timeline', ...lines);
  if (hidden) out.push(`  … ${hidden} more event(s) (--json or --report for all)`);
  if (health) out.push(`  (${health} instance health event(s) not shown)`);
  return out.join('\n');
}

/** What a golden file pins for a fixed seed: outcomes, counts and the decisions' reasons. */
export function goldenSummary(r: SimResult) {
  return {
    scenario: r.scenario.name,
    seed: r.seed,
    durationMs: r.durationMs,
    passed: r.passed,
    expectations: r.expectations.map((x) => ({ name: x.name, passed: x.passed, reason: x.reason })),
    types: r.types,
    deployments: r.deployments,
    events: r.timeline
      .filter(
        (e) =>
          e.kind === 'scaling' ||
          e.kind === 'rollout' ||
          e.kind === 'fault' ||
          e.kind === 'action' ||
          e.kind === 'nlb',
      )
      .map((e) => {
        const scope = [e.type, e.version].filter(Boolean).join(' ');
        return `${clockText(e.atMs)} ${e.kind}${scope ? ` ${scope}` : ''}: ${e.message.replace(/127\.0\.0\.1:\d+/g, '<addr>')}`;
      }),
  };
}
