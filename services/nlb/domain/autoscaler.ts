/**
 * The autoscaling decision (DESIGN.md §5), in the manner of Kubernetes' HPA, as a pure
 * function of (policy, samples, current count, history, now):
 *
 *   desired = ceil(current × max(cpu/target_cpu, memory/target_memory, connections/target_connections))
 *
 * with no change inside the tolerance, bounds min/max, scale-up at most ×2 or +4 per decision,
 * scale-down only to the highest recommendation of the stabilization window — and only once the
 * autoscaler has watched the controller for a whole window (a new controller, or any after an
 * NLB restart, has no evidence yet) — a cooldown after every change, and instances that are
 * STARTING or have no sample never counted as load.
 *
 * `current` is what the controller has or is about to have (countFleet): instances that can
 * serve, instances starting, and replacements its controller owes for instances that crashed —
 * never dead registrations waiting to be evicted, which cannot serve and would inflate it.
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
  /**
   * How long after an instance's lease lapsed its controller is expected to have replaced it
   * (restart backoff, at most 30 s, plus boot time): until then, and unless a newer registration
   * already stands in for it, it counts as coming back (countFleet).
   */
  replacementGraceMs: number;
}

export const DEFAULT_TUNING: ScalingTuning = {
  tolerance: 0.1,
  stabilizationWindowMs: 300_000,
  scaleUpFactor: 2,
  scaleUpAdd: 4,
  replacementGraceMs: 90_000,
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
  /** When the NLB registered it (ms). */
  registeredAtMs: number;
  /** Its last heartbeat (ms). */
  lastHeartbeatAtMs: number;
  /**
   * When its lease lapsed (missed heartbeats: it crashed or is cut off), or null while it
   * holds its lease. A lost instance cannot serve, whatever its last reported health.
   */
  lostAtMs: number | null;
}

export interface ScalingHistory {
  /** When the last scaling change was made (ms), or null. */
  lastScaleAtMs: number | null;
  /** Past recommendations (after bounds), newest last; trimmed to the stabilization window. */
  recommendations: Array<{ atMs: number; desired: number }>;
  /**
   * When the first recommendation was made (ms): how long the autoscaler has gathered evidence
   * for this controller. Null before any (and after autoscaling was disabled).
   */
  observedSinceMs: number | null;
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

export const emptyHistory = (): ScalingHistory => ({
  lastScaleAtMs: null,
  recommendations: [],
  observedSinceMs: null,
});

const READY: ReadonlySet<Health> = new Set(['HEALTHY', 'DEGRADED']);

/** A controller's instances as the NLB's registry shows them (draining ones left out). */
export interface FleetCount {
  /** Holding their lease and HEALTHY or DEGRADED: they carry load now. */
  serving: number;
  /** Holding their lease and STARTING. */
  starting: number;
  /** Lost (lease lapsed) within the replacement grace, with no newer registration standing in for them. */
  awaited: number;
  /** Lost and already replaced by a newer registration, or written off (past the grace, or more
   * than the controller was asked for). */
  gone: number;
  /** Holding their lease but reporting UNHEALTHY or STOPPING: alive, not serving, not replaced. */
  unavailable: number;
  /** serving + starting + awaited: what the controller has or is about to have. */
  counted: number;
}

/**
 * Counts what a controller has. A crashed instance stays registered (UNHEALTHY) until it is
 * evicted, minutes later, while its controller starts a replacement at once: counting both
 * would ask the controller for instances it already has. So a lost instance counts only until
 * a registration newer than its last heartbeat stands in for it (or the grace runs out), and
 * then not at all; live instances reporting UNHEALTHY or STOPPING never count.
 *
 * `expected` is the count the controller was last asked for, when known: the controller starts
 * no more replacements than that allows (a scale-down since the crash retires some instead).
 */
export function countFleet(
  samples: readonly InstanceSample[],
  t: ScalingTuning,
  nowMs: number,
  expected: number | null = null,
): FleetCount {
  let serving = 0;
  let starting = 0;
  let unavailable = 0;
  const lost: InstanceSample[] = [];
  const registered: number[] = [];
  for (const s of samples) {
    // A replacement that died in turn still replaced the one before it.
    registered.push(s.registeredAtMs);
    if (s.lostAtMs !== null) lost.push(s);
    else if (READY.has(s.health)) serving++;
    else if (s.health === 'STARTING') starting++;
    else unavailable++;
  }
  // Pair each lost instance (oldest first) with the earliest unused registration made after
  // its last heartbeat: that one is (or may as well be) its replacement.
  lost.sort((a, b) => a.lastHeartbeatAtMs - b.lastHeartbeatAtMs);
  registered.sort((a, b) => a - b);
  let next = 0;
  let awaited = 0;
  for (const l of lost) {
    while (next < registered.length && registered[next] <= l.lastHeartbeatAtMs) next++;
    if (next < registered.length) next++;
    else if (nowMs - (l.lostAtMs ?? nowMs) < t.replacementGraceMs) awaited++;
  }
  if (expected !== null) awaited = Math.min(awaited, Math.max(0, expected - serving - starting));
  return {
    serving,
    starting,
    awaited,
    gone: lost.length - awaited,
    unavailable,
    counted: serving + starting + awaited,
  };
}

/** "(counted 8: 6 serving, …; not counted: …)", or '' when every instance simply serves. */
function describeFleet(f: FleetCount): string {
  if (f.starting + f.awaited + f.gone + f.unavailable === 0) return '';
  const parts = [`${f.serving} serving`];
  if (f.starting) parts.push(`${f.starting} starting`);
  if (f.awaited) parts.push(`${f.awaited} lost, replacement awaited`);
  const skipped = [];
  if (f.gone) skipped.push(`${f.gone} lost (replaced or written off)`);
  if (f.unavailable) skipped.push(`${f.unavailable} unhealthy or stopping`);
  return ` (counted ${f.counted}: ${parts.join(', ')}${skipped.length ? `; not counted: ${skipped.join(', ')}` : ''})`;
}

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

