/**
 * The rollout controller around decideRollout: for each progressing deployment it measures the
 * new and the stable version over the current step (from heartbeat counters in the metrics
 * store), decides, and applies the intent — advance, roll back, abort — durably. After a full
 * promotion the old versions' controllers are drained and scaled to zero.
 */
import type { TimerHandle } from '../shared/clock.js';
import type { Deployment } from './domain/deployments.js';
import { analyse, decideRollout, type RolloutPolicy, type VersionWindow } from './domain/rollout.js';
import type { ModuleTypeName } from './domain/types.js';
import type { Nlb } from './nlb.js';

export interface RolloutEvent {
  atMs: number;
  moduleType: ModuleTypeName;
  version: string;
  action: 'advance' | 'rollback' | 'abort' | 'promoted' | 'retire';
  weight: number;
  reason: string;
}

const MAX_EVENTS = 500;

export class RolloutController {
  private timer: TimerHandle | null = null;
  readonly events: RolloutEvent[] = [];
  private busy = false;
  /** Per-instance counters when a step was first measured, keyed type@version@stepStartedAtMs. */
  private readonly baselines = new Map<string, Map<string, { total: number; failed: number }>>();

  constructor(private readonly nlb: Nlb) {}

  policy(): RolloutPolicy {
    const r = this.nlb.config.rollout;
    return {
      stepIntervalMs: r.stepIntervalSeconds * 1000,
      minSuccessRate: r.minSuccessRate,
      maxP99LatencyMs: r.maxP99LatencyMs,
      maxP99Ratio: r.maxP99Ratio,
      minRequests: r.minRequests,
      progressDeadlineMs: r.progressDeadlineSeconds * 1000,
    };
  }

