/**
 * Shared by the control-plane benchmark's parent (control-plane.ts), its NLB child
 * (control-plane-nlb.ts) and its load-generator workers (control-plane-worker.ts): the IPC
 * messages, a mergeable latency histogram and what the fake instances look like.
 */
import { readFileSync } from 'node:fs';
import {
  HealthStatus,
  ModuleType,
  Protocol,
  ProxyProtocolMode,
  type ModuleStats,
} from '../proto/gen/marchproxy/types.js';
import type { RegisterModuleRequest } from '../proto/gen/marchproxy/nlb.js';

// ---- IPC -------------------------------------------------------------------------------------

/** Parent → NLB child. */
export type ToNlb =
  | { type: 'stop' }
  | { type: 'memory' }
  /**
   * Starts V8's CPU profiler and/or its sampling heap profiler (allocations that outlive a
   * scavenge: what reaches the old generation); 'profile-stop' writes `<base>.cpuprofile` and/or
   * `<base>.heapprofile`.
   */
  | { type: 'profile-start'; cpu: boolean; heap: boolean }
  | { type: 'profile-stop'; base: string }
  /** Writes a V8 heap snapshot to `file` (after a full GC). */
  | { type: 'heap-snapshot'; file: string };
/** NLB child → parent. */
export type FromNlb =
  | { type: 'ready'; grpcPort: number; adminPort: number }
  | { type: 'memory'; usage: NodeJS.MemoryUsage; spaces: HeapSpaces }
  | { type: 'profiling' }
  | { type: 'profiled'; files: string[] }
  | { type: 'heap-snapshot-written'; file: string }
  | { type: 'failed'; message: string };

/** Committed size of each V8 heap space in bytes (new_space, old_space, code_space, …). */
export type HeapSpaces = Record<string, number>;

/** Parent → worker. */
export type ToWorker =
  | { type: 'init'; target: string; first: number; count: number; inflight: number; timeoutMs: number }
  | { type: 'register' }
  /**
   * Heartbeats until `durationMs` passes, `passes` full rounds over the instances are sent, or
   * 'hb-stop'; as fast as answers come back, or at `ratePerSecond` (this worker's share).
   */
  | { type: 'hb-start'; durationMs: number; passes: number; ratePerSecond: number }
  | { type: 'hb-stop' }
  | { type: 'exit' };

/** One worker's figures for a phase. */
export interface PhaseResult {
  /** Calls answered (acknowledged or not). */
  answered: number;
  acknowledged: number;
  /** Answered, but acknowledged = false (unknown or stale registration). */
  refused: number;
  /** Calls that failed with a gRPC status. */
  errors: number;
  /** First few error messages. */
  errorSamples: string[];
  /** Wall time from the first call to the last answer. */
  elapsedMs: number;
  /** Latency histogram counts (see Histogram). */
  histogram: number[];
}

/** Worker → parent. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'registered'; result: PhaseResult }
  | { type: 'hb-done'; result: PhaseResult }
  | { type: 'failed'; message: string };

// ---- latency histogram -----------------------------------------------------------------------

/** Buckets of 1 % width on a log scale, from 1 µs to well over a minute; merged by adding counts. */
const BUCKETS_PER_E = 100;
const BUCKETS = 1900;

export class Histogram {
  readonly counts: number[];
  total = 0;

  constructor(counts?: number[]) {
    this.counts = counts ? [...counts] : new Array<number>(BUCKETS).fill(0);
    this.total = this.counts.reduce((a, b) => a + b, 0);
  }

  /** Records a latency in milliseconds. */
  record(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const i = Math.min(BUCKETS - 1, Math.floor(Math.log(us) * BUCKETS_PER_E));
    this.counts[i]++;
    this.total++;
  }

  merge(other: Histogram | number[]): void {
    const counts = Array.isArray(other) ? other : other.counts;
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += counts[i] ?? 0;
    this.total = this.counts.reduce((a, b) => a + b, 0);
  }

