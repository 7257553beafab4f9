/**
 * What `mpctl top` shows, as plain data: module rows from a StreamNLBMetrics snapshot, the
 * header, deployments and events from GetNLBStatus (and UpdateDeployment STATUS), sparkline
 * history, sorting and filtering. No React and no I/O here, so all of it is unit-testable.
 */

/** A MetricDataPoint in protobuf JSON. */
export interface MetricPointJson {
  name?: string;
  value?: number;
  labels?: Record<string, string>;
  timestamp?: string;
}

/** StreamNLBMetricsResponse in protobuf JSON. */
export interface NlbMetricsJson {
  metrics?: MetricPointJson[];
  moduleMetrics?: Record<string, { moduleType?: string; metrics?: MetricPointJson[] }>;
  timestamp?: string;
}

/** GetNLBStatusResponse in protobuf JSON. */
export interface NlbStatusJson {
  status?: string;
  version?: string;
  startedAt?: string;
  totalRequests?: number | string;
  activeConnections?: number | string;
  registeredModules?: number;
  modulesByType?: Record<string, number>;
  details?: Record<string, string>;
}

/** DeploymentState in protobuf JSON. */
export interface DeploymentStateJson {
  moduleType?: string;
  versionWeights?: Record<string, number>;
  stableVersion?: string;
  targetVersion?: string;
  phase?: string;
  stepIndex?: number;
  steps?: number[];
}

/** One module type and version, as the NLB aggregates it ("ALB@1.0"). */
export interface ModuleRow {
  key: string;
  type: string;
  version: string;
  instances: number;
  healthy: number;
  weight: number;
  connections: number;
  rps: number;
  /** 0-1. */
  errorRate: number;
  p99Ms: number;
  cpuPercent: number;
}

/** The numbers a row keeps history of, for sparklines. */
export const HISTORY_METRICS = ['rps', 'connections', 'errorRate', 'p99Ms'] as const;
export type HistoryMetric = (typeof HISTORY_METRICS)[number];
/** Per row key, per metric, the last samples (oldest first). */
export type History = Readonly<Record<string, Readonly<Record<HistoryMetric, readonly number[]>>>>;

/** The header line's facts. */
export interface NlbHeader {
  status: string;
  version: string;
  uptimeSeconds?: number;
  totalRequests: number;
  activeConnections: number;
  registeredModules: number;
  healthyInstances?: number;
  modulesByType: Record<string, number>;
}

/** One module type's deployment: versions with weights, phase and rollout step. */
export interface DeploymentView {
  type: string;
  phase: string;
  versions: Array<{ version: string; weight: number; role?: 'stable' | 'target' }>;
  /** "2/4 (25 %)" while a rollout walks its steps. */
  step?: string;
}

/** A scaling or rollout event from GetNLBStatus details. */
export interface TopEvent {
  kind: 'scaling' | 'rollout';
  at: string;
  text: string;
}

/** Ways `s` cycles through. */
export const SORTS = ['name', 'rps', 'connections', 'errors', 'p99'] as const;
export type SortKey = (typeof SORTS)[number];

/** The sort after `sort`. */
export function nextSort(sort: SortKey): SortKey {
  return SORTS[(SORTS.indexOf(sort) + 1) % SORTS.length];
}

const label = (value: string | undefined, prefix: string) =>
  (value ?? '').startsWith(prefix) ? (value ?? '').slice(prefix.length) : (value ?? '');

/** The module rows of a snapshot, by key. */
export function rowsFromSnapshot(snapshot: NlbMetricsJson): ModuleRow[] {
  return Object.entries(snapshot.moduleMetrics ?? {}).map(([key, m]) => {
    const at = key.indexOf('@');
    const values = new Map((m.metrics ?? []).map((p) => [p.name ?? '', p.value ?? 0]));
    const v = (name: string) => values.get(name) ?? 0;
    return {
      key,
      type: at >= 0 ? key.slice(0, at) : label(m.moduleType, 'MODULE_TYPE_'),
      version: at >= 0 ? key.slice(at + 1) : '',
      instances: v('instances'),
      healthy: v('healthy_instances'),
      weight: v('weight'),
      connections: v('connections'),
      rps: v('requests_per_second'),
      errorRate: v('error_rate'),
      p99Ms: v('latency_p99_ms'),
      cpuPercent: v('cpu_percent'),
    };
  });
}

/** `history` with one more sample per row (at most `capacity` kept); rows gone are dropped. */
export function appendHistory(history: History, rows: readonly ModuleRow[], capacity: number): History {
  const next: Record<string, Record<HistoryMetric, readonly number[]>> = {};
  for (const row of rows) {
    const before = history[row.key];
    const entry = {} as Record<HistoryMetric, readonly number[]>;
    for (const metric of HISTORY_METRICS) {
      entry[metric] = [...(before?.[metric] ?? []), row[metric]].slice(-capacity);
    }
    next[row.key] = entry;
  }
  return next;
}

const toNumber = (v: number | string | undefined) => (v === undefined ? 0 : Number(v) || 0);

/** The header facts from GetNLBStatus. */
export function headerFromStatus(status: NlbStatusJson): NlbHeader {
  const details = status.details ?? {};
  const uptime = details.uptime_seconds;
  const healthy = details.healthy_instances;
  return {
    status: label(status.status, 'HEALTH_STATUS_') || 'UNKNOWN',
    version: status.version ?? '',
    uptimeSeconds: uptime === undefined ? undefined : Number(uptime),
    totalRequests: toNumber(status.totalRequests),
    activeConnections: toNumber(status.activeConnections),
    registeredModules: status.registeredModules ?? 0,
    healthyInstances: healthy === undefined ? undefined : Number(healthy),
    modulesByType: status.modulesByType ?? {},
  };
}

