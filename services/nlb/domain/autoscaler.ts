/**
 * The autoscaling decision (DESIGN.md §5), in the manner of Kubernetes' HPA, as a pure
 * function of (policy, samples, current count, history, now):
 *
 *   desired = ceil(current × max(cpu/target_cpu, memory/target_memory, connections/target_connections))
 *
 * with no change inside the tolerance, bounds min/max, scale-up at most ×2 or +4 per decision,
 * scale-down only to the highest recommendation of the stabilization window, a cooldown after
 * every change, and instances that are STARTING or have no sample never counted as load.
 */
import type { Health } from './types.js';

export interface ScalingPolicy {
  minInstances: number;
  maxInstances: number;
  targetCpuPercent: number;
  targetMemoryPercent: number;
  /** Target open connections per instance. */
  targetConnections: number;
  cooldownSeconds: number;
  autoScalingEnabled: boolean;
}

export interface ScalingTuning {
  /** Relative band around the target with no change (0.1 = ±10 %). */
  tolerance: number;
  stabilizationWindowMs: number;
  /** Scale-up limit per decision: max(current × factor, current + add). */
  scaleUpFactor: number;
  scaleUpAdd: number;
}

export const DEFAULT_TUNING: ScalingTuning = {
  tolerance: 0.1,
  stabilizationWindowMs: 300_000,
  scaleUpFactor: 2,
  scaleUpAdd: 4,
};

export interface InstanceSample {
  instanceId: string;
  health: Health;
  /** False when the instance has not reported stats yet. */
  hasSample: boolean;
  cpuPercent: number;
  /** Memory use as % of the instance's limit; null when the limit is unknown. */
  memoryPercent: number | null;
  connections: number;
}

export interface ScalingHistory {
  /** When the last scaling change was made (ms), or null. */
  lastScaleAtMs: number | null;
  /** Past recommendations (after bounds), newest last; trimmed to the stabilization window. */
  recommendations: Array<{ atMs: number; desired: number }>;
}

export type ScalingAction = 'scale-up' | 'scale-down' | 'none';

export interface ScalingDecision {
  action: ScalingAction;
  current: number;
  desired: number;
  /** The raw recommendation before stabilization and rate limits. */
  recommendation: number;
  /** The highest usage ratio and which metric gave it. */
  ratio: number;
  metric: 'cpu' | 'memory' | 'connections' | 'none';
  reason: string;
}

export const emptyHistory = (): ScalingHistory => ({ lastScaleAtMs: null, recommendations: [] });

const READY: ReadonlySet<Health> = new Set(['HEALTHY', 'DEGRADED']);

function usage(
  samples: InstanceSample[],
  p: ScalingPolicy,
  divisor: number,
): { ratio: number; metric: ScalingDecision['metric'] } {
  const sum = (f: (s: InstanceSample) => number) => samples.reduce((a, s) => a + f(s), 0);
  const candidates: Array<[ScalingDecision['metric'], number]> = [];
  if (p.targetCpuPercent > 0)
    candidates.push(['cpu', sum((s) => s.cpuPercent) / divisor / p.targetCpuPercent]);
  const withMem = samples.filter((s) => s.memoryPercent !== null);
  if (p.targetMemoryPercent > 0 && withMem.length > 0)
    candidates.push(['memory', sum((s) => s.memoryPercent ?? 0) / divisor / p.targetMemoryPercent]);
  if (p.targetConnections > 0)
    candidates.push(['connections', sum((s) => s.connections) / divisor / p.targetConnections]);
  if (candidates.length === 0) return { ratio: 1, metric: 'none' };
  const [metric, ratio] = candidates.reduce((a, b) => (b[1] > a[1] ? b : a));
  return { ratio, metric };
}

const fmt = (x: number) => (Math.round(x * 100) / 100).toString();

