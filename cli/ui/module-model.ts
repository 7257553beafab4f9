/**
 * What `mpctl module top` shows, as plain data: the numbers of a StreamMetrics sample (rates
 * from the change since the previous one), their history, and the instance list sorted and
 * filtered. No React and no I/O here.
 */
import type { ModuleInstanceJson, ModuleSampleJson } from './sources.js';

/** The numbers shown for a controller, in display order. */
export const MODULE_METRICS = [
  { id: 'rps', label: 'REQ/S' },
  { id: 'errorPct', label: 'ERR %' },
  { id: 'active', label: 'CONNECTIONS' },
  { id: 'p99', label: 'P99 MS' },
  { id: 'p50', label: 'P50 MS' },
  { id: 'cpu', label: 'CPU %' },
  { id: 'mem', label: 'MEM MB' },
] as const;
export type ModuleMetric = (typeof MODULE_METRICS)[number]['id'];

/** One sample reduced to what is shown, plus the counters the next rate needs. */
export interface ModuleNumbers {
  atMs: number;
  type: string;
  version: string;
  totalRequests: number;
  failedRequests: number;
  values: Record<ModuleMetric, number>;
}

/** The numbers of `sample`; rates come from the change since `previous` (0 for the first). */
export function moduleNumbers(sample: ModuleSampleJson, previous: ModuleNumbers | undefined): ModuleNumbers {
  const points = sample.metrics?.metrics ?? [];
  const values = new Map(points.map((p) => [p.name ?? '', p.value ?? 0]));
  const v = (name: string) => values.get(name) ?? 0;
  const atMs = sample.timestamp ? Date.parse(sample.timestamp) : Date.now();
  const totalRequests = v('totalRequests');
  const failedRequests = v('failedRequests');
  const seconds = previous ? (atMs - previous.atMs) / 1000 : 0;
  const requests = previous ? totalRequests - previous.totalRequests : 0;
  const failed = previous ? failedRequests - previous.failedRequests : 0;
  // A counter that went down is a restart: no rate for that step.
  const counted = seconds > 0 && requests >= 0 && failed >= 0;
  return {
    atMs,
    type: (sample.metrics?.moduleType ?? '').replace(/^MODULE_TYPE_/, ''),
    version: points.find((p) => p.labels?.version)?.labels?.version ?? '',
    totalRequests,
    failedRequests,
    values: {
      rps: counted ? requests / seconds : 0,
      errorPct: counted && requests > 0 ? (failed / requests) * 100 : 0,
      active: v('activeConnections'),
      p99: v('p99LatencyMs'),
      p50: v('p50LatencyMs'),
      cpu: v('cpuUsagePercent'),
      mem: v('memoryUsageMb'),
    },
  };
}

/** Per metric, the last samples (oldest first). */
export type ModuleHistory = Readonly<Record<ModuleMetric, readonly number[]>>;

/** `history` with `numbers` appended, at most `capacity` each. */
export function appendModuleHistory(
  history: ModuleHistory | undefined,
  numbers: ModuleNumbers,
  capacity: number,
): ModuleHistory {
  const next = {} as Record<ModuleMetric, readonly number[]>;
  for (const { id } of MODULE_METRICS) {
    next[id] = [...(history?.[id] ?? []), numbers.values[id]].slice(-capacity);
  }
  return next;
}

/** Ways `s` cycles through the instances. */
export const INSTANCE_SORTS = ['name', 'connections', 'status'] as const;
export type InstanceSort = (typeof INSTANCE_SORTS)[number];

const HEALTH_ORDER = ['UNHEALTHY', 'DEGRADED', 'STARTING', 'STOPPING', 'STOPPED', 'HEALTHY'];

/** "HEALTH_STATUS_HEALTHY" → "HEALTHY". */
export function healthLabel(instance: ModuleInstanceJson): string {
  return (instance.healthStatus ?? '').replace(/^HEALTH_STATUS_/, '') || 'UNKNOWN';
}

/** Instances whose id contains `filter` (any case), sorted by `sort` (ties by id). */
export function visibleInstances(
  instances: readonly ModuleInstanceJson[],
  sort: InstanceSort,
  filter: string,
): ModuleInstanceJson[] {
  const needle = filter.trim().toLowerCase();
  const id = (i: ModuleInstanceJson) => i.instanceId ?? '';
  const health = (i: ModuleInstanceJson) => {
    const at = HEALTH_ORDER.indexOf(healthLabel(i));
    return at < 0 ? HEALTH_ORDER.length : at;
  };
  const compare: Record<InstanceSort, (a: ModuleInstanceJson, b: ModuleInstanceJson) => number> = {
    name: () => 0,
    connections: (a, b) => (b.currentConnections ?? 0) - (a.currentConnections ?? 0),
    status: (a, b) => health(a) - health(b),
  };
  return instances
    .filter((i) => !needle || id(i).toLowerCase().includes(needle))
    .sort((a, b) => compare[sort](a, b) || id(a).localeCompare(id(b), undefined, { numeric: true }));
}
