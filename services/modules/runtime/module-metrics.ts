/**
 * The controller's view of its instances' numbers: a periodic sample of every instance's stats
 * into a bounded time-series store (for GetMetrics / StreamMetrics), and the aggregate.
 */
import type { Clock, TimerHandle } from '../../shared/clock.js';
import { MetricsStore } from '../../nlb/domain/metrics-store.js';
import type { ModuleController } from './controller.js';
import type { StatsSnapshot } from './stats.js';

export const STAT_SERIES: ReadonlyArray<[string, (s: StatsSnapshot) => number]> = [
  ['requests_total', (s) => s.totalRequests],
  ['requests_failed_total', (s) => s.failedRequests],
  ['connections_active', (s) => s.activeConnections],
  ['connections_total', (s) => s.totalConnections],
  ['latency_p50_ms', (s) => s.p50LatencyMs],
  ['latency_p99_ms', (s) => s.p99LatencyMs],
  ['bytes_received_total', (s) => s.bytesReceived],
  ['bytes_sent_total', (s) => s.bytesSent],
  ['cpu_percent', (s) => s.cpuUsagePercent],
  ['memory_mb', (s) => s.memoryUsageMb],
];

/** Sums counters and averages gauges over instances. */
export function aggregateStats(all: StatsSnapshot[], sinceMs: number): StatsSnapshot {
  const sum = (f: (s: StatsSnapshot) => number) => all.reduce((a, s) => a + f(s), 0);
  const total = sum((s) => s.totalRequests);
  const weighted = (f: (s: StatsSnapshot) => number) =>
    total > 0 ? sum((s) => f(s) * s.totalRequests) / total : 0;
  const custom: Record<string, string> = {};
  for (const s of all)
    for (const [k, v] of Object.entries(s.custom))
      custom[k] = String((Number(custom[k] ?? 0) || 0) + (Number(v) || 0));
  return {
    totalRequests: total,
    successfulRequests: sum((s) => s.successfulRequests),
    failedRequests: sum((s) => s.failedRequests),
    activeConnections: sum((s) => s.activeConnections),
    totalConnections: sum((s) => s.totalConnections),
    avgLatencyMs: weighted((s) => s.avgLatencyMs),
    p50LatencyMs: weighted((s) => s.p50LatencyMs),
    p95LatencyMs: Math.max(0, ...all.map((s) => s.p95LatencyMs)),
    p99LatencyMs: Math.max(0, ...all.map((s) => s.p99LatencyMs)),
    bytesReceived: sum((s) => s.bytesReceived),
    bytesSent: sum((s) => s.bytesSent),
    cpuUsagePercent: sum((s) => s.cpuUsagePercent),
    memoryUsageMb: sum((s) => s.memoryUsageMb),
    sinceMs: all.length ? Math.min(...all.map((s) => s.sinceMs)) : sinceMs,
    custom,
  };
}

export class ModuleMetricsSampler {
  readonly store = new MetricsStore({
    resolutionMs: 5000,
    recentPoints: 720,
    coarseMs: 60_000,
    coarsePoints: 1440,
    maxSeries: 20_000,
  });
  private timer: TimerHandle | null = null;
  /** Instances with series in the store. */
  private readonly recorded = new Set<string>();

  constructor(
    private readonly controller: ModuleController,
    private readonly clock: Clock,
  ) {}

  start(periodMs = 5000): void {
    this.timer?.cancel();
    this.timer = this.clock.setInterval(() => void this.sample(), periodMs);
  }

  stop(): void {
    this.timer?.cancel();
  }

  /** Reads every instance's stats (failures skipped) and records them. */
  async collect(): Promise<Map<string, StatsSnapshot>> {
    const out = new Map<string, StatsSnapshot>();
    await Promise.all(
      [...this.controller.instances.values()].map(async (m) => {
        try {
          out.set(m.handle.id, await m.handle.stats(false));
        } catch {
          // An instance that cannot answer is reported by health checks, not here.
        }
      }),
    );
    return out;
  }

  /**
   * Drops the series of instances the controller no longer manages, as the NLB does on
   * unregistration: each series preallocates its rings (~40 KB), so keeping them made every
   * instance start (scaling, replacements) cost ~400 KB for good, up to maxSeries.
   */
  private dropRetired(): void {
    for (const id of this.recorded) {
      if (this.controller.instances.has(id)) continue;
      this.store.drop({ instance: id });
      this.recorded.delete(id);
    }
  }

  async sample(): Promise<void> {
    const now = this.clock.now();
    const all = await this.collect();
    for (const [id, s] of all) {
      this.recorded.add(id);
      for (const [name, f] of STAT_SERIES) this.store.record(name, { instance: id }, f(s), now);
    }
    this.dropRetired();
    const agg = aggregateStats([...all.values()], now);
    for (const [name, f] of STAT_SERIES) this.store.record(name, { scope: 'module' }, f(agg), now);
    this.store.record('instances', { scope: 'module' }, all.size, now);
    for (const [limit, n] of this.controller.limitHits)
      this.store.record('limit_hits_total', { scope: 'module', limit }, n, now);
  }
}