  /** The q-quantile (0..1) in milliseconds, at the middle of its bucket; NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.exp((i + 0.5) / BUCKETS_PER_E) / 1000;
    }
    return NaN;
  }
}

/** Exact quantile of a small sample (ms). */
export function sampleQuantile(values: number[], q: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// ---- /proc -----------------------------------------------------------------------------------

let clockTicks = 100;
/** Sets the kernel's clock ticks per second (getconf CLK_TCK; 100 on Linux almost always). */
export function setClockTicks(n: number): void {
  if (n > 0) clockTicks = n;
}

/** A process's CPU time (user + system, all threads) in milliseconds, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / clockTicks;
}

/** VmRSS and VmHWM (peak) of a process, in MB. */
export function processMemoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** Busy and total CPU time of the whole machine (all cores, ms), from /proc/stat; steal counts as busy. */
export function machineCpu(): { busyMs: number; totalMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3] + v[4];
  return { busyMs: ((total - idle) * 1000) / clockTicks, totalMs: (total * 1000) / clockTicks };
}

// ---- the fake instances ----------------------------------------------------------------------

const TYPES = [
  { type: ModuleType.MODULE_TYPE_ALB, protocols: [Protocol.PROTOCOL_HTTP, Protocol.PROTOCOL_HTTPS] },
  { type: ModuleType.MODULE_TYPE_DBLB, protocols: [Protocol.PROTOCOL_POSTGRES, Protocol.PROTOCOL_MYSQL] },
  { type: ModuleType.MODULE_TYPE_AILB, protocols: [Protocol.PROTOCOL_HTTP] },
  { type: ModuleType.MODULE_TYPE_RTMP, protocols: [Protocol.PROTOCOL_RTMP] },
];
export const VERSIONS = ['1.0.0', '2.0.0'];

export const instanceId = (i: number): string => `bench-${String(i).padStart(6, '0')}`;

/** RegisterModule for instance `i`: types round-robin, two versions, one route of its own. */
export function registerRequest(i: number): RegisterModuleRequest {
  const t = TYPES[i % TYPES.length];
  return {
    instance: {
      instanceId: instanceId(i),
      moduleType: t.type,
      // A controller address nothing listens on: the benchmark never lets the NLB call it.
      address: '127.0.0.1:1',
      healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
      metadata: { zone: `zone-${i % 3}`, node: `node-${i % 97}`, bench: 'control-plane' },
      startedAt: new Date(),
      currentConnections: 0,
      maxConnections: 10_000,
      version: VERSIONS[Math.floor(i / TYPES.length) % VERSIONS.length],
      trafficWeight: 0,
      trafficAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`,
      proxyProtocol: ProxyProtocolMode.PROXY_PROTOCOL_MODE_NONE,
      draining: false,
      protocols: t.protocols,
    },
    initialRoutes: [
      {
        routeId: '',
        protocol: t.protocols[0],
        sourcePattern: '',
        destinationPattern: `svc-${i}.bench.example.com`,
        sourcePort: 0,
        destinationPort: 0,
        headers: {},
        pathPattern: '',
        priority: 10,
        metadata: {},
      },
    ],
    healthConfig: undefined,
    capabilities: { region: 'bench' },
  };
}

/** Counters a module would report; they grow from beat to beat like real ones. */
export interface FakeCounters {
  requests: number;
  failed: number;
  connections: number;
  bytesIn: number;
  bytesOut: number;
}

export function newCounters(): FakeCounters {
  return { requests: 0, failed: 0, connections: 0, bytesIn: 0, bytesOut: 0 };
}

/** Realistic ModuleStats for one heartbeat (mutates the counters). */
export function moduleStats(id: string, c: FakeCounters, since: Date): ModuleStats {
  const served = 50 + Math.floor(Math.random() * 500);
  const failed = Math.random() < 0.2 ? Math.floor(Math.random() * 3) : 0;
  c.requests += served;
  c.failed += failed;
  c.connections += 5 + Math.floor(Math.random() * 20);
  c.bytesIn += served * 900;
  c.bytesOut += served * 12_000;
  const p50 = 1 + Math.random() * 4;
  return {
    instanceId: id,
    totalRequests: c.requests,
    successfulRequests: c.requests - c.failed,
    failedRequests: c.failed,
    activeConnections: Math.floor(Math.random() * 500),
    totalConnections: c.connections,
    avgLatencyMs: p50 * 1.3,
    p50LatencyMs: p50,
    p95LatencyMs: p50 * 4,
    p99LatencyMs: p50 * 8,
    bytesReceived: c.bytesIn,
    bytesSent: c.bytesOut,
    cpuUsagePercent: 5 + Math.random() * 90,
    memoryUsageMb: 120 + Math.random() * 300,
    since,
    customStats: { queue_depth: String(Math.floor(Math.random() * 10)), upstreams_up: '3' },
  };
}