  // Disabled, it gathers no evidence: enabled again, it waits a whole window before scaling down.
  if (!p.autoScalingEnabled)
    return {
      decision: keep('autoscaling is disabled for this controller'),
      history: { ...history, recommendations: trimmed, observedSinceMs: null },
    };
  const observedSinceMs = history.observedSinceMs ?? nowMs;

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
      history: {
        lastScaleAtMs: nowMs,
        recommendations: [...trimmed, { atMs: nowMs, desired }],
        observedSinceMs,
      },
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
    const windowS = Math.round(t.stabilizationWindowMs / 1000);
    const watchedMs = nowMs - observedSinceMs;
    // No history is no evidence: the recommendations a restarted NLB lost may have been higher.
    if (watchedMs < t.stabilizationWindowMs) {
      return {
        decision: keep(
          `${why}; holding ${current}: scaling down needs a whole ${windowS} s stabilization window of recommendations, and this controller has been watched for ${Math.round(watchedMs / 1000)} s`,
          { recommendation, ratio, metric },
        ),
        history: { ...history, recommendations: recs, observedSinceMs },
      };
    }
    const highest = Math.max(...recs.map((r) => r.desired));
    if (highest >= current) {
      return {
        decision: keep(
          `${why}; holding ${current}: a recommendation of ${highest} within the ${windowS} s stabilization window`,
          { recommendation, ratio, metric },
        ),
        history: { ...history, recommendations: recs, observedSinceMs },
      };
    }
    desired = highest;
  }
  if (desired === current)
    return {
      decision: keep(why, { recommendation, ratio, metric }),
      history: { ...history, recommendations: recs, observedSinceMs },
    };

  if (history.lastScaleAtMs !== null && nowMs - history.lastScaleAtMs < p.cooldownSeconds * 1000) {
    const left = Math.ceil((p.cooldownSeconds * 1000 - (nowMs - history.lastScaleAtMs)) / 1000);
    return {
      decision: keep(`${why}; would scale to ${desired} but the cooldown has ${left} s left`, {
        recommendation,
        ratio,
        metric,
      }),
      history: { ...history, recommendations: recs, observedSinceMs },
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
    history: { lastScaleAtMs: nowMs, recommendations: recs, observedSinceMs },
  };
}

/**
 * decideScaling over what the registry holds for one controller (draining instances left out):
 * `current` is the counted fleet (countFleet; `expected` is the count the controller was last
 * asked for, when known), lost instances give no load, and the reason says
 * what was counted when that is not simply "every instance serving".
 */
export function decideForFleet(
  p: ScalingPolicy,
  t: ScalingTuning,
  samples: readonly InstanceSample[],
  history: ScalingHistory,
  nowMs: number,
  expected: number | null = null,
): { decision: ScalingDecision; history: ScalingHistory; fleet: FleetCount } {
  const fleet = countFleet(samples, t, nowMs, expected);
  const holding = samples.filter((s) => s.lostAtMs === null);
  const r = decideScaling(p, t, holding, fleet.counted, history, nowMs);
  const note = describeFleet(fleet);
  return { ...r, decision: { ...r.decision, reason: r.decision.reason + note }, fleet };
}
