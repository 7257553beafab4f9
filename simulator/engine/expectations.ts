/**
 * Expectations: what must hold, checked at every sample while the run goes and settled at the
 * end. Each says whether it passed and why, in words that point at the cause (the autoscaler's
 * last reason, the rollout's state, the instance that got traffic after it died).
 */
import type { Expectation } from '../scenario/schema.js';
import type { TimelineEvent } from './recorder.js';
import { boundCheck, scaleChanges, scaleCheck, scopeText, valueOf, type Check } from './checks.js';
import { clockText } from '../time-text.js';

export type { Check, Evidence, Outcome } from './checks.js';

function defaultName(e: Expectation): string {
  switch (e.kind) {
    case 'instances':
      return `${scopeText(e.type, e.version)} ${e.healthy ? 'healthy ' : ''}instances within ${e.min ?? 0}-${e.max ?? '∞'}`;
    case 'scaleUp':
      return `${scopeText(e.type, e.version)} scales up within ${clockText(e.within)} after ${clockText(e.after)}${e.atLeast !== undefined ? ` (to ≥ ${e.atLeast})` : ''}`;
    case 'scaleDown':
      return `${scopeText(e.type, e.version)} scales down within ${clockText(e.within)} after ${clockText(e.after)}${e.atMost !== undefined ? ` (to ≤ ${e.atMost})` : ''}`;
    case 'maxScaleChanges':
      return `${scopeText(e.type, e.version)}: at most ${e.perHour} scale changes per hour`;
    case 'rolloutCompletes':
      return `${e.type} ${e.version} fully promoted by ${clockText(e.by)}`;
    case 'rolledBack':
      return `${e.type} ${e.version} rolled back${e.by !== undefined ? ` by ${clockText(e.by)}` : ''} before its share exceeds ${e.maxWeight} %`;
    case 'noUnhealthyRouting':
      return `no traffic routed to unhealthy ${e.type ?? ''} instances`.replace('  ', ' ');
    case 'registryRecovers':
      return 'registry recovers after an NLB restart';
    case 'metric':
      return `${e.metric} of ${scopeText(e.type, e.version)} within ${e.min ?? '-∞'}..${e.max ?? '∞'}${e.check === 'end' ? ' at the end' : ''}`;
  }
}

