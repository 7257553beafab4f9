/**
 * Load scores and the balance score (GetLoadDistribution).
 *
 * load_score (0-100) = the highest of: CPU %, and connection utilisation
 * (connections / max_connections, or / target_connections when the instance has no maximum).
 *
 * balance_score (0-100) = 100 × (1 − CV), where CV is the coefficient of variation (standard
 * deviation / mean) of open connections among the instances of one module type and version,
 * averaged over those groups weighted by their instance counts; clamped to 0..100. Groups
 * with no connections count as perfectly balanced.
 */
import type { InstanceRecord } from './types.js';

export interface LoadInfoDomain {
  instanceId: string;
  activeConnections: number;
  cpuUsagePercent: number;
  memoryUsageMb: number;
  requestsPerSecond: number;
  avgLatencyMs: number;
  queueDepth: number;
  loadScore: number;
}

/** Open connections of an instance: what the NLB routed, or what it reported, whichever is higher. */
export function connectionsOf(r: InstanceRecord): number {
  return Math.max(r.connections, r.stats?.activeConnections ?? 0);
}

/** 0-100 load score of one instance. */
export function loadScore(r: InstanceRecord, targetConnections: number): number {
  const conns = connectionsOf(r);
  const cap = r.maxConnections > 0 ? r.maxConnections : targetConnections;
  const connUtil = cap > 0 ? (conns / cap) * 100 : 0;
  const cpu = r.stats?.cpuUsagePercent ?? 0;
  return Math.round(Math.min(100, Math.max(0, cpu, connUtil)) * 100) / 100;
}

/** Coefficient of variation of a list (0 for empty or all-zero lists). */
export function coefficientOfVariation(xs: number[]): number {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (mean === 0) return 0;
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length;
  return Math.sqrt(variance) / mean;
}

/** The balance score over instances, grouped by module type and version. */
export function balanceScore(instances: InstanceRecord[]): number {
  const groups = new Map<string, number[]>();
  for (const r of instances) {
    const k = `${r.moduleType}@${r.version}`;
    groups.set(k, [...(groups.get(k) ?? []), connectionsOf(r)]);
  }
  let weighted = 0;
  let n = 0;
  for (const xs of groups.values()) {
    weighted += Math.min(1, coefficientOfVariation(xs)) * xs.length;
    n += xs.length;
  }
  if (n === 0) return 100;
  return Math.round((1 - weighted / n) * 10000) / 100;
}

/**
 * Water-filling: how `total` connections would sit on instances if new connections always
 * went to the least loaded (the "after" view of RebalanceLoad).
 */
export function evenedOut(current: Map<string, number>): Map<string, number> {
  const ids = [...current.keys()].sort();
  const total = [...current.values()].reduce((a, b) => a + b, 0);
  const base = Math.floor(total / Math.max(1, ids.length));
  let extra = total - base * ids.length;
  return new Map(ids.map((id) => [id, base + (extra-- > 0 ? 1 : 0)]));
}
