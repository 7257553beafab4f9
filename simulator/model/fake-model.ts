/**
 * The fake instance's load model. A profile (data, selected kwok-style by type and version)
 * says how an instance turns its share of the offered load into what it reports: CPU, memory,
 * open connections, request and error counters, and latency, degrading past its capacity.
 * `respond` is pure; `FakeInstance` integrates it over time into heartbeat counters.
 */
import type { StatsSnapshot } from '../../services/modules/runtime/stats.js';
import type { Rng } from '../../services/shared/rng.js';
import type { ModuleTypeName, profileFields } from '../scenario/schema.js';

type Fields = typeof profileFields;
export type Profile = { [K in keyof Fields]-?: NonNullable<ReturnType<Fields[K]['parse']>> };

export const DEFAULT_PROFILE: Profile = {
  capacityRps: 100,
  baseLatencyMs: 20,
  p99Factor: 3,
  errorRate: 0.001,
  cpuIdlePercent: 5,
  cpuAtCapacityPercent: 100,
  overloadLatencyFactor: 4,
  overloadErrorSlope: 1,
  memoryMb: 128,
  memoryPerConnectionMb: 0.05,
  memoryLimitMb: 0,
  connectionFactor: 1,
  noise: 0.03,
  statsWindow: 10_000,
  startDelay: 0,
  startJitter: 0,
};

export interface ProfileRule extends Partial<Profile> {
  match: { type?: ModuleTypeName; version?: string };
}

/** The profile for a type and version: defaults, then every matching rule in order (later wins). */
export function resolveProfile(
  rules: readonly ProfileRule[],
  type: ModuleTypeName,
  version: string,
): Profile {
  const out: Profile = { ...DEFAULT_PROFILE };
  for (const { match, ...fields } of rules) {
    if ((match.type && match.type !== type) || (match.version && match.version !== version)) continue;
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) (out as Record<string, number>)[k] = v;
  }
  return out;
}

/** Temporary changes from faults (error rate or latency of a version raised). */
export interface Modifiers {
  errorRateAdd: number;
  latencyAddMs: number;
  latencyFactor: number;
}
export const NO_MODIFIERS: Modifiers = { errorRateAdd: 0, latencyAddMs: 0, latencyFactor: 1 };

/** What an instance looks like while serving a steady `rps`. */
export interface Response {
  rps: number;
  /** rps / capacity. */
  utilization: number;
  /** Fraction of requests that fail (errors plus overload drops). */
  errorFraction: number;
  meanLatencyMs: number;
  p99LatencyMs: number;
  cpuPercent: number;
  connections: number;
  memoryMb: number;
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * The response curve: latency grows with utilization⁴ to `overloadLatencyFactor`× at capacity
 * and beyond; past capacity `overloadErrorSlope` of the excess fails; CPU is linear in
 * utilization (capped at 100 %); connections follow Little's law. `n()` draws a standard normal.
 */
export function respond(p: Profile, rps: number, m: Modifiers, n: () => number): Response {
  const u = rps / p.capacityRps;
  const drop = u > 1 ? clamp((p.overloadErrorSlope * (u - 1)) / u, 0, 1) : 0;
  const base = clamp(p.errorRate + m.errorRateAdd, 0, 1);
  const errorFraction = 1 - (1 - base) * (1 - drop);
  // Noise is drawn in a fixed order (latency, then CPU when serving): the seed fixes the trace.
  const latencyNoise = p.noise > 0 ? Math.max(0.2, 1 + p.noise * n()) : 1;
  const u2 = u * u;
  const mean =
    (p.baseLatencyMs * (1 + (p.overloadLatencyFactor - 1) * u2 * u2) * m.latencyFactor + m.latencyAddMs) *
    latencyNoise;
  const cpu =
    rps > 0
      ? clamp(
          (p.cpuIdlePercent + (p.cpuAtCapacityPercent - p.cpuIdlePercent) * u) *
            (p.noise > 0 ? Math.max(0.2, 1 + p.noise * n()) : 1),
          0,
          100,
        )
      : p.cpuIdlePercent;
  const connections = p.connectionFactor * rps * (mean / 1000);
  return {
    rps,
    utilization: u,
    errorFraction,
    meanLatencyMs: mean,
    p99LatencyMs: mean * p.p99Factor,
    cpuPercent: cpu,
    connections,
    memoryMb: p.memoryMb + p.memoryPerConnectionMb * connections,
  };
}

export type FakeState = 'up' | 'dead' | 'stopped';

/** One fake instance: its counters, its latest response and its lifecycle state. */
export class FakeInstance {
  state: FakeState = 'up';
  /** When it died or stopped (ms), for "routed to a dead instance" checks. */
  downSinceMs: number | null = null;
  private requests = 0;
  private failures = 0;
  private last: Response;
  /** Gauges averaged over about `statsWindow` (exponentially weighted). */
  private smooth: Response;
  private served = false;
  private readonly normal: () => number;

