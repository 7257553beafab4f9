/**
 * The NLB's operational RPCs: health, status, load distribution, rebalancing, manual scaling
 * and metric queries. Functions over the Nlb core, each a thin policy over domain values.
 */
import { failedPrecondition, invalidArgument, notFound, Problems, unavailable } from '../shared/errors.js';
import { balanceScore, connectionsOf, evenedOut, loadScore, type LoadInfoDomain } from './domain/load.js';
import type { SeriesData } from './domain/metrics-store.js';
import type { Strategy } from './domain/selection.js';
import type { Health, InstanceRecord, ModuleTypeName } from './domain/types.js';
import type { Nlb } from './nlb.js';
import type { ScaleResult, ScalingPolicyInput } from './ports.js';

/** CheckHealth: self checks, and with checkModules a deadline-bounded fan-out to every instance's HealthCheck. */
export async function checkHealth(nlb: Nlb, deep: boolean, checkModules: boolean, timeoutMs = 2000) {
  const checks: Record<string, string> = {};
  let status: Health = 'HEALTHY';
  const now = nlb.deps.clock.now();
  const degrade = (to: Health) => {
    if (to === 'UNHEALTHY' || status === 'HEALTHY') status = to;
  };
  const sweepAge = now - (nlb.lastSweepMs || nlb.startedAtMs); // never swept: count from start, not from 1970
  const sweepLimit = Math.max(2 * nlb.registry.getTimings().heartbeatIntervalMs, 5000);
  if (nlb.lastSweepMs === 0 && now - nlb.startedAtMs < sweepLimit) checks.lease_sweeper = 'ok (starting)';
  else if (sweepAge <= sweepLimit) checks.lease_sweeper = 'ok';
  else {
    checks.lease_sweeper = `stalled: last sweep ${Math.round(sweepAge / 1000)} s ago`;
    degrade('UNHEALTHY');
  }
  checks.state_store = nlb.lastSaveError
    ? `last save failed: ${nlb.lastSaveError}`
    : `ok (${nlb.deps.state.location})`;
  if (nlb.lastSaveError) degrade('DEGRADED');
  if (deep) {
    try {
      nlb.mutateDurable(() => undefined);
      checks.state_store_write = 'ok';
    } catch (e) {
      checks.state_store_write = `failed: ${(e as Error).message}`;
      degrade('DEGRADED');
    }
  }
  const all = nlb.registry.all();
  const healthy = all.filter((r) => r.health === 'HEALTHY').length;
  checks.registry = `${healthy}/${all.length} instances healthy`;
  const moduleHealth: Record<string, Health> = {};
  if (checkModules) {
    const results = await Promise.all(
      all.map(async (r) => {
        try {
          const h = await nlb.deps.modules.healthCheck(r.address, r.instanceId, deep, timeoutMs);
          return [r.instanceId, h.status, h.message] as const;
        } catch (e) {
          return [r.instanceId, 'UNHEALTHY', `no answer from ${r.address}: ${(e as Error).message}`] as const;
        }
      }),
    );
    for (const [id, h, msg] of results) {
      moduleHealth[id] = h;
      if (h !== 'HEALTHY') checks[`module:${id}`] = msg || h;
    }
    const bad = results.filter(([, h]) => h !== 'HEALTHY').length;
    if (bad > 0) degrade(bad === results.length ? 'UNHEALTHY' : 'DEGRADED');
    checks.modules = `${results.length - bad}/${results.length} modules healthy`;
  }
  const message =
    status === 'HEALTHY'
      ? 'all checks passed'
      : Object.entries(checks)
          .filter(([, v]) => !v.startsWith('ok'))
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ');
  return { status, message, moduleHealth, checks, checkedAtMs: now };
}