/** Builds the checks for a scenario's expectations. */
export function createChecks(list: readonly Expectation[], durationMs: number): Check[] {
  return list.map((x): Check => {
    const name = x.name ?? defaultName(x);
    switch (x.kind) {
      case 'instances':
        return boundCheck(
          name,
          x.kind,
          {
            min: x.min,
            max: x.max,
            from: x.from,
            to: x.to,
            grace: x.grace,
            endOnly: false,
            what: `${scopeText(x.type, x.version)} ${x.healthy ? 'healthy ' : ''}instances`,
          },
          (s) => valueOf(s, x.healthy ? 'healthyInstances' : 'instances', x.type, x.version),
        );
      case 'metric':
        return boundCheck(
          name,
          x.kind,
          {
            min: x.min,
            max: x.max,
            from: x.from,
            to: x.to,
            grace: x.grace,
            endOnly: x.check === 'end',
            what: `${x.metric} of ${scopeText(x.type, x.version)}`,
          },
          (s, nlb) =>
            x.metric.startsWith('nlb:')
              ? nlb(x.metric.slice(4), x.type, x.version)
              : valueOf(s, x.metric, x.type, x.version),
        );
      case 'scaleUp':
      case 'scaleDown':
        return scaleCheck(name, x);
      case 'maxScaleChanges':
        return {
          name,
          sample() {},
          finish(e) {
            const changes = scaleChanges(e, x.type, x.version);
            const hour = 3_600_000;
            let worst: TimelineEvent[] = [];
            for (let i = 0; i < changes.length; i++) {
              const inWindow = changes.filter(
                (c) => c.atMs >= changes[i].atMs && c.atMs < changes[i].atMs + hour,
              );
              if (inWindow.length > worst.length) worst = inWindow;
            }
            const span = durationMs < hour ? ` (the run lasted ${clockText(durationMs)})` : '';
            if (worst.length > x.perHour)
              return {
                name,
                kind: x.kind,
                passed: false,
                atMs: worst[x.perHour].atMs,
                reason: `${worst.length} scale changes within an hour from ${clockText(worst[0].atMs)}, more than ${x.perHour}: ${worst
                  .slice(0, 6)
                  .map((c) => `${clockText(c.atMs)} ${String(c.data?.from)}→${String(c.data?.to)}`)
                  .join(', ')}${worst.length > 6 ? ', …' : ''}`,
              };
            return {
              name,
              kind: x.kind,
              passed: true,
              reason: `${changes.length} scale change(s) in total, at most ${worst.length} in any hour${span}`,
            };
          },
        };
      case 'rolloutCompletes':
        return {
          name,
          sample() {},
          finish(e) {
            const done = e.deployments.find(
              (d) =>
                d.type === x.type &&
                d.phase === 'PROMOTED' &&
                d.stableVersion === x.version &&
                d.weights[x.version] === 100,
            );
            if (done && done.atMs <= x.by)
              return {
                name,
                kind: x.kind,
                passed: true,
                reason: `${x.type} ${x.version} reached 100 % at ${clockText(done.atMs)}`,
              };
            const last = [...e.deployments].reverse().find((d) => d.type === x.type && d.atMs <= x.by);
            const state = last
              ? `${last.phase}, ${x.version} at ${last.weights[x.version] ?? 0} %: ${last.reason}`
              : 'no deployment state recorded';
            return {
              name,
              kind: x.kind,
              passed: false,
              atMs: x.by,
              reason: done
                ? `${x.type} ${x.version} reached 100 % only at ${clockText(done.atMs)}, after ${clockText(x.by)}`
                : `${x.type} ${x.version} was not fully promoted by ${clockText(x.by)} (${state})`,
            };
          },
        };
      case 'rolledBack':
        return {
          name,
          sample() {},
          finish(e) {
            const mine = e.deployments.filter((d) => d.type === x.type);
            const peak = mine.reduce((a, d) => Math.max(a, d.weights[x.version] ?? 0), 0);
            const peakAt = mine.find((d) => (d.weights[x.version] ?? 0) === peak)?.atMs ?? 0;
            const back = mine.find(
              (d) =>
                (d.phase === 'ROLLED_BACK' || d.phase === 'ABORTED') && (d.weights[x.version] ?? 0) === 0,
            );
            if (!back)
              return {
                name,
                kind: x.kind,
                passed: false,
                reason: `${x.type} ${x.version} was never rolled back (peak share ${peak} % at ${clockText(peakAt)}; last state: ${mine.length ? `${mine[mine.length - 1].phase}: ${mine[mine.length - 1].reason}` : 'none'})`,
              };
            if (x.by !== undefined && back.atMs > x.by)
              return {
                name,
                kind: x.kind,
                passed: false,
                atMs: back.atMs,
                reason: `rolled back only at ${clockText(back.atMs)}, after ${clockText(x.by)}: ${back.reason}`,
              };
            if (peak > x.maxWeight)
              return {
                name,
                kind: x.kind,
                passed: false,
                atMs: peakAt,
                reason: `${x.version} reached ${peak} % at ${clockText(peakAt)} (more than ${x.maxWeight} %) before the rollback at ${clockText(back.atMs)}`,
              };
            return {
              name,
              kind: x.kind,
              passed: true,
              reason: `rolled back at ${clockText(back.atMs)} with at most ${peak} % of the traffic: ${back.reason}`,
            };
          },
        };
      case 'noUnhealthyRouting':
        return {
          name,
          sample() {},
          finish(e) {
            const grace = x.grace ?? e.heartbeatIntervalMs * (e.missedHeartbeats + 1);
            const bad = e.misroutes.filter(
              (m) => (!x.type || m.type === x.type) && (m.unroutable || m.lastAtMs - m.downSinceMs > grace),
            );
            const all = e.misroutes.filter((m) => !x.type || m.type === x.type);
            const lost = all.reduce((a, m) => a + m.requests, 0);
            if (bad.length) {
              const m = bad[0];
              return {
                name,
                kind: x.kind,
                passed: false,
                atMs: m.lastAtMs,
                reason: m.unroutable
                  ? `RouteRequest chose ${m.instanceId} at ${clockText(m.lastAtMs)} although the NLB held it as not routable`
                  : `${m.type} ${m.instanceId} still got traffic (${m.via}) at ${clockText(m.lastAtMs)}, ${clockText(m.lastAtMs - m.downSinceMs)} after it went down at ${clockText(m.downSinceMs)} (grace ${clockText(grace)})${bad.length > 1 ? `; ${bad.length - 1} more instance(s)` : ''}`,
              };
            }
            return {
              name,
              kind: x.kind,
              passed: true,
              reason: all.length
                ? `${all.length} instance(s) got traffic after going down, each for at most ${clockText(Math.max(...all.map((m) => m.lastAtMs - m.downSinceMs)))} (≤ ${clockText(grace)}); ${Math.round(lost)} request(s) lost`
                : 'no request went to an instance that was down',
            };
          },
        };
      case 'registryRecovers':
        return {
          name,
          sample() {},
          finish(e) {
            const within = x.within ?? e.heartbeatIntervalMs;
            if (e.restarts.length === 0)
              return { name, kind: x.kind, passed: false, reason: 'the NLB was never restarted in this run' };
            for (const r of e.restarts) {
              if (r.upAtMs === null)
                return {
                  name,
                  kind: x.kind,
                  passed: false,
                  atMs: r.downAtMs,
                  reason: `the NLB stopped at ${clockText(r.downAtMs)} did not come back`,
                };
              if (r.recoveredAtMs === null || r.recoveredAtMs - r.upAtMs > within)
                return {
                  name,
                  kind: x.kind,
                  passed: false,
                  atMs: r.upAtMs + within,
                  reason: `after the restart at ${clockText(r.upAtMs)} the registry ${r.recoveredAtMs === null ? 'never held' : `took ${clockText(r.recoveredAtMs - r.upAtMs)} to hold`} all ${r.expected} live instance(s) (limit ${clockText(within)})`,
                };
            }
            return {
              name,
              kind: x.kind,
              passed: true,
              reason: e.restarts
                .map(
                  (r) =>
                    `restart at ${clockText(r.upAtMs!)}: ${r.expected} instance(s) back in ${((r.recoveredAtMs! - r.upAtMs!) / 1000).toFixed(1)} s`,
                )
                .join('; '),
            };
          },
        };
    }
  });
}