/** Module types that have a deployment (`deployment.<TYPE>` details keys). */
export function deploymentTypes(status: NlbStatusJson): string[] {
  return Object.keys(status.details ?? {})
    .filter((k) => k.startsWith('deployment.'))
    .map((k) => k.slice('deployment.'.length))
    .sort();
}

/**
 * The deployments: from full DeploymentStates when the NLB gave them (they carry the step),
 * else from the `deployment.<TYPE>` details ("PROGRESSING 1.0=75 2.0=25").
 */
export function deploymentsFromStatus(
  status: NlbStatusJson,
  states: Readonly<Record<string, DeploymentStateJson>> = {},
): DeploymentView[] {
  return deploymentTypes(status).map((type) => {
    const state = states[type];
    if (state) return deploymentFromState(type, state);
    const [phase = '', ...pairs] = (status.details?.[`deployment.${type}`] ?? '').split(' ');
    const versions = pairs
      .map((pair) => pair.split('='))
      .map(([version, weight]) => ({ version, weight: Number(weight) || 0 }));
    return { type, phase: label(phase, 'ROLLOUT_PHASE_'), versions: sortVersions(versions) };
  });
}

function deploymentFromState(type: string, d: DeploymentStateJson): DeploymentView {
  const phase = label(d.phase, 'ROLLOUT_PHASE_');
  const versions = Object.entries(d.versionWeights ?? {}).map(([version, weight]) => ({
    version,
    weight,
    role:
      version === d.targetVersion && phase !== 'STABLE'
        ? ('target' as const)
        : version === d.stableVersion
          ? ('stable' as const)
          : undefined,
  }));
  const steps = d.steps ?? [];
  const walking = steps.length > 0 && (phase === 'PROGRESSING' || phase === 'PAUSED');
  const i = Math.min(d.stepIndex ?? 0, steps.length - 1);
  return {
    type,
    phase,
    versions: sortVersions(versions),
    step: walking ? `${i + 1}/${steps.length} (${steps[i]} %)` : undefined,
  };
}

function sortVersions<T extends { version: string }>(versions: T[]): T[] {
  return versions.sort((a, b) => a.version.localeCompare(b.version, undefined, { numeric: true }));
}

/**
 * The latest scaling and rollout events, newest first. Details hold them as
 * `scaling_event.N` / `rollout_event.N` = "<ISO time> <TYPE> <version> <action>: <reason>".
 */
export function eventsFromStatus(status: NlbStatusJson): TopEvent[] {
  const events: TopEvent[] = [];
  for (const [key, value] of Object.entries(status.details ?? {})) {
    const kind = key.startsWith('scaling_event.')
      ? 'scaling'
      : key.startsWith('rollout_event.')
        ? 'rollout'
        : undefined;
    if (!kind) continue;
    const space = value.indexOf(' ');
    const at = space > 0 ? value.slice(0, space) : '';
    events.push({ kind, at, text: space > 0 ? value.slice(space + 1) : value });
  }
  return events.sort((a, b) => b.at.localeCompare(a.at));
}

const COMPARE: Record<SortKey, (a: ModuleRow, b: ModuleRow) => number> = {
  name: () => 0,
  rps: (a, b) => b.rps - a.rps,
  connections: (a, b) => b.connections - a.connections,
  errors: (a, b) => b.errorRate - a.errorRate,
  p99: (a, b) => b.p99Ms - a.p99Ms,
};

const byName = (a: { key: string }, b: { key: string }) =>
  a.key.localeCompare(b.key, undefined, { numeric: true });

/** Rows whose key contains `filter` (any case), sorted by `sort` (ties by name). */
export function visibleRows(rows: readonly ModuleRow[], sort: SortKey, filter: string): ModuleRow[] {
  const needle = filter.trim().toLowerCase();
  return rows
    .filter((r) => !needle || r.key.toLowerCase().includes(needle))
    .sort((a, b) => COMPARE[sort](a, b) || byName(a, b));
}

/** "3d4h", "1h02m", "4m05s", "12s". */
export function formatUptime(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${pad(m)}m`;
  if (m > 0) return `${m}m${pad(s % 60)}s`;
  return `${s}s`;
}

/** A compact number: 12, 3.5, 1.2k, 4.0M. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(abs >= 100 ? 0 : 1);
}

const LINE_COLUMNS: ReadonlyArray<readonly [string, number]> = [
  ['TIME', 8],
  ['MODULE', 14],
  ['INST', 5],
  ['WT%', 4],
  ['CONN', 7],
  ['REQ/S', 8],
  ['ERR%', 6],
  ['P99MS', 7],
  ['CPU%', 5],
];

function lineOf(cells: readonly string[]): string {
  return cells
    .map((cell, i) => (i < 2 ? cell.padEnd(LINE_COLUMNS[i][1]) : cell.padStart(LINE_COLUMNS[i][1])))
    .join(' ')
    .trimEnd();
}

/** The header of the line mode (stdout not a terminal). */
export const ROW_LINE_HEADER = lineOf(LINE_COLUMNS.map(([header]) => header));

/** One row as one line of the line mode, at `time` (ISO). */
export function rowLine(time: string | undefined, r: ModuleRow): string {
  return lineOf([
    time ? time.slice(11, 19) : '--:--:--',
    r.key,
    `${r.healthy}/${r.instances}`,
    String(Math.round(r.weight)),
    formatNumber(r.connections),
    formatNumber(r.rps),
    (r.errorRate * 100).toFixed(1),
    formatNumber(r.p99Ms),
    r.cpuPercent.toFixed(0),
  ]);
}