  /** Checks rollouts every few seconds (a quarter of the step interval, 1-5 s). */
  start(): void {
    const every = Math.min(5000, Math.max(1000, this.nlb.config.rollout.stepIntervalSeconds * 250));
    this.timer?.cancel();
    this.timer = this.nlb.deps.clock.setInterval(() => void this.tick(), every);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /**
   * Requests, failures and p99 of one version since `fromMs`. Counters are measured from each
   * instance's latest heartbeat against a baseline taken when this step was first measured (the
   * metrics store keeps 10 s buckets, too coarse for short steps); p99 from the store's series
   * over the window, or the latest report when the window has no sample yet.
   */
  window(t: ModuleTypeName, version: string, fromMs: number): VersionWindow {
    const now = this.nlb.deps.clock.now();
    const rs = this.nlb.registry.all().filter((r) => r.moduleType === t && r.version === version);
    const key = `${t}@${version}@${fromMs}`;
    let base = this.baselines.get(key);
    if (!base) {
      base = new Map(
        rs.map((r) => [
          r.instanceId,
          { total: r.stats?.totalRequests ?? 0, failed: r.stats?.failedRequests ?? 0 },
        ]),
      );
      this.baselines.set(key, base);
    }
    let requests = 0;
    let failures = 0;
    for (const r of rs) {
      if (!r.stats) continue;
      const b = base.get(r.instanceId) ?? { total: 0, failed: 0 };
      // A counter below its baseline was reset: count it from zero.
      requests += r.stats.totalRequests >= b.total ? r.stats.totalRequests - b.total : r.stats.totalRequests;
      failures +=
        r.stats.failedRequests >= b.failed ? r.stats.failedRequests - b.failed : r.stats.failedRequests;
    }
    const p99s = rs.flatMap((r) => {
      const mean = this.nlb.instanceSeries.get(r.instanceId)?.mean('latency_p99_ms', fromMs, now);
      if (mean !== undefined) return [mean];
      return r.stats ? [r.stats.p99LatencyMs] : [];
    });
    return { requests, failures, p99LatencyMs: p99s.length ? Math.max(...p99s) : 0 };
  }

  /** One pass over every progressing deployment. */
  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const d of this.nlb.deployments.all()) {
        if (d.phase === 'PROGRESSING') await this.step(d);
      }
      // Forget the baselines of steps that are over.
      const current = new Set(
        this.nlb.deployments
          .all()
          .filter((d) => d.phase === 'PROGRESSING')
          .flatMap((d) =>
            [d.targetVersion, d.stableVersion].map((v) => `${d.moduleType}@${v}@${d.stepStartedAtMs}`),
          ),
      );
      for (const k of this.baselines.keys()) if (!current.has(k)) this.baselines.delete(k);
    } finally {
      this.busy = false;
    }
  }

  private async step(d: Deployment): Promise<void> {
    const now = this.nlb.deps.clock.now();
    const p = this.policy();
    const canary = this.window(d.moduleType, d.targetVersion, d.stepStartedAtMs);
    const stable = d.stableVersion ? this.window(d.moduleType, d.stableVersion, d.stepStartedAtMs) : null;
    const intent = decideRollout(d, p, analyse(p, canary, stable), now);
    const target = d.targetVersion;
    switch (intent.type) {
      case 'none':
      case 'hold':
        return;
      case 'advance': {
        const next = this.nlb.mutateDurable(() =>
          this.nlb.deployments.advance(d.moduleType, now, intent.reason),
        );
        this.record({
          atMs: now,
          moduleType: d.moduleType,
          version: target,
          action: next.phase === 'PROMOTED' ? 'promoted' : 'advance',
          weight: intent.toWeight,
          reason: intent.reason,
        });
        if (next.phase === 'PROMOTED') await this.retireOldVersions(next);
        else {
          // The next step is measured from now.
          this.window(d.moduleType, next.targetVersion, next.stepStartedAtMs);
          if (next.stableVersion) this.window(d.moduleType, next.stableVersion, next.stepStartedAtMs);
        }
        return;
      }
      case 'rollback':
      case 'abort': {
        const known = this.nlb.registeredVersions(d.moduleType);
        this.nlb.mutateDurable(() =>
          this.nlb.deployments.rollback(
            d.moduleType,
            '',
            known,
            now,
            intent.reason,
            intent.type === 'abort' ? 'ABORTED' : 'ROLLED_BACK',
          ),
        );
        this.record({
          atMs: now,
          moduleType: d.moduleType,
          version: target,
          action: intent.type,
          weight: 0,
          reason: intent.reason,
        });
        return;
      }
    }
  }

  /**
   * Drains and scales to zero every controller of versions that now have no traffic (unless
   * rollout.scaleDownOldVersion is off).
   */
  async retireOldVersions(d: Deployment): Promise<void> {
    if (!this.nlb.config.rollout.scaleDownOldVersion) return;
    const now = this.nlb.deps.clock.now();
    const controllers = new Map<string, string>();
    for (const r of this.nlb.registry.all()) {
      if (r.moduleType === d.moduleType && r.version !== d.stableVersion && (d.weights[r.version] ?? 0) === 0)
        controllers.set(r.address, r.version);
    }
    for (const [address, version] of controllers) {
      try {
        const res = await this.nlb.deps.modules.scale(
          address,
          {
            instanceId: '',
            desiredInstances: 0,
            config: {
              minInstances: 0,
              maxInstances: 0,
              targetCpuPercent: 0,
              targetMemoryPercent: 0,
              targetConnections: 0,
              cooldownSeconds: 0,
              autoScalingEnabled: false,
            },
            immediate: false,
          },
          10_000,
        );
        this.record({
          atMs: now,
          moduleType: d.moduleType,
          version,
          action: 'retire',
          weight: 0,
          reason: res.success
            ? `controller ${address} draining to zero after ${d.stableVersion} reached 100 %`
            : `could not scale ${address} to zero: ${res.message}`,
        });
      } catch (e) {
        this.record({
          atMs: now,
          moduleType: d.moduleType,
          version,
          action: 'retire',
          weight: 0,
          reason: `could not reach ${address} to scale it to zero: ${(e as Error).message}`,
        });
      }
    }
  }

  record(ev: RolloutEvent): void {
    this.events.push(ev);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.nlb.deps.logger.info(`rollout: ${ev.moduleType} ${ev.version} ${ev.action}: ${ev.reason}`);
    const d = this.nlb.deployments.get(ev.moduleType);
    if (d) this.nlb.emit({ type: 'deployment', deployment: d, action: ev.action });
  }
}