/** GetNLBStatus. */
export function status(nlb: Nlb) {
  const all = nlb.registry.all();
  const byType: Record<string, number> = {};
  for (const r of all) byType[r.moduleType] = (byType[r.moduleType] ?? 0) + 1;
  const now = nlb.deps.clock.now();
  const details: Record<string, string> = {
    uptime_seconds: String(Math.round((now - nlb.startedAtMs) / 1000)),
    healthy_instances: String(all.filter((r) => r.health === 'HEALTHY').length),
    routes: String(nlb.routes.size),
    heartbeats_total: String(nlb.counters.heartbeats),
    routing_failures_total: String(nlb.counters.routingFailures),
    state: nlb.deps.state.location,
    heartbeat_interval_seconds: String(nlb.config.heartbeat.intervalSeconds),
  };
  const recent = (
    list:
      | Array<{ atMs: number; moduleType: string; version: string; action: string; reason: string }>
      | undefined,
    prefix: string,
  ) =>
    (list ?? [])
      .slice(-5)
      .forEach(
        (e, i) =>
          (details[`${prefix}.${i}`] =
            `${new Date(e.atMs).toISOString()} ${e.moduleType} ${e.version} ${e.action}: ${e.reason}`),
      );
  recent(
    nlb.eventSources.scaling?.().filter((e) => e.action !== 'none'),
    'scaling_event',
  );
  recent(nlb.eventSources.scaling?.(), 'scaling_decision');
  recent(nlb.eventSources.rollout?.(), 'rollout_event');
  Object.assign(details, nlb.eventSources.managerSync?.() ?? {});
  Object.assign(details, nlb.eventSources.dataplane?.() ?? {});
  for (const d of nlb.deployments.all()) {
    details[`deployment.${d.moduleType}`] = `${d.phase} ${Object.entries(d.weights)
      .map(([v, w]) => `${v}=${w}`)
      .join(' ')}`;
  }
  return {
    status: (nlb.lastSaveError ? 'DEGRADED' : 'HEALTHY') as Health,
    version: nlb.deps.version,
    startedAtMs: nlb.startedAtMs,
    totalRequests: nlb.counters.routed,
    activeConnections: all.reduce((a, r) => a + r.connections, 0),
    registeredModules: all.length,
    modulesByType: byType,
    modules: all,
    details,
  };
}

/** GetLoadDistribution. */
export function loadDistribution(nlb: Nlb, type: ModuleTypeName | null) {
  const instances = nlb.registry.all().filter((r) => !type || r.moduleType === type);
  const target = nlb.config.scaling.defaults.targetConnections;
  const distribution: Record<string, LoadInfoDomain> = {};
  for (const r of instances) {
    const rps = nlb.instanceSeries.get(r.instanceId)?.latest('requests_per_second') ?? 0;
    distribution[r.instanceId] = {
      instanceId: r.instanceId,
      activeConnections: connectionsOf(r),
      cpuUsagePercent: r.stats?.cpuUsagePercent ?? 0,
      memoryUsageMb: r.stats?.memoryUsageMb ?? 0,
      requestsPerSecond: Math.round(rps),
      avgLatencyMs: r.stats?.avgLatencyMs ?? 0,
      queueDepth: Number(r.stats?.custom.queue_depth ?? 0) || 0,
      loadScore: loadScore(r, target),
    };
  }
  return { distribution, balanceScore: balanceScore(instances), measuredAtMs: nlb.deps.clock.now() };
}

/**
 * RebalanceLoad: sets the selection strategy and recomputes each instance's load offset (load
 * it carries that the NLB did not route, from its heartbeats) so least-connections sees the
 * instances' real load and new connections even out.
 */
export function rebalance(nlb: Nlb, force: boolean, targets: string[], strategy: string) {
  const s = (strategy || nlb.selection.strategy) as Strategy;
  if (s !== 'least-conn' && s !== 'round-robin')
    throw invalidArgument(`strategy "${strategy}" is not supported; use least-conn or round-robin`);
  const missing = targets.filter((t) => !nlb.registry.get(t));
  if (missing.length) throw notFound(`target_instances not registered: ${missing.join(', ')}`);
  const pool: InstanceRecord[] = targets.length
    ? targets.map((t) => nlb.registry.get(t)!)
    : nlb.registry.all();
  const previous = new Map(pool.map((r) => [r.instanceId, connectionsOf(r)]));
  const score = balanceScore(pool);
  if (!force && score >= 95 && s === nlb.selection.strategy) {
    return {
      changed: false,
      score,
      previous,
      next: previous,
      message: `load is already balanced (score ${score}); pass force to recompute anyway`,
    };
  }
  nlb.selection.strategy = s;
  nlb.selection.cursors.clear();
  for (const r of pool)
    nlb.selection.offsets.set(r.instanceId, Math.max(0, (r.stats?.activeConnections ?? 0) - r.connections));
  nlb.selection.revision++;
  // The projection of where connections settle per type@version group once new ones even out.
  const next = new Map<string, number>();
  const groups = new Map<string, Map<string, number>>();
  for (const r of pool) {
    const k = `${r.moduleType}@${r.version}`;
    if (!groups.has(k)) groups.set(k, new Map());
    groups.get(k)!.set(r.instanceId, previous.get(r.instanceId) ?? 0);
  }
  for (const g of groups.values()) for (const [id, n] of evenedOut(g)) next.set(id, n);
  return {
    changed: true,
    score,
    previous,
    next,
    message: `rebalanced ${pool.length} instances with ${s} (balance score was ${score})`,
  };
}

/** The controller addresses of a type (optionally one version), each with its instance count. */
function controllers(nlb: Nlb, type: ModuleTypeName, version?: string): Map<string, InstanceRecord[]> {
  const out = new Map<string, InstanceRecord[]>();
  for (const r of nlb.registry.all()) {
    if (r.moduleType !== type || (version && r.version !== version)) continue;
    out.set(r.address, [...(out.get(r.address) ?? []), r]);
  }
  return out;
}

