import { describe, expect, it } from 'vitest';
import { createRng } from '../../services/shared/rng.js';
import { Histogram } from '../../services/modules/runtime/histogram.js';
import { aggregateStats } from '../../services/modules/runtime/module-metrics.js';
import { StatsCollector, type StatsSnapshot } from '../../services/modules/runtime/stats.js';

/** The exact q-quantile of samples, with the same rank rule as the histogram (nearest rank). */
function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

function expectWithin(actual: number, expected: number, relative: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(expected * relative);
}

const QUANTILES = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999];

describe('Histogram', () => {
  it('is empty at first: count 0, mean 0, every quantile 0', () => {
    const h = new Histogram();
    expect(h.count).toBe(0);
    expect(h.mean).toBe(0);
    expect(h.quantile(0.5)).toBe(0);
    expect(h.quantile(0.99)).toBe(0);
  });

  it('gives quantiles within 5 % of the exact ones for uniform latencies', () => {
    const rng = createRng('histogram-uniform');
    const h = new Histogram();
    const samples: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const v = rng.float(1, 500);
      samples.push(v);
      h.record(v);
    }
    samples.sort((a, b) => a - b);
    expect(h.count).toBe(20_000);
    for (const q of QUANTILES) expectWithin(h.quantile(q), exactQuantile(samples, q), 0.05);
    // Uniform on [1, 500): the median is near 250.5.
    expect(h.quantile(0.5)).toBeGreaterThan(240);
    expect(h.quantile(0.5)).toBeLessThan(262);
  });

  it('gives quantiles within 5 % of the exact ones for exponential latencies', () => {
    const rng = createRng('histogram-exponential');
    const h = new Histogram();
    const samples: number[] = [];
    const meanMs = 40;
    for (let i = 0; i < 20_000; i++) {
      const v = -meanMs * Math.log(1 - rng.next());
      samples.push(v);
      h.record(v);
    }
    samples.sort((a, b) => a - b);
    for (const q of QUANTILES) expectWithin(h.quantile(q), exactQuantile(samples, q), 0.05);
    // Theoretical p99 of Exp(mean 40) is 40·ln(100) ≈ 184.2.
    expectWithin(h.quantile(0.99), 40 * Math.log(100), 0.1);
  });

  it('keeps the exact mean and never reports above the largest value', () => {
    const h = new Histogram();
    for (const v of [1, 2, 3, 4, 10]) h.record(v);
    expect(h.mean).toBe(4);
    expect(h.quantile(1)).toBe(10);
    expect(h.quantile(0.2)).toBeGreaterThanOrEqual(1);
    expect(h.quantile(0.2)).toBeLessThanOrEqual(1.04);
  });

  it('ignores negative, NaN and infinite values', () => {
    const h = new Histogram();
    h.record(-1);
    h.record(Number.NaN);
    h.record(Number.POSITIVE_INFINITY);
    expect(h.count).toBe(0);
    h.record(5);
    h.record(-100);
    expect(h.count).toBe(1);
    expect(h.mean).toBe(5);
    expect(h.quantile(0.5)).toBe(5);
  });

  it('reset() forgets every sample', () => {
    const h = new Histogram();
    for (let i = 1; i <= 100; i++) h.record(i * 10);
    h.reset();
    expect(h.count).toBe(0);
    expect(h.mean).toBe(0);
    expect(h.quantile(0.99)).toBe(0);
    h.record(3);
    expect(h.quantile(0.99)).toBe(3);
    expect(h.mean).toBe(3);
  });
});

