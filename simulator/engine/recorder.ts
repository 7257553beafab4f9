/**
 * What a run leaves behind: the timeline of events (scaling decisions with their reasons,
 * rollout steps, faults, actions, instances going unhealthy) and, every sample interval, the
 * series the report charts and the expectations check, per module type and per version.
 */
import type { Deployment } from '../../services/nlb/domain/deployments.js';

export type EventKind = 'scaling' | 'rollout' | 'fault' | 'action' | 'instance' | 'nlb' | 'expectation';

export interface TimelineEvent {
  /** Milliseconds since the start of the run. */
  atMs: number;
  kind: EventKind;
  type?: string;
  version?: string;
  message: string;
  /** Structured details (scaling: action, from, to, ok; rollout: phase, weights). */
  data?: Record<string, unknown>;
}

/** One version's numbers at a sample. */
export interface VersionSample {
  servedRps: number;
  lostRps: number;
  errorRate: number;
  p99LatencyMs: number;
  cpuPercent: number;
  instances: number;
  healthyInstances: number;
  desiredInstances: number;
  weight: number;
}

/** One module type's numbers at a sample. */
export interface TypeSample {
  offeredRps: number;
  servedRps: number;
  lostRps: number;
  errorRate: number;
  p99LatencyMs: number;
  cpuPercent: number;
  instances: number;
  healthyInstances: number;
  desiredInstances: number;
}

export interface Sample {
  tMs: number;
  types: Record<string, TypeSample>;
  /** Keyed "TYPE@version". */
  versions: Record<string, VersionSample>;
}

/** Counts and sums over the current sample window. */
interface Window {
  requests: number;
  failures: number;
  lost: number;
  latencyWeight: number;
  cpuSum: number;
  cpuCount: number;
}
const emptyWindow = (): Window => ({
  requests: 0,
  failures: 0,
  lost: 0,
  latencyWeight: 0,
  cpuSum: 0,
  cpuCount: 0,
});

/** Requests the NLB sent to an instance that was already down (dead, stopped or partitioned). */
export interface Misroute {
  type: string;
  version: string;
  instanceId: string;
  downSinceMs: number;
  firstAtMs: number;
  lastAtMs: number;
  requests: number;
  /** Where it was seen: the load split over the NLB's registry, or a RouteRequest probe. */
  via: 'traffic' | 'probe';
  /** The NLB routed to an instance its own registry holds as not routable. */
  unroutable?: boolean;
}

/** Deployment states observed, for rollout expectations. */
export interface DeploymentObservation {
  atMs: number;
  type: string;
  phase: string;
  stableVersion: string;
  targetVersion: string;
  weights: Record<string, number>;
  reason: string;
}

export class Recorder {
  readonly timeline: TimelineEvent[] = [];
  readonly samples: Sample[] = [];
  readonly misroutes = new Map<string, Misroute>();
  readonly deployments: DeploymentObservation[] = [];
  /** The latest autoscaler reason per "TYPE@version", "no change" included. */
  readonly lastScalingReason = new Map<string, string>();
  /** Offered, lost (no instance, NLB down) per type; served per version. */
  private offered = new Map<string, number>();
  private typeLost = new Map<string, number>();
  private versions = new Map<string, Window>();
  private windowStartMs = 0;
  /** Totals over the whole run, per type. */
  readonly totals = new Map<string, { offered: number; served: number; failed: number; lost: number }>();

  constructor(
    private t0: number,
    /** Called with every event as it is recorded (progress output). */
    private readonly onEvent?: (e: TimelineEvent) => void,
  ) {}

  /** Moves the start (realtime runs start the clock once the system is up). */
  restart(t0: number): void {
    this.t0 = t0;
  }

  /** Milliseconds since the start for a clock time. */
  rel(nowMs: number): number {
    return Math.max(0, nowMs - this.t0);
  }

  event(nowMs: number, e: Omit<TimelineEvent, 'atMs'>): TimelineEvent {
    const ev = { atMs: this.rel(nowMs), ...e };
    this.timeline.push(ev);
    this.onEvent?.(ev);
    return ev;
  }

  observeDeployment(nowMs: number, d: Deployment): void {
    const last = [...this.deployments].reverse().find((o) => o.type === d.moduleType);
    const obs: DeploymentObservation = {
      atMs: this.rel(nowMs),
      type: d.moduleType,
      phase: d.phase,
      stableVersion: d.stableVersion,
      targetVersion: d.targetVersion,
      weights: { ...d.weights },
      reason: d.reason,
    };
    if (
      last &&
      last.phase === obs.phase &&
      last.reason === obs.reason &&
      JSON.stringify(last.weights) === JSON.stringify(obs.weights)
    )
      return;
    this.deployments.push(obs);
  }