/** Decides the instance count for one controller; returns the decision and the new history. */
export function decideScaling(
  p: ScalingPolicy,
  t: ScalingTuning,
  samples: InstanceSample[],
  current: number,
  history: ScalingHistory,
  nowMs: number,
): { decision: ScalingDecision; history: ScalingHistory } {
  const keep = (reason: string, extra: Partial<ScalingDecision> = {}): ScalingDecision => ({
    action: 'none',
    current,
    desired: current,
    recommendation: current,
    ratio: 1,
    metric: 'none',
    reason,
    ...extra,
  });
  const windowStart = nowMs - t.stabilizationWindowMs;
  const trimmed = history.recommendations.filter((r) => r.atMs > windowStart);
  const bounded = (n: number) => Math.min(p.maxInstances, Math.max(p.minInstances, n));

  if (!p.autoScalingEnabled)
    return {
      decision: keep('autoscaling is disabled for this controller'),
      history: { ...history, recommendations: trimmed },
    };

  // Bounds are enforced even during a cooldown.
  if (current < p.minInstances || current > p.maxInstances) {
    const desired = bounded(current);
    return {
      decision: {
        action: desired > current ? 'scale-up' : 'scale-down',
        current,
        desired,
        recommendation: desired,
        ratio: 1,
        metric: 'none',
        reason: `${current} instances is outside the bounds ${p.minInstances}-${p.maxInstances}`,
      },
      history: { lastScaleAtMs: nowMs, recommendations: [...trimmed, { atMs: nowMs, desired }] },
    };
  }

  const ready = samples.filter((s) => READY.has(s.health) && s.hasSample);
  if (ready.length === 0)
    return {
      decision: keep(
        samples.length
          ? 'no instance has reported load yet (starting or no stats)'
          : 'no instances to measure',
      ),
      history: { ...history, recommendations: trimmed },
    };

  const { ratio, metric } = usage(ready, p, ready.length);
  let recommendation = current;
  let why: string;
  if (Math.abs(ratio - 1) <= t.tolerance) {
    why = `${metric} at ${fmt(ratio)}× target is within the ±${Math.round(t.tolerance * 100)} % tolerance`;
  } else if (ratio > 1) {
    // Scaling up: count instances without a sample as idle, so that they cannot inflate the load.
    const conservative = usage(ready, p, Math.max(ready.length, current)).ratio;
    if (conservative <= 1 + t.tolerance) {
      why = `${metric} at ${fmt(ratio)}× target on ready instances, but only ${fmt(conservative)}× counting starting instances as idle`;
    } else {
      recommendation = Math.ceil(current * conservative);
      why = `${metric} at ${fmt(conservative)}× target`;
    }
  } else {
    recommendation = Math.ceil(current * ratio);
    why = `${metric} at ${fmt(ratio)}× target`;
  }
  recommendation = bounded(recommendation);
  const recs = [...trimmed, { atMs: nowMs, desired: recommendation }];

  let desired = recommendation;
  if (desired > current) {
    const limit = Math.max(current * t.scaleUpFactor, current + t.scaleUpAdd);
    if (desired > limit) {
      why += `; limited to ${limit} (at most ×${t.scaleUpFactor} or +${t.scaleUpAdd} per step)`;
      desired = limit;
    }
  } else if (desired < current) {
    const highest = Math.max(...recs.map((r) => r.desired));
    if (highest >= current) {
      return {
        decision: keep(
          `${why}; holding ${current}: a recommendation of ${highest} within the ${Math.round(t.stabilizationWindowMs / 1000)} s stabilization window`,
          { recommendation, ratio, metric },
        ),
        history: { ...history, recommendations: recs },
      };
    }
    desired = highest;
  }
  if (desired === current)
    return {
      decision: keep(why, { recommendation, ratio, metric }),
      history: { ...history, recommendations: recs },
    };

  if (history.lastScaleAtMs !== null && nowMs - history.lastScaleAtMs < p.cooldownSeconds * 1000) {
    const left = Math.ceil((p.cooldownSeconds * 1000 - (nowMs - history.lastScaleAtMs)) / 1000);
    return {
      decision: keep(`${why}; would scale to ${desired} but the cooldown has ${left} s left`, {
        recommendation,
        ratio,
        metric,
      }),
      history: { ...history, recommendations: recs },
    };
  }
  return {
    decision: {
      action: desired > current ? 'scale-up' : 'scale-down',
      current,
      desired,
      recommendation,
      ratio,
      metric,
      reason: `${why}: ${current} → ${desired}`,
    },
    history: { lastScaleAtMs: nowMs, recommendations: recs },
  };
}