describe('StatsCollector', () => {
  const proc = { cpuPercent: 12.34567, rssMb: 80.1234 };

  it('counts connections, bytes, requests and custom counters', () => {
    const s = new StatsCollector(1000);
    s.connectionOpened();
    s.connectionOpened();
    s.connectionOpened();
    s.connectionClosed(100, 2000);
    s.request(true, 10);
    s.request(true, 20);
    s.request(false, 30);
    s.count('rate_limited');
    s.count('rate_limited', 4);
    s.count('refused_draining');

    const snap = s.snapshot(proc);
    expect(snap).toMatchObject({
      totalRequests: 3,
      successfulRequests: 2,
      failedRequests: 1,
      activeConnections: 2,
      totalConnections: 3,
      bytesReceived: 100,
      bytesSent: 2000,
      avgLatencyMs: 20,
      cpuUsagePercent: 12.346,
      memoryUsageMb: 80.123,
      sinceMs: 1000,
      custom: { rate_limited: '5', refused_draining: '1' },
    });
  });

  it('never lets active connections go below zero', () => {
    const s = new StatsCollector(0);
    s.connectionClosed(1, 1);
    expect(s.activeConnections).toBe(0);
    expect(s.snapshot(proc).bytesReceived).toBe(1);
  });

  it('reports latency percentiles from the histogram', () => {
    const s = new StatsCollector(0);
    for (let i = 1; i <= 1000; i++) s.request(true, i);
    const snap = s.snapshot(proc);
    expect(snap.avgLatencyMs).toBe(500.5);
    expectWithin(snap.p50LatencyMs, 500, 0.05);
    expectWithin(snap.p95LatencyMs, 950, 0.05);
    expectWithin(snap.p99LatencyMs, 990, 0.05);
    expect(snap.p50LatencyMs).toBeLessThan(snap.p95LatencyMs);
    expect(snap.p95LatencyMs).toBeLessThanOrEqual(snap.p99LatencyMs);
    expect(snap.p99LatencyMs).toBeLessThanOrEqual(1000);
  });

  it('reset() zeroes the counters but keeps open connections counted', () => {
    const s = new StatsCollector(1000);
    for (let i = 0; i < 4; i++) s.connectionOpened();
    s.connectionClosed(10, 20);
    s.request(true, 5);
    s.request(false, 7);
    s.count('x', 3);

    s.reset(5000);
    const snap = s.snapshot(proc);
    expect(snap).toMatchObject({
      totalRequests: 0,
      successfulRequests: 0,
      failedRequests: 0,
      activeConnections: 3,
      totalConnections: 3,
      bytesReceived: 0,
      bytesSent: 0,
      avgLatencyMs: 0,
      p50LatencyMs: 0,
      p99LatencyMs: 0,
      sinceMs: 5000,
      custom: {},
    });
    // Connections opened before the reset still close normally.
    s.connectionClosed(1, 2);
    expect(s.activeConnections).toBe(2);
  });
});

function snapshot(over: Partial<StatsSnapshot>): StatsSnapshot {
  return {
    totalRequests: 0,
    successfulRequests: 0,
    failedRequests: 0,
    activeConnections: 0,
    totalConnections: 0,
    avgLatencyMs: 0,
    p50LatencyMs: 0,
    p95LatencyMs: 0,
    p99LatencyMs: 0,
    bytesReceived: 0,
    bytesSent: 0,
    cpuUsagePercent: 0,
    memoryUsageMb: 0,
    sinceMs: 0,
    custom: {},
    ...over,
  };
}

describe('aggregateStats', () => {
  it('sums counters and weights average latencies by requests', () => {
    const a = snapshot({
      totalRequests: 100,
      successfulRequests: 90,
      failedRequests: 10,
      activeConnections: 3,
      totalConnections: 50,
      avgLatencyMs: 10,
      p50LatencyMs: 8,
      p95LatencyMs: 40,
      p99LatencyMs: 90,
      bytesReceived: 1000,
      bytesSent: 5000,
      cpuUsagePercent: 20,
      memoryUsageMb: 100,
      sinceMs: 2000,
      custom: { rate_limited: '4' },
    });
    const b = snapshot({
      totalRequests: 300,
      successfulRequests: 299,
      failedRequests: 1,
      activeConnections: 7,
      totalConnections: 150,
      avgLatencyMs: 20,
      p50LatencyMs: 16,
      p95LatencyMs: 30,
      p99LatencyMs: 120,
      bytesReceived: 3000,
      bytesSent: 1,
      cpuUsagePercent: 35,
      memoryUsageMb: 150,
      sinceMs: 1000,
      custom: { rate_limited: '6', refused_draining: '2' },
    });
    expect(aggregateStats([a, b], 9999)).toEqual({
      totalRequests: 400,
      successfulRequests: 389,
      failedRequests: 11,
      activeConnections: 10,
      totalConnections: 200,
      avgLatencyMs: 17.5, // (100·10 + 300·20) / 400
      p50LatencyMs: 14, // (100·8 + 300·16) / 400
      p95LatencyMs: 40,
      p99LatencyMs: 120,
      bytesReceived: 4000,
      bytesSent: 5001,
      cpuUsagePercent: 55,
      memoryUsageMb: 250,
      sinceMs: 1000,
      custom: { rate_limited: '10', refused_draining: '2' },
    });
  });

  it('gives zero averages when nothing was requested, and the given since for no instances', () => {
    const idle = snapshot({ avgLatencyMs: 50, p50LatencyMs: 50, activeConnections: 2, sinceMs: 300 });
    const agg = aggregateStats([idle, idle], 9999);
    expect(agg.avgLatencyMs).toBe(0);
    expect(agg.p50LatencyMs).toBe(0);
    expect(agg.activeConnections).toBe(4);
    expect(agg.sinceMs).toBe(300);

    const none = aggregateStats([], 9999);
    expect(none).toEqual(snapshot({ sinceMs: 9999 }));
  });
});
