/**
 * Shapes (protobuf JSON) and table columns shared by several NLB commands.
 */
import { enumLabel, type Column } from './output.js';
import type { InstanceJson } from './rpc-command.js';

/** ListModules fields that --filter and --sort accept. */
export const INSTANCE_FIELDS = [
  'instance_id',
  'module_type',
  'version',
  'health_status',
  'address',
  'traffic_address',
  'current_connections',
  'max_connections',
  'started_at',
  'registered_at',
  'last_heartbeat',
  'draining',
  'cpu_usage_percent',
] as const;

/** ListModulesResponse in protobuf JSON. */
export interface ListModulesJson {
  modules?: InstanceJson[];
  totalModules?: number;
  pagination?: { page?: number; pageSize?: number; totalItems?: number; totalPages?: number };
}

/** The columns of `modules list` (and of `status --modules`). */
export const INSTANCE_COLUMNS: ReadonlyArray<Column<InstanceJson>> = [
  { header: 'INSTANCE', get: (m) => m.instanceId },
  { header: 'TYPE', get: (m) => enumLabel(m.moduleType, 'MODULE_TYPE_') },
  { header: 'VERSION', get: (m) => m.version },
  {
    header: 'STATUS',
    get: (m) => `${enumLabel(m.healthStatus, 'HEALTH_STATUS_')}${m.draining ? ' (draining)' : ''}`,
    status: true,
  },
  { header: 'CONTROLLER', get: (m) => m.address },
  { header: 'TRAFFIC', get: (m) => m.trafficAddress as string | undefined },
  { header: 'CONNS', get: (m) => (m.currentConnections as number | undefined) ?? 0 },
  { header: 'MAX', get: (m) => (m.maxConnections as number | undefined) ?? 0 },
  { header: 'WEIGHT', get: (m) => (m.trafficWeight as number | undefined) ?? 0 },
];

/** GetRoutingTable fields that --filter and --sort accept. */
export const ROUTE_FIELDS = [
  'route_id',
  'protocol',
  'destination_pattern',
  'destination_port',
  'path_pattern',
  'priority',
  'module_type',
  'owner',
  'current_connections',
  'created_at',
  'last_used',
] as const;

/** A Route in protobuf JSON. */
export interface RouteJson {
  routeId?: string;
  protocol?: string;
  sourcePattern?: string;
  destinationPattern?: string;
  sourcePort?: number;
  destinationPort?: number;
  headers?: Record<string, string>;
  pathPattern?: string;
  priority?: number;
  metadata?: Record<string, string>;
}

/** A RoutingEntry in protobuf JSON. */
export interface RoutingEntryJson {
  route?: RouteJson;
  targetInstanceId?: string;
  targetModuleType?: string;
  currentConnections?: number;
  createdAt?: string;
  lastUsed?: string;
}

/** GetRoutingTableResponse in protobuf JSON. */
export interface RoutingTableJson {
  entries?: RoutingEntryJson[];
  totalEntries?: number;
  pagination?: { page?: number; pageSize?: number; totalItems?: number; totalPages?: number };
}

/** The columns of `routes list` (and of `modules get`, without OWNER and CONNS). */
export const ROUTE_COLUMNS: ReadonlyArray<Column<RoutingEntryJson>> = [
  { header: 'ROUTE', get: (e) => e.route?.routeId },
  { header: 'PROTOCOL', get: (e) => enumLabel(e.route?.protocol, 'PROTOCOL_') || '*' },
  { header: 'HOST', get: (e) => e.route?.destinationPattern || '*' },
  { header: 'PORT', get: (e) => e.route?.destinationPort || '*', align: 'right' },
  { header: 'PATH', get: (e) => e.route?.pathPattern || '*' },
  { header: 'PRIORITY', get: (e) => e.route?.priority ?? 0 },
  {
    header: 'MODULE',
    get: (e) => enumLabel(e.targetModuleType, 'MODULE_TYPE_') || e.route?.metadata?.module_type,
  },
  { header: 'OWNER', get: (e) => e.targetInstanceId || 'operator' },
  { header: 'CONNS', get: (e) => e.currentConnections ?? 0 },
];

/** A MetricDataPoint in protobuf JSON. */
export interface MetricPointJson {
  name?: string;
  value?: number;
  labels?: Record<string, string>;
  timestamp?: string;
}

/** A ModuleMetrics in protobuf JSON. */
export interface ModuleMetricsJson {
  instanceId?: string;
  moduleType?: string;
  metrics?: MetricPointJson[];
  collectedAt?: string;
}

/** One series summarised for a table. */
export interface SeriesRow {
  source: string;
  name: string;
  labels: string;
  points: number;
  latest: number;
  min: number;
  max: number;
  at?: string;
}

/** Labels a module series' source (instance id or type@version) already says. */
const IMPLIED_LABELS = ['instance', 'module_type', 'version'];

const labelText = (labels: Record<string, string> | undefined, implied: readonly string[]) =>
  Object.entries(labels ?? {})
    .filter(([k]) => !implied.includes(k))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/**
 * Groups points into series (by source, name and labels) with count, latest, min and max.
 * Sources other than "nlb" are a module's, whose instance/module_type/version labels are left out.
 */
export function summariseSeries(
  sources: ReadonlyArray<readonly [string, MetricPointJson[] | undefined]>,
): SeriesRow[] {
  const rows = new Map<string, SeriesRow>();
  for (const [source, points] of sources) {
    for (const p of points ?? []) {
      const labels = labelText(p.labels, source === 'nlb' ? [] : IMPLIED_LABELS);
      const key = `${source}\u0000${p.name ?? ''}\u0000${labels}`;
      const value = p.value ?? 0;
      const row = rows.get(key);
      if (!row) {
        rows.set(key, {
          source,
          name: p.name ?? '',
          labels,
          points: 1,
          latest: value,
          min: value,
          max: value,
          at: p.timestamp,
        });
        continue;
      }
      row.points++;
      row.min = Math.min(row.min, value);
      row.max = Math.max(row.max, value);
      if ((p.timestamp ?? '') >= (row.at ?? '')) {
        row.latest = value;
        row.at = p.timestamp;
      }
    }
  }
  return [...rows.values()];
}

/** The columns of `metrics nlb` and `metrics module`. */
export const SERIES_COLUMNS: ReadonlyArray<Column<SeriesRow>> = [
  { header: 'SOURCE', key: 'source' },
  { header: 'METRIC', key: 'name' },
  { header: 'LABELS', key: 'labels', maxWidth: 40 },
  { header: 'POINTS', key: 'points' },
  { header: 'LATEST', get: (r) => round(r.latest), align: 'right' },
  { header: 'MIN', get: (r) => round(r.min), align: 'right' },
  { header: 'MAX', get: (r) => round(r.max), align: 'right' },
];

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
