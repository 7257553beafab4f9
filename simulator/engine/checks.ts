/**
 * The pieces expectations are made of: what a check returns and reads, and the checks driven by
 * samples (a bound on a sampled value; a scale change within a window).
 */
import type { Expectation } from '../scenario/schema.js';
import { clockText } from '../time-text.js';
import type { Restart } from './cluster.js';
import type { DeploymentObservation, Misroute, Sample, TimelineEvent } from './recorder.js';

export interface Outcome {
  name: string;
  kind: Expectation['kind'];
  passed: boolean;
  reason: string;
  /** When it failed (ms since the start), if at a moment. */
  atMs?: number;
}

/** What the checks read at the end. */
export interface Evidence {
  durationMs: number;
  samples: readonly Sample[];
  timeline: readonly TimelineEvent[];
  deployments: readonly DeploymentObservation[];
  misroutes: readonly Misroute[];
  restarts: readonly Restart[];
  heartbeatIntervalMs: number;
  missedHeartbeats: number;
  lastScalingReason: ReadonlyMap<string, string>;
  /** Latest value of an NLB metrics-store series for a type (and version). */
  nlbMetric(series: string, type?: string, version?: string): number | undefined;
}

export interface Check {
  readonly name: string;
  /** Called with each sample (and the NLB metric reader at that moment). */
  sample(s: Sample, nlbMetric: Evidence['nlbMetric']): void;
  finish(e: Evidence): Outcome;
}

export const fmt = (x: number) =>
  Math.abs(x) >= 100
    ? Math.round(x).toString()
    : Math.abs(x) >= 1
      ? (Math.round(x * 100) / 100).toString()
      : Number(x.toPrecision(2)).toString();
export const scopeText = (type?: string, version?: string) =>
  `${type ?? 'all types'}${version ? ` ${version}` : ''}`;

export function valueOf(s: Sample, metric: string, type?: string, version?: string): number | undefined {
  if (version && type) {
    const v = s.versions[`${type}@${version}`] as unknown as Record<string, number> | undefined;
    return v?.[metric];
  }
  if (type) return (s.types[type] as unknown as Record<string, number> | undefined)?.[metric];
  const all = Object.values(s.types) as unknown as Array<Record<string, number>>;
  if (metric === 'errorRate' || metric === 'p99LatencyMs' || metric === 'cpuPercent')
    return all.length ? Math.max(...all.map((t) => t[metric] ?? 0)) : undefined;
  return all.reduce((a, t) => a + (t[metric] ?? 0), 0);
}

/** A bound on a sampled value, with a grace period for violations. */
export function boundCheck(
  name: string,
  kind: Expectation['kind'],
  o: { min?: number; max?: number; from: number; to?: number; grace: number; endOnly: boolean; what: string },
  read: (s: Sample, nlb: Evidence['nlbMetric']) => number | undefined,
): Check {
  let failure: Outcome | null = null;
  let since: number | null = null;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  let last: { t: number; v: number } | null = null;
  const judge = (t: number, v: number): string | null =>
    o.min !== undefined && v < o.min
      ? `${o.what} was ${fmt(v)} at ${clockText(t)}, below ${o.min}`
      : o.max !== undefined && v > o.max
        ? `${o.what} was ${fmt(v)} at ${clockText(t)}, above ${o.max}`
        : null;
  return {
    name,
    sample(s, nlb) {
      if (failure || s.tMs < o.from || (o.to !== undefined && s.tMs > o.to)) return;
      const v = read(s, nlb);
      if (v === undefined) return;
      last = { t: s.tMs, v };
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      if (o.endOnly) return;
      const bad = judge(s.tMs, v);
      if (!bad) {
        since = null;
        return;
      }
      since ??= s.tMs;
      if (s.tMs - since >= o.grace)
        failure = {
          name,
          kind,
          passed: false,
          reason: `${bad}${o.grace ? ` (out of bounds since ${clockText(since)})` : ''}`,
          atMs: s.tMs,
        };
    },
    finish() {
      if (failure) return failure;
      if (!last) return { name, kind, passed: false, reason: `no sample of ${o.what} in the window` };
      if (o.endOnly) {
        const bad = judge(last.t, last.v);
        return bad
          ? { name, kind, passed: false, reason: bad, atMs: last.t }
          : { name, kind, passed: true, reason: `${o.what} ended at ${fmt(last.v)}` };
      }
      return {
        name,
        kind,
        passed: true,
        reason: `${o.what} stayed within bounds (observed ${fmt(lo)}-${fmt(hi)})`,
      };
    },
  };
}

export const matches = (ev: { type?: string; version?: string }, type?: string, version?: string) =>
  (!type || ev.type === type) && (!version || ev.version === version);

/** Scaling changes carried out (Scale succeeded). */
export const scaleChanges = (e: Evidence, type?: string, version?: string, action?: string) =>
  e.timeline.filter(
    (ev) =>
      ev.kind === 'scaling' &&
      ev.data?.ok === true &&
      ev.data.action !== 'none' &&
      (!action || ev.data.action === action) &&
      matches(ev, type, version),
  );

export function lastReason(e: Evidence, type: string, version?: string): string {
  const reasons = [...e.lastScalingReason].filter(([k]) => k.startsWith(`${type}@${version ?? ''}`));
  return reasons.length
    ? reasons.map(([k, r]) => `${k}: ${r}`).join('; ')
    : 'no autoscaler decision recorded';
}

export function scaleCheck(name: string, x: Extract<Expectation, { kind: 'scaleUp' | 'scaleDown' }>): Check {
  const up = x.kind === 'scaleUp';
  const end = x.after + x.within;
  let reachedAt: number | null = null;
  let startCount: number | null = null;
  let lastCount = 0;
  const target = up ? x.atLeast : x.atMost;
  return {
    name,
    sample(s) {
      if (s.tMs < x.after) return;
      const v = valueOf(s, 'healthyInstances', x.type, x.version) ?? 0;
      startCount ??= v;
      if (s.tMs > end) return;
      lastCount = v;
      if (target !== undefined && reachedAt === null && (up ? v >= target : v <= target)) reachedAt = s.tMs;
    },
    finish(e) {
      const action = up ? 'scale-up' : 'scale-down';
      const changes = scaleChanges(e, x.type, x.version, action).filter(
        (ev) => ev.atMs >= x.after && ev.atMs <= end,
      );
      const window = `between ${clockText(x.after)} and ${clockText(end)}`;
      if (changes.length === 0)
        return {
          name,
          kind: x.kind,
          passed: false,
          atMs: end,
          reason: `${scopeText(x.type, x.version)} did not scale ${up ? 'up' : 'down'} ${window}: healthy instances went from ${startCount ?? 0} to ${lastCount}; the autoscaler said: ${lastReason(e, x.type, x.version)}`,
        };
      const first = changes[0];
      if (target !== undefined && reachedAt === null)
        return {
          name,
          kind: x.kind,
          passed: false,
          atMs: end,
          reason: `${scopeText(x.type, x.version)} scaled ${up ? 'up' : 'down'} at ${clockText(first.atMs)} but had ${lastCount} healthy instance(s) at ${clockText(end)}, ${up ? 'fewer' : 'more'} than ${target}`,
        };
      return {
        name,
        kind: x.kind,
        passed: true,
        reason: `scaled ${up ? 'up' : 'down'} at ${clockText(first.atMs)} (${first.message})${reachedAt !== null ? `; ${target} healthy by ${clockText(reachedAt)}` : ''}`,
      };
    },
  };
}