  private total(type: string) {
    let t = this.totals.get(type);
    if (!t) this.totals.set(type, (t = { offered: 0, served: 0, failed: 0, lost: 0 }));
    return t;
  }

  private window(key: string): Window {
    let w = this.versions.get(key);
    if (!w) this.versions.set(key, (w = emptyWindow()));
    return w;
  }

  offer(type: string, requests: number): void {
    this.offered.set(type, (this.offered.get(type) ?? 0) + requests);
    this.total(type).offered += requests;
  }

  /** Requests that found no instance (or no NLB). */
  lostForType(type: string, requests: number): void {
    this.typeLost.set(type, (this.typeLost.get(type) ?? 0) + requests);
    this.total(type).lost += requests;
  }

  /** Requests routed to a version's instance that was down. */
  lostForVersion(type: string, version: string, requests: number): void {
    this.window(`${type}@${version}`).lost += requests;
    this.total(type).lost += requests;
  }

  served(
    type: string,
    version: string,
    requests: number,
    failures: number,
    p99Ms: number,
    cpu: number,
  ): void {
    const w = this.window(`${type}@${version}`);
    w.requests += requests;
    w.failures += failures;
    w.latencyWeight += p99Ms * requests;
    w.cpuSum += cpu;
    w.cpuCount++;
    const t = this.total(type);
    t.served += requests;
    t.failed += failures;
  }

  misroute(m: Omit<Misroute, 'firstAtMs' | 'lastAtMs' | 'requests'>, nowMs: number, requests: number): void {
    const key = `${m.via}/${m.instanceId}`;
    const at = this.rel(nowMs);
    const prev = this.misroutes.get(key);
    if (prev) {
      prev.lastAtMs = at;
      prev.requests += requests;
    } else
      this.misroutes.set(key, {
        ...m,
        downSinceMs: this.rel(m.downSinceMs),
        firstAtMs: at,
        lastAtMs: at,
        requests,
      });
  }

  /**
   * Closes the sample window at `nowMs`; `state` gives registry counts, controller desired
   * counts and weights per "TYPE@version" and the types to report.
   */
  sample(
    nowMs: number,
    types: readonly string[],
    state: Map<string, { instances: number; healthy: number; desired: number; weight: number }>,
  ): Sample {
    const seconds = Math.max(0.001, (nowMs - (this.windowStartMs || nowMs)) / 1000);
    const s: Sample = { tMs: this.rel(nowMs), types: {}, versions: {} };
    const keys = new Set([...state.keys(), ...this.versions.keys()]);
    for (const key of [...keys].sort()) {
      const w = this.versions.get(key) ?? emptyWindow();
      const st = state.get(key) ?? { instances: 0, healthy: 0, desired: 0, weight: 0 };
      const routed = w.requests + w.lost;
      s.versions[key] = {
        servedRps: w.requests / seconds,
        lostRps: w.lost / seconds,
        errorRate: routed > 0 ? (w.failures + w.lost) / routed : 0,
        p99LatencyMs: w.requests > 0 ? w.latencyWeight / w.requests : 0,
        cpuPercent: w.cpuCount > 0 ? w.cpuSum / w.cpuCount : 0,
        instances: st.instances,
        healthyInstances: st.healthy,
        desiredInstances: st.desired,
        weight: st.weight,
      };
    }
    for (const type of types) {
      const mine = [...keys].filter((k) => k.startsWith(`${type}@`));
      const ws = mine.map((k) => this.versions.get(k) ?? emptyWindow());
      const sum = (f: (w: Window) => number) => ws.reduce((a, w) => a + f(w), 0);
      const offered = this.offered.get(type) ?? 0;
      const lost = sum((w) => w.lost) + (this.typeLost.get(type) ?? 0);
      const served = sum((w) => w.requests);
      const vs = mine.map((k) => s.versions[k]);
      const cpuCount = sum((w) => w.cpuCount);
      s.types[type] = {
        offeredRps: offered / seconds,
        servedRps: served / seconds,
        lostRps: lost / seconds,
        errorRate: offered > 0 ? Math.min(1, (sum((w) => w.failures) + lost) / offered) : 0,
        p99LatencyMs: served > 0 ? sum((w) => w.latencyWeight) / served : 0,
        cpuPercent: cpuCount > 0 ? sum((w) => w.cpuSum) / cpuCount : 0,
        instances: vs.reduce((a, v) => a + v.instances, 0),
        healthyInstances: vs.reduce((a, v) => a + v.healthyInstances, 0),
        desiredInstances: vs.reduce((a, v) => a + v.desiredInstances, 0),
      };
    }
    this.samples.push(s);
    this.offered = new Map();
    this.typeLost = new Map();
    this.versions = new Map();
    this.windowStartMs = nowMs;
    return s;
  }

  /** Starts the first sample window. */
  begin(nowMs: number): void {
    this.windowStartMs = nowMs;
  }
}
