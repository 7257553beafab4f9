/**
 * The autoscaler around decideScaling: every evaluation interval (on the injected clock) it
 * groups registered instances by controller (module type + version + controller address),
 * decides on what each controller has (decideForFleet: dead registrations awaiting eviction do
 * not count), calls the controller's Scale, and records every decision — "no change" included —
 * in a bounded history exposed through status, metrics and events.
 */
import type { TimerHandle } from '../shared/clock.js';
import {
  decideForFleet,
  DEFAULT_TUNING,
  emptyHistory,
  type InstanceSample,
  type ScalingDecision,
  type ScalingHistory,
  type ScalingPolicy,
} from './domain/autoscaler.js';
import type { InstanceRecord, ModuleTypeName } from './domain/types.js';
import type { Nlb } from './nlb.js';

export interface ScalingEvent extends ScalingDecision {
  atMs: number;
  moduleType: ModuleTypeName;
  version: string;
  controller: string;
  /** Whether the Scale call succeeded (true for "none"). */
  ok: boolean;
  error?: string;
}

const MAX_EVENTS = 500;

export class Autoscaler {
  private timer: TimerHandle | null = null;
  private periodMs = 0;
  private readonly histories = new Map<string, ScalingHistory>();
  /** The instance count each controller accepted in the last Scale this autoscaler made. */
  private readonly accepted = new Map<string, number>();
  readonly events: ScalingEvent[] = [];
  private running: Promise<ScalingEvent[]> | null = null;

  constructor(private readonly nlb: Nlb) {}

  start(): void {
    this.reschedule();
  }

  /** Re-arms the timer when the configured interval changed. */
  reschedule(): void {
    const ms = this.nlb.config.scaling.evaluationIntervalSeconds * 1000;
    if (this.timer && ms === this.periodMs) return;
    this.timer?.cancel();
    this.periodMs = ms;
    this.timer = this.nlb.deps.clock.setInterval(() => void this.evaluate(null), ms);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** The policy for a controller: "TYPE@version" override, then "TYPE", then the defaults. */
  policy(t: ModuleTypeName, version: string): ScalingPolicy {
    const s = this.nlb.config.scaling;
    return s.overrides[`${t}@${version}`] ?? s.overrides[t] ?? s.defaults;
  }

  /** Versions the rollout retired (0 % and not part of a rollout) are left at zero. */
  private retired(t: ModuleTypeName, version: string): boolean {
    const d = this.nlb.deployments.get(t);
    if (!d) return false;
    return (d.weights[version] ?? 0) === 0 && version !== d.stableVersion && version !== d.targetVersion;
  }

  private sample(r: InstanceRecord, leaseMs: number, now: number): InstanceSample {
    const limit = Number(r.stats?.custom.memory_limit_mb ?? r.metadata.memory_limit_mb ?? 0);
    // Judged by time, as the registry's sweep will: its health flag may not have caught up yet.
    const lapsesAtMs = r.lastHeartbeatAtMs + leaseMs;
    return {
      instanceId: r.instanceId,
      health: r.health,
      hasSample: r.stats !== null,
      cpuPercent: r.stats?.cpuUsagePercent ?? 0,
      memoryPercent: limit > 0 && r.stats ? (r.stats.memoryUsageMb / limit) * 100 : null,
      connections: Math.max(r.connections, r.stats?.activeConnections ?? 0),
      registeredAtMs: r.registeredAtMs,
      lastHeartbeatAtMs: r.lastHeartbeatAtMs,
      lostAtMs: now >= lapsesAtMs ? lapsesAtMs : null,
    };
  }

  /** Evaluates every controller (or those of one type) now; one evaluation at a time. */
  evaluate(type: ModuleTypeName | null): Promise<ScalingEvent[]> {
    const run = (this.running ?? Promise.resolve([])).then(() => this.evaluateOnce(type));
    this.running = run.catch(() => []);
    return run;
  }

  private async evaluateOnce(type: ModuleTypeName | null): Promise<ScalingEvent[]> {
    const now = this.nlb.deps.clock.now();
    const groups = new Map<string, InstanceRecord[]>();
    for (const r of this.nlb.registry.all()) {
      if (type && r.moduleType !== type) continue;
      const key = `${r.moduleType}@${r.version}@${r.address}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const tuning = {
      ...DEFAULT_TUNING,
      tolerance: this.nlb.config.scaling.tolerance,
      stabilizationWindowMs: this.nlb.config.scaling.stabilizationWindowSeconds * 1000,
    };
    const timings = this.nlb.registry.getTimings();
    const leaseMs = timings.missedHeartbeats * timings.heartbeatIntervalMs;
    const out: ScalingEvent[] = [];
    // Forget controllers with nothing registered any more (a restarted controller has a new address).
    if (!type)
      for (const key of [...this.histories.keys()])
        if (!groups.has(key)) {
          this.histories.delete(key);
          this.accepted.delete(key);
        }
    for (const [key, rs] of groups) {
      const { moduleType, version, address } = rs[0];
      if (this.retired(moduleType, version)) continue;
      const { decision, history } = decideForFleet(
        this.policy(moduleType, version),
        tuning,
        rs.filter((r) => !r.draining).map((r) => this.sample(r, leaseMs, now)),
        this.histories.get(key) ?? emptyHistory(),
        now,
        this.accepted.get(key) ?? null,
      );
      let ok = true;
      let error: string | undefined;
      if (decision.action !== 'none') {
        try {
          const res = await this.nlb.deps.modules.scale(
            address,
            { instanceId: '', desiredInstances: decision.desired, immediate: false },
            10_000,
          );
          ok = res.success;
          if (ok) this.accepted.set(key, res.desiredInstances || decision.desired);
          else error = res.message;
        } catch (e) {
          ok = false;
          error = (e as Error).message;
        }
      }
      // A failed Scale is not a change: keep the old history so the next round tries again.
      this.histories.set(
        key,
        ok ? history : { ...history, lastScaleAtMs: this.histories.get(key)?.lastScaleAtMs ?? null },
      );
      const ev: ScalingEvent = {
        ...decision,
        atMs: now,
        moduleType,
        version,
        controller: address,
        ok,
        ...(error ? { error } : {}),
      };
      out.push(ev);
      this.record(ev);
    }
    return out;
  }

  private record(ev: ScalingEvent): void {
    this.events.push(ev);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    const labels = { module_type: ev.moduleType, version: ev.version };
    this.nlb.metrics.record('scaling_desired_instances', labels, ev.desired, ev.atMs);
    this.nlb.metrics.record('scaling_usage_ratio', labels, ev.ratio, ev.atMs);
    if (ev.action !== 'none')
      this.nlb.deps.logger.info(
        `autoscaler: ${ev.moduleType} ${ev.version} ${ev.reason}${ev.ok ? '' : ` (Scale failed: ${ev.error})`}`,
      );
    this.nlb.emit({
      type: 'scaling',
      moduleType: ev.moduleType,
      version: ev.version,
      action: ev.action,
      from: ev.current,
      to: ev.desired,
      reason: ev.reason,
      ok: ev.ok,
    });
  }
}
