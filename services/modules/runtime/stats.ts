/**
 * An instance's counters, in the shape heartbeats carry (ModuleStats): requests, failures,
 * connections, bytes, latency percentiles from a histogram, and process CPU and memory.
 */
import { Histogram } from './histogram.js';

export interface StatsSnapshot {
  totalRequests: number;
  successfulRequests: number;
  failedRequests: number;
  activeConnections: number;
  totalConnections: number;
  avgLatencyMs: number;
  p50LatencyMs: number;
  p95LatencyMs: number;
  p99LatencyMs: number;
  bytesReceived: number;
  bytesSent: number;
  cpuUsagePercent: number;
  memoryUsageMb: number;
  sinceMs: number;
  custom: Record<string, string>;
}

/** Reads this process's CPU % since the previous call, and RSS. */
export function createProcessSampler(): () => { cpuPercent: number; rssMb: number } {
  let last = process.cpuUsage();
  let lastAt = performance.now();
  return () => {
    const now = performance.now();
    const usage = process.cpuUsage(last);
    const wallUs = Math.max(1, (now - lastAt) * 1000);
    last = process.cpuUsage();
    lastAt = now;
    return {
      cpuPercent: ((usage.user + usage.system) / wallUs) * 100,
      rssMb: process.memoryUsage.rss() / (1024 * 1024),
    };
  };
}

export class StatsCollector {
  totalRequests = 0;
  successfulRequests = 0;
  failedRequests = 0;
  activeConnections = 0;
  totalConnections = 0;
  bytesReceived = 0;
  bytesSent = 0;
  readonly custom = new Map<string, number>();
  private readonly latency = new Histogram();

  constructor(private sinceMs: number) {}

  connectionOpened(): void {
    this.activeConnections++;
    this.totalConnections++;
  }

  connectionClosed(bytesIn: number, bytesOut: number): void {
    this.activeConnections = Math.max(0, this.activeConnections - 1);
    this.bytesReceived += bytesIn;
    this.bytesSent += bytesOut;
  }

  /** Records one request and its outcome. */
  request(ok: boolean, latencyMs: number): void {
    this.totalRequests++;
    if (ok) this.successfulRequests++;
    else this.failedRequests++;
    this.latency.record(latencyMs);
  }

  /** Sees every count (the instance runtime logs the ones that are limit hits). */
  onCount: ((name: string) => void) | null = null;

  /** Adds to a module-specific counter (e.g. rate_limited). */
  count(name: string, by = 1): void {
    this.custom.set(name, (this.custom.get(name) ?? 0) + by);
    this.onCount?.(name);
  }

  snapshot(proc: { cpuPercent: number; rssMb: number }): StatsSnapshot {
    return {
      totalRequests: this.totalRequests,
      successfulRequests: this.successfulRequests,
      failedRequests: this.failedRequests,
      activeConnections: this.activeConnections,
      totalConnections: this.totalConnections,
      avgLatencyMs: round(this.latency.mean),
      p50LatencyMs: round(this.latency.quantile(0.5)),
      p95LatencyMs: round(this.latency.quantile(0.95)),
      p99LatencyMs: round(this.latency.quantile(0.99)),
      bytesReceived: this.bytesReceived,
      bytesSent: this.bytesSent,
      cpuUsagePercent: round(proc.cpuPercent),
      memoryUsageMb: round(proc.rssMb),
      sinceMs: this.sinceMs,
      custom: Object.fromEntries([...this.custom].map(([k, v]) => [k, String(v)])),
    };
  }

  /** Zeroes counters (GetStats reset_counters); open connections stay counted. */
  reset(nowMs: number): void {
    this.totalRequests = this.successfulRequests = this.failedRequests = 0;
    this.totalConnections = this.activeConnections;
    this.bytesReceived = this.bytesSent = 0;
    this.custom.clear();
    this.latency.reset();
    this.sinceMs = nowMs;
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