/** TriggerScaling by hand: scale-up / scale-down (one step or to target) on a controller. */
export async function triggerScaling(
  nlb: Nlb,
  req: {
    instanceId: string;
    moduleType: ModuleTypeName | null;
    action: string;
    targetInstances: number;
    config?: ScalingPolicyInput;
  },
  autoscale?: (type: ModuleTypeName | null) => Promise<{ message: string; current: number; target: number }>,
) {
  const action = req.action || (req.targetInstances ? 'scale-to' : '');
  const p = new Problems();
  if (!['scale-up', 'scale-down', 'auto', 'scale-to'].includes(action))
    p.add(`scaling_action "${req.action}" is not supported; use scale-up, scale-down or auto`);
  if (!Number.isInteger(req.targetInstances) || req.targetInstances < 0 || req.targetInstances > 10_000)
    p.add(`target_instances ${req.targetInstances} is out of range: use 0 to 10000`);
  if (!req.instanceId && !req.moduleType)
    p.add('name what to scale: instance_id (its controller) or module_type');
  if (req.config && req.config.minInstances > req.config.maxInstances)
    p.add(
      `config.min_instances ${req.config.minInstances} exceeds config.max_instances ${req.config.maxInstances}`,
    );
  p.check('scaling request');
  if (action === 'auto') {
    if (!autoscale)
      throw failedPrecondition(
        'the autoscaler is not running on this NLB; scale with scale-up/scale-down and target_instances',
      );
    const r = await autoscale(
      req.moduleType ?? (req.instanceId ? nlb.instance(req.instanceId).moduleType : null),
    );
    return { action, current: r.current, target: r.target, message: r.message };
  }
  let address: string;
  let current: number;
  let label: string;
  if (req.instanceId) {
    const r = nlb.instance(req.instanceId);
    address = r.address;
    current = controllers(nlb, r.moduleType, r.version).get(address)?.length ?? 0;
    label = `${r.moduleType} ${r.version} controller ${address}`;
  } else {
    const cs = controllers(nlb, req.moduleType!, nlb.activeVersion(req.moduleType!) || undefined);
    if (cs.size === 0)
      throw notFound(`no ${req.moduleType} instance is registered, so there is no controller to scale`);
    if (cs.size > 1)
      throw failedPrecondition(
        `${req.moduleType} has ${cs.size} controllers (${[...cs.keys()].join(', ')}); name one with instance_id`,
      );
    [address, current] = [...cs.entries()].map(([a, rs]) => [a, rs.length] as const)[0];
    label = `${req.moduleType} controller ${address}`;
  }
  const target =
    action === 'scale-to' || req.targetInstances
      ? req.targetInstances
      : Math.max(0, current + (action === 'scale-up' ? 1 : -1));
  const r0 = req.instanceId ? nlb.registry.get(req.instanceId) : undefined;
  const event = {
    type: 'scaling' as const,
    moduleType: r0?.moduleType ?? req.moduleType ?? '',
    version: r0?.version ?? (req.moduleType ? nlb.activeVersion(req.moduleType) : ''),
    action,
    from: current,
    reason: 'manual TriggerScaling',
  };
  let result: ScaleResult;
  try {
    result = await nlb.deps.modules.scale(
      address,
      { instanceId: req.instanceId, desiredInstances: target, config: req.config, immediate: true },
      10_000,
    );
  } catch (e) {
    // A controller that cannot be reached is a failure the caller can act on, not an NLB bug.
    nlb.emit({ ...event, to: target, ok: false });
    throw unavailable(`${label} did not answer Scale: ${(e as Error).message}`);
  }
  nlb.emit({ ...event, to: result.desiredInstances, ok: result.success });
  if (!result.success) throw failedPrecondition(`${label} refused to scale: ${result.message}`);
  return {
    action,
    current: result.currentInstances,
    target: result.desiredInstances,
    message: `${label}: ${result.message || `scaling ${current} → ${target}`}`,
  };
}

/** Splits queried series into NLB series and per-module (instance or type@version) groups. */
export function groupSeries(
  series: SeriesData[],
  aggregate: boolean,
): { nlb: SeriesData[]; modules: Map<string, SeriesData[]> } {
  const nlbSeries: SeriesData[] = [];
  const modules = new Map<string, SeriesData[]>();
  for (const s of series) {
    const key = s.labels.instance
      ? aggregate
        ? ''
        : s.labels.instance
      : s.labels.module_type
        ? aggregate
          ? `${s.labels.module_type}@${s.labels.version}`
          : ''
        : null;
    if (key === null) nlbSeries.push(s);
    else if (key) modules.set(key, [...(modules.get(key) ?? []), s]);
  }
  return { nlb: nlbSeries, modules };
}