  constructor(
    readonly id: string,
    readonly type: ModuleTypeName,
    readonly version: string,
    readonly startedAtMs: number,
    private readonly profile: Profile,
    private readonly rng: Rng,
  ) {
    this.normal = () => rng.normal(0, 1);
    this.last = respond(profile, 0, NO_MODIFIERS, () => 0);
    this.smooth = { ...this.last };
  }

  get response(): Response {
    return this.last;
  }

  /** Serves `rps` for `dtMs`; returns the requests served and failed in that time. */
  serve(rps: number, dtMs: number, m: Modifiers): { requests: number; failures: number; response: Response } {
    const r = respond(this.profile, rps, m, this.normal);
    this.last = r;
    // The fleet present at the start has been serving for a while: no warm-up for its gauges.
    const a =
      this.profile.statsWindow > 0 && this.served ? 1 - Math.exp(-dtMs / this.profile.statsWindow) : 1;
    this.served = true;
    const g = this.smooth;
    g.cpuPercent += a * (r.cpuPercent - g.cpuPercent);
    g.meanLatencyMs += a * (r.meanLatencyMs - g.meanLatencyMs);
    g.p99LatencyMs += a * (r.p99LatencyMs - g.p99LatencyMs);
    g.connections += a * (r.connections - g.connections);
    g.memoryMb += a * (r.memoryMb - g.memoryMb);
    const requests = (rps * dtMs) / 1000;
    const failures = requests * this.last.errorFraction;
    this.requests += requests;
    this.failures += failures;
    return { requests, failures, response: this.last };
  }

  markDown(state: 'dead' | 'stopped', nowMs: number): void {
    this.state = state;
    this.downSinceMs ??= nowMs;
  }

  /** The stats its heartbeats carry (replaces what the runtime measured). */
  stats(measured: StatsSnapshot): StatsSnapshot {
    const r = this.smooth;
    const total = Math.floor(this.requests);
    const failed = Math.min(total, Math.floor(this.failures));
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      ...measured,
      totalRequests: total,
      successfulRequests: total - failed,
      failedRequests: failed,
      activeConnections: Math.round(r.connections),
      totalConnections: total,
      avgLatencyMs: round(r.meanLatencyMs),
      p50LatencyMs: round(r.meanLatencyMs * 0.8),
      p95LatencyMs: round(r.meanLatencyMs * Math.max(1, this.profile.p99Factor * 0.7)),
      p99LatencyMs: round(r.p99LatencyMs),
      bytesReceived: total * 1024,
      bytesSent: total * 8192,
      cpuUsagePercent: round(r.cpuPercent),
      memoryUsageMb: round(r.memoryMb),
      custom: {
        ...measured.custom,
        ...(this.profile.memoryLimitMb > 0 ? { memory_limit_mb: String(this.profile.memoryLimitMb) } : {}),
      },
    };
  }
}
