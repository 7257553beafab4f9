/**
 * The NLB core: registry, routing table, deployments, config and metrics wired together on an
 * injected clock, random source and state store. The gRPC transport calls these methods with
 * domain values; nothing here knows about protobuf.
 */
import type { Clock, TimerHandle } from '../shared/clock.js';
import {
  DomainError,
  failedPrecondition,
  invalidArgument,
  notFound,
  Problems,
  resourceExhausted,
} from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Rng } from '../shared/rng.js';
import { InstanceOwners, SYSTEM_CALLER, type Caller, type LimitHit } from './domain/access.js';
import { activeVersion, Deployments, type Deployment } from './domain/deployments.js';
import {
  defaultNlbConfig,
  parseSection,
  SECTION_NAMES,
  sectionName,
  type NlbConfig,
  type SectionName,
} from './domain/nlb-config.js';
import {
  INSTANCE_FIELDS as SERIES_FIELDS,
  InstanceSeries,
  type InstanceField,
} from './domain/instance-series.js';
import { MetricsStore, type SeriesData } from './domain/metrics-store.js';
import { applyQuery, type Page, type QuerySpec } from './domain/query.js';
import { DEFAULT_LEASE_TIMINGS, Registry, type LeaseTimings, type RegistryEvent } from './domain/registry.js';
import { OPERATOR, RoutingTable, type RouteEntry } from './domain/routes.js';
import { newSelectionState, type SelectionState } from './domain/selection.js';
import type {
  Health,
  InstanceRecord,
  InstanceSpec,
  InstanceStats,
  ModuleTypeName,
  RouteSpec,
} from './domain/types.js';
import { validateInstanceSpec, validateRoute } from './domain/validate.js';
import type { ModulePort } from './ports.js';
import { routeModuleType, routeId } from './route-identity.js';
import type { DurableState, StatePort } from './store.js';
import { LimitLog } from '../shared/limit-log.js';

export interface NlbDeps {
  clock: Clock;
  rng: Rng;
  logger: Logger;
  state: StatePort;
  modules: ModulePort;
  /** The NLB's release, reported by GetNLBStatus. */
  version: string;
  /** Config from flags/file that seeds sections never changed through the API. */
  initialConfig?: Partial<NlbConfig>;
}

export type NlbEvent =
  | { type: 'registry'; event: RegistryEvent }
  | { type: 'heartbeat'; instance: InstanceRecord | null; acknowledged: boolean }
  | { type: 'routing'; result: 'routed' | 'no_route' | 'no_instance'; moduleType: string; version: string }
  | { type: 'config'; section: SectionName }
  | { type: 'limit'; limit: string }
  | { type: 'deployment'; deployment: Deployment; action: string }
  | {
      type: 'scaling';
      moduleType: string;
      version: string;
      action: string;
      from: number;
      to: number;
      reason: string;
      ok: boolean;
    };

export class Nlb {
  readonly registry: Registry;
  readonly routes = new RoutingTable();
  readonly deployments: Deployments;
  readonly metrics = new MetricsStore();
  readonly selection: SelectionState = newSelectionState();
  config: NlbConfig;
  readonly startedAtMs: number;
  /** Changes whenever the set or health of instances changes (cache key). */
  registryRevision = 0;
  counters = { heartbeats: 0, routed: 0, routingFailures: 0, registrations: 0 };
  /** Which token registered which instance (domain/access.ts). */
  readonly owners = new InstanceOwners();
  /** Refusals because a limit was reached, by limit name. */
  readonly limitHits = new Map<string, number>();
  /** The limit hits' log lines, rate-limited per limit. */
  private readonly limitLog: LimitLog;
  lastSweepMs = 0;
  lastSaveError: string | null = null;
  /** Recent autoscaling decisions and rollout events, for status output (set by main.ts). */
  eventSources: {
    scaling?: () => Array<{
      atMs: number;
      moduleType: string;
      version: string;
      action: string;
      reason: string;
    }>;
    rollout?: () => Array<{
      atMs: number;
      moduleType: string;
      version: string;
      action: string;
      reason: string;
    }>;
    /** Manager sync state as GetNLBStatus details (manager_sync.*). */
    managerSync?: () => Record<string, string>;
    /** The data plane's shape as GetNLBStatus details (dataplane.*). */
    dataplane?: () => Record<string, string>;
  } = {};
  private readonly listeners: Array<(e: NlbEvent) => void> = [];
  private sweeper: TimerHandle | null = null;
  private sweeperPeriodMs = 0;
  /** Recent heartbeat figures per instance (compact rings, not general series). */
  readonly instanceSeries = new Map<string, InstanceSeries>();
  private readonly statsRow = new Float64Array(SERIES_FIELDS.length);
  /**
   * Config sections set through UpdateNLBConfig: the only ones persisted, so that defaults and
   * start-up flags (e.g. --heartbeat-interval) keep applying at later starts.
   */
  private apiSections: Set<SectionName>;

  constructor(readonly deps: NlbDeps) {
    this.startedAtMs = deps.clock.now();
    this.limitLog = new LimitLog(deps.logger, () => deps.clock.now());
    const stored = deps.state.load();
    this.config = this.mergeConfig(stored?.config ?? {}, deps.initialConfig ?? {});
    this.apiSections = sectionsOf(stored?.config ?? {});
    this.registry = new Registry(
      this.leaseTimings(),
      () =>
        `reg-${deps.rng.int(0, 0xffffffff).toString(16).padStart(8, '0')}${deps.rng.int(0, 0xffff).toString(16).padStart(4, '0')}`,
    );
    this.deployments = new Deployments(stored?.deployments ?? []);
    for (const r of stored?.routes ?? []) {
      this.routes.apply([r.route], OPERATOR, () => r.moduleType, false, r.createdAtMs);
    }
    this.selection.strategy = this.config.routing.strategy;
  }

  private mergeConfig(stored: Partial<NlbConfig>, initial: Partial<NlbConfig>): NlbConfig {
    const cfg = defaultNlbConfig();
    for (const src of [initial, stored]) {
      for (const [k, v] of Object.entries(src)) {
        const name = k as SectionName;
        if (v !== undefined && name in cfg)
          (cfg as Record<SectionName, unknown>)[name] = parseSection(name, v).value;
      }
    }
    return cfg;
  }

  private leaseTimings(): LeaseTimings {
    const h = this.config.heartbeat;
    return {
      ...DEFAULT_LEASE_TIMINGS,
      heartbeatIntervalMs: h.intervalSeconds * 1000,
      missedHeartbeats: h.missedHeartbeats,
      evictAfterMs: h.evictAfterSeconds * 1000,
      defaultDrainTimeoutMs: h.drainTimeoutSeconds * 1000,
    };
  }

  /** Subscribes to events (metrics, logs). */
  on(listener: (e: NlbEvent) => void): void {
    this.listeners.push(listener);
  }

  emit(e: NlbEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.deps.logger.warn('event listener failed', { err: String(err) });
      }
    }
  }

  private emitRegistry(events: RegistryEvent[]): void {
    for (const event of events) {
      if (event.type !== 'refreshed') this.registryRevision++;
      if (event.type === 'removed') {
        this.owners.release(event.instance.instanceId);
        this.routes.removeOwner(event.instance.instanceId);
        this.selection.offsets.delete(event.instance.instanceId);
        this.metrics.drop({ instance: event.instance.instanceId });
        this.instanceSeries.delete(event.instance.instanceId);
      }
      const i = event.instance;
      const fields = { instance: i.instanceId, module_type: i.moduleType, version: i.version };
      if (event.type === 'health')
        this.deps.logger.info(`instance ${event.from} → ${event.to}: ${event.reason}`, fields);
      else if (event.type === 'removed') this.deps.logger.info(`instance removed (${event.reason})`, fields);
      else if (event.type === 'registered') this.deps.logger.info('instance registered', fields);
      this.emit({ type: 'registry', event });
    }
  }

  /** Starts the lease sweeper and the metrics tick on the clock. */
  start(): void {
    this.restartSweeper();
  }

  private restartSweeper(): void {
    const period = Math.max(
      100,
      Math.min(
        this.registry.getTimings().heartbeatIntervalMs / 2,
        this.config.metrics.resolutionSeconds * 1000,
      ),
    );
    if (this.sweeper && period === this.sweeperPeriodMs) return;
    this.sweeper?.cancel();
    this.sweeperPeriodMs = period;
    this.sweeper = this.deps.clock.setInterval(() => this.tick(), period);
  }

  /** Stops timers. */
  stop(): void {
    this.sweeper?.cancel();
    this.sweeper = null;
  }

  /** One sweep: lease expiry, eviction, drain completion, aggregate metrics. */
  tick(): void {
    const now = this.deps.clock.now();
    this.lastSweepMs = now;
    this.emitRegistry(this.registry.sweep(now));
    this.recordAggregates(now);
  }

  // ---- durable state -------------------------------------------------------------------

  private durableState(): DurableState {
    return {
      config: Object.fromEntries([...this.apiSections].map((n) => [n, structuredClone(this.config[n])])),
      routes: this.routes
        .all()
        .filter((e) => e.owner === OPERATOR)
        .map((e) => ({ route: e.route, moduleType: e.moduleType, createdAtMs: e.createdAtMs })),
      deployments: structuredClone(this.deployments.all()),
    };
  }

  /**
   * Runs a change to durable state and saves it. If saving fails, the in-memory state is put
   * back as it was, so a failed write changes nothing.
   */
  mutateDurable<T>(change: () => T): T {
    const before = this.durableState();
    const operatorRoutes = this.routes.entriesOf(OPERATOR);
    const result = change();
    try {
      this.deps.state.save(this.durableState());
      this.lastSaveError = null;
    } catch (e) {
      this.lastSaveError = e instanceof Error ? e.message : String(e);
      this.restoreDurable(before, operatorRoutes);
      throw e instanceof DomainError
        ? e
        : new DomainError(
            'unavailable',
            `could not save NLB state: ${this.lastSaveError}; the change was not applied`,
          );
    }
    return result;
  }

  private restoreDurable(s: DurableState, operatorRoutes: RouteEntry[]): void {
    this.config = this.mergeConfig(s.config, this.deps.initialConfig ?? {});
    this.apiSections = sectionsOf(s.config);
    this.registry.setTimings(this.leaseTimings());
    this.selection.strategy = this.config.routing.strategy;
    this.routes.restoreOwner(OPERATOR, operatorRoutes);
    const restored = new Deployments(s.deployments);
    for (const d of this.deployments.all()) this.deployments.remove(d.moduleType);
    for (const d of restored.all()) this.deployments.put(d);
  }

  // ---- registry --------------------------------------------------------------------------

  /**
   * Counts a refusal because a limit was reached (mp_nlb_limit_hits_total) and logs it through
   * the rate-limited LimitLog; the caller then refuses.
   */
  noteLimit(hit: LimitHit): void {
    this.limitHits.set(hit.limit, (this.limitHits.get(hit.limit) ?? 0) + 1);
    this.limitLog.hit(hit.limit, { error: hit.message });
    this.emit({ type: 'limit', limit: hit.limit });
  }

  /**
   * Throws resource_exhausted (and notes the hit) when applying `routes` for `owner` would take
   * the routing table past limits.maxRoutes.
   */
  private checkRouteLimit(routes: readonly RouteSpec[], owner: string, replaceAll: boolean): void {
    const max = this.config.limits.maxRoutes;
    const ids = new Set(routes.map((r) => r.routeId));
    let added = 0;
    for (const id of ids) if (!this.routes.get(id)) added++;
    const removed = replaceAll ? [...this.routes.ownedIds(owner)].filter((id) => !ids.has(id)).length : 0;
    const after = this.routes.size + added - removed;
    if (added > 0 && after > max) {
      const message = `the routing table would hold ${after} routes; limits.maxRoutes is ${max}: remove routes or raise the limit`;
      this.noteLimit({ limit: 'routes', message });
      throw resourceExhausted(message);
    }
  }

  /** RegisterModule, on behalf of `caller` (domain/access.ts says who may register what). */
  register(
    spec: InstanceSpec,
    initialRoutes: RouteSpec[],
    initialHealth: Health,
    caller: Caller = SYSTEM_CALLER,
  ): InstanceRecord {
    const p = new Problems();
    validateInstanceSpec(p, spec);
    initialRoutes.forEach((r, i) => validateRoute(p, r, `initial_routes[${i}]`));
    if (initialRoutes.length > 256)
      p.add(`initial_routes has ${initialRoutes.length} routes; at most 256 are allowed`);
    p.check('registration');
    this.owners.checkRegister(
      caller,
      spec.instanceId,
      spec.moduleType.toLowerCase(),
      this.config.limits.maxRegistrationsPerToken,
      (hit) => this.noteLimit(hit),
    );
    const now = this.deps.clock.now();
    const withIds = initialRoutes.map((r) => ({ ...r, routeId: r.routeId || routeId(r, spec.instanceId) }));
    for (const r of withIds) {
      const e = this.routes.get(r.routeId);
      if (e && e.owner !== spec.instanceId) {
        throw new DomainError(
          'already_exists',
          `initial route ${r.routeId} belongs to ${e.owner || 'the operator'}; choose another route_id`,
        );
      }
    }
    this.checkRouteLimit(withIds, spec.instanceId, true);
    const { record, events } = this.registry.register(spec, initialHealth, now);
    this.owners.claim(spec.instanceId, caller.principal);
    this.counters.registrations++;
    this.routes.apply(withIds, spec.instanceId, () => spec.moduleType, true, now);
    if (!this.deployments.get(spec.moduleType)?.weights[spec.version]) {
      // A new version is durable deployment state; save it (best effort: registration must not fail on disk trouble).
      const known = this.deployments.get(spec.moduleType)?.weights;
      if (!known || !(spec.version in known)) {
        try {
          this.mutateDurable(() => this.deployments.observeVersion(spec.moduleType, spec.version, now));
        } catch (e) {
          this.deployments.observeVersion(spec.moduleType, spec.version, now);
          this.deps.logger.warn('could not save deployment state after registration', { err: String(e) });
        }
      }
    }
    this.emitRegistry(events);
    return record;
  }

  /** UnregisterModule. */
  unregister(
    instanceId: string,
    registrationId: string,
    graceful: boolean,
    drainTimeoutSeconds: number,
    caller: Caller = SYSTEM_CALLER,
  ): number {
    this.owners.checkAct(caller, instanceId, 'unregister');
    if (drainTimeoutSeconds < 0 || drainTimeoutSeconds > 86_400) {
      throw invalidArgument(
        `drain_timeout_seconds ${drainTimeoutSeconds} is out of range: use 0 (default) to 86400`,
      );
    }
    const { openConnections, events } = this.registry.unregister(
      instanceId,
      registrationId,
      graceful,
      drainTimeoutSeconds * 1000,
      this.deps.clock.now(),
    );
    this.emitRegistry(events);
    return openConnections;
  }

  /** Heartbeat. */
  heartbeat(
    instanceId: string,
    registrationId: string,
    reported: Health | null,
    stats: InstanceStats | null,
    caller: Caller = SYSTEM_CALLER,
  ) {
    this.owners.checkAct(caller, instanceId, 'heartbeat for');
    const now = this.deps.clock.now();
    this.counters.heartbeats++;
    const { outcome, events } = this.registry.heartbeat(instanceId, registrationId, reported, stats, now);
    if (outcome.acknowledged && stats) this.recordInstanceStats(outcome.instance, stats, now);
    this.emitRegistry(events);
    this.emit({
      type: 'heartbeat',
      instance: outcome.acknowledged ? outcome.instance : null,
      acknowledged: outcome.acknowledged,
    });
    return outcome;
  }

  /** The instance or a NOT_FOUND error. */
  instance(instanceId: string): InstanceRecord {
    const r = this.registry.get(instanceId);
    if (!r)
      throw notFound(
        `instance ${instanceId || '(empty id)'} is not registered; list instances with mpctl modules list`,
        { instance_id: instanceId },
      );
    return r;
  }

  /** ListModules. */
  listModules(type: ModuleTypeName | null, status: Health | null, q: QuerySpec): Page<InstanceRecord> {
    const where =
      type || status
        ? (r: InstanceRecord) => (!type || r.moduleType === type) && (!status || r.health === status)
        : undefined;
    // Sorted by id (the default): walk the registry's id order and keep only the page, with no
    // copy and no sort. Other sorts break ties by registration order, so they start from that.
    const byId = (q.sortBy || 'instance_id') === 'instance_id';
    const items = byId ? this.registry.sortedById() : this.registry.all();
    return applyQuery(items, q, INSTANCE_FIELDS, 'instance_id', { where, sortedBy: 'instance_id' });
  }

  /** Weight of an instance's version in its type's deployment. */
  weightOf(r: InstanceRecord): number {
    return this.deployments.get(r.moduleType)?.weights[r.version] ?? 0;
  }

  /** Versions of a module type that have registered instances. */
  registeredVersions(t: ModuleTypeName): Set<string> {
    return new Set(
      this.registry
        .all()
        .filter((r) => r.moduleType === t)
        .map((r) => r.version),
    );
  }

  // ---- config ----------------------------------------------------------------------------

  /** UpdateNLBConfig: validates one section and applies it (live where possible). */
  updateConfig(
    section: string,
    body: unknown,
    validateOnly: boolean,
  ): { requiresRestart: boolean; section: SectionName } {
    const name = sectionName(section);
    const change = parseSection(name, body);
    if (validateOnly) return { requiresRestart: change.requiresRestart, section: name };
    this.mutateDurable(() => {
      (this.config as Record<SectionName, unknown>)[name] = change.value;
      this.apiSections.add(name);
      this.applyLive(name);
    });
    this.emit({ type: 'config', section: name });
    return { requiresRestart: change.requiresRestart, section: name };
  }

  private applyLive(name: SectionName): void {
    if (name === 'heartbeat' || name === 'metrics') {
      this.registry.setTimings(this.leaseTimings());
      if (this.sweeper) this.restartSweeper();
    }
    if (name === 'routing') this.selection.strategy = this.config.routing.strategy;
  }

  // ---- routes ----------------------------------------------------------------------------

  /** Validates routes for UpdateRouting; returns the problems (empty = valid) and the normalised routes. */
  checkRoutes(
    routes: RouteSpec[],
    owner: string,
  ): { problems: string[]; routes: RouteSpec[]; moduleTypes: Map<string, ModuleTypeName> } {
    const p = new Problems();
    const ownerRecord = owner ? this.registry.get(owner) : undefined;
    if (owner && !ownerRecord) p.add(`source_instance_id ${owner} is not registered`);
    if (routes.length > 1024) p.add(`${routes.length} routes in one request; at most 1024 are allowed`);
    const moduleTypes = new Map<string, ModuleTypeName>();
    const seen = new Set<string>();
    const normalised = routes.map((r, i) => {
      const label = `routes[${i}]${r.routeId ? ` (${r.routeId})` : ''}`;
      validateRoute(p, r, label);
      const id = r.routeId || routeId(r, owner);
      if (seen.has(id)) p.add(`${label}: route_id ${id} appears twice in this request`);
      seen.add(id);
      const existing = this.routes.get(id);
      if (existing && existing.owner !== owner)
        p.add(`${label}: route_id ${id} belongs to ${existing.owner || 'the operator'}`);
      const mt = ownerRecord ? ownerRecord.moduleType : routeModuleType(r);
      // An unknown metadata.module_type was already reported by validateRoute.
      if (!mt && r.metadata.module_type === undefined)
        p.add(
          `${label}: say which module type serves it with metadata.module_type (ALB, DBLB, AILB or RTMP) or a protocol`,
        );
      else if (mt) moduleTypes.set(id, mt);
      return { ...r, routeId: id };
    });
    return { problems: p.list, routes: normalised, moduleTypes };
  }

  /** UpdateRouting (after checkRoutes passed). Operator routes are durable. */
  applyRoutes(
    routes: RouteSpec[],
    moduleTypes: Map<string, ModuleTypeName>,
    owner: string,
    replaceAll: boolean,
  ): number {
    this.checkRouteLimit(routes, owner, replaceAll);
    const now = this.deps.clock.now();
    const apply = () =>
      this.routes.apply(routes, owner, (r) => moduleTypes.get(r.routeId) ?? 'ALB', replaceAll, now);
    return owner === OPERATOR ? this.mutateDurable(apply) : apply();
  }

  /** GetRoutingTable. */
  routingTable(protocol: string | null, destination: string, q: QuerySpec): Page<RouteEntry> {
    const items = this.routes
      .all()
      .filter(
        (e) =>
          (!protocol || e.route.protocol === protocol) &&
          (!destination || e.route.destinationPattern.toLowerCase().includes(destination.toLowerCase())),
      );
    return applyQuery(items, q, ROUTE_FIELDS, 'priority_desc');
  }

  // ---- deployments -----------------------------------------------------------------------

  /** The deployment of a type, or a NOT_FOUND error naming what exists. */
  deployment(t: ModuleTypeName): Deployment {
    const d = this.deployments.get(t);
    if (!d)
      throw notFound(`module type ${t} has no deployment: no instance of it has registered yet`, {
        module_type: t,
      });
    return d;
  }

  /** UpdateDeployment. */
  updateDeployment(
    t: ModuleTypeName,
    action: 'STATUS' | 'SET_WEIGHT' | 'PROMOTE' | 'ROLLBACK' | 'PAUSE' | 'RESUME',
    a: {
      version: string;
      weight: number;
      promotionRate: number;
      immediate: boolean;
      validateOnly: boolean;
      reason: string;
      requestedBy: string;
    },
  ): { deployment: Deployment; message: string; previous?: string } {
    const now = this.deps.clock.now();
    const known = this.registeredVersions(t);
    const who = a.requestedBy ? ` by ${a.requestedBy}` : '';
    const run = <T>(f: () => T): T => (a.validateOnly ? f() : this.mutateDurable(f));
    let out: { deployment: Deployment; message: string; previous?: string };
    switch (action) {
      case 'STATUS':
        return { deployment: this.deployment(t), message: `${t}: ${this.deployment(t).phase}` };
      case 'SET_WEIGHT': {
        const d = run(() => this.deployments.setWeight(t, a.version, a.weight, known, now, a.validateOnly));
        out = { deployment: d, message: `${t} ${a.version} weight set to ${a.weight}${who}` };
        break;
      }
      case 'PROMOTE': {
        const d = run(() =>
          this.deployments.promote(
            t,
            a.version,
            a.promotionRate,
            a.immediate,
            known,
            now,
            this.config.rollout.steps,
            a.validateOnly,
          ),
        );
        out = { deployment: d, message: `${t} ${a.version}: ${d.reason}${who}` };
        break;
      }
      case 'ROLLBACK': {
        if (!this.deployment(t).stableVersion && !a.version)
          throw failedPrecondition(`${t} has no stable version to roll back to`);
        const r = run(() =>
          this.deployments.rollback(
            t,
            a.version,
            known,
            now,
            a.reason || `rolled back${who}`,
            'ROLLED_BACK',
            a.validateOnly,
          ),
        );
        out = {
          deployment: r.deployment,
          previous: r.previous,
          message: `${t} rolled back from ${r.previous} to ${r.deployment.stableVersion}${who}`,
        };
        break;
      }
      case 'PAUSE': {
        if (a.validateOnly) return { deployment: this.deployment(t), message: 'validation only' };
        const d = this.mutateDurable(() =>
          this.deployments.pause(t, a.version, now, a.reason || `paused${who}`),
        );
        out = {
          deployment: d,
          message: `${t} rollout of ${d.targetVersion} paused at ${d.weights[d.targetVersion]} %`,
        };
        break;
      }
      case 'RESUME': {
        if (a.validateOnly) return { deployment: this.deployment(t), message: 'validation only' };
        const d = this.mutateDurable(() =>
          this.deployments.resume(t, a.version, now, a.reason || `resumed${who}`),
        );
        out = {
          deployment: d,
          message: `${t} rollout of ${d.targetVersion} resumed at ${d.weights[d.targetVersion]} %`,
        };
        break;
      }
    }
    if (!a.validateOnly) {
      this.registryRevision++;
      this.deps.logger.info(out.message, { module_type: t, action });
      this.emit({ type: 'deployment', deployment: out.deployment, action });
    }
    return out;
  }

  /** The version with the most traffic for a type ('' when none). */
  activeVersion(t: ModuleTypeName): string {
    const d = this.deployments.get(t);
    return d ? activeVersion(d) : '';
  }

  // ---- metrics ---------------------------------------------------------------------------

  private recordInstanceStats(r: InstanceRecord, s: InstanceStats, now: number): void {
    let series = this.instanceSeries.get(r.instanceId);
    if (!series) {
      series = new InstanceSeries();
      this.instanceSeries.set(r.instanceId, series);
    }
    // Rates from the previous heartbeat's counters (a counter that went down was reset).
    const prev = series.latestPoint('requests_total');
    let rps = NaN; // unknown until there are two heartbeats to compare
    let errorRate = NaN;
    if (prev && now > prev.tsMs && s.totalRequests >= prev.value) {
      const dReq = s.totalRequests - prev.value;
      rps = dReq / ((now - prev.tsMs) / 1000);
      const dFail = s.failedRequests - (series.latest('requests_failed_total') ?? 0);
      errorRate = dReq > 0 ? Math.max(0, dFail) / dReq : 0;
    }
    const row = this.statsRow;
    row[0] = s.activeConnections;
    row[1] = s.cpuUsagePercent;
    row[2] = s.memoryUsageMb;
    row[3] = s.p99LatencyMs;
    row[4] = s.avgLatencyMs;
    row[5] = s.totalRequests;
    row[6] = s.failedRequests;
    row[7] = rps;
    row[8] = errorRate;
    series.record(now, row);
  }

  /** One instance's heartbeat series (and any it reported with ReportMetrics) in a time range. */
  instanceMetrics(instanceId: string, names: readonly string[], fromMs: number, toMs: number): SeriesData[] {
    const r = this.instance(instanceId);
    const labels = { instance: r.instanceId, module_type: r.moduleType, version: r.version };
    const own = this.instanceSeries.get(instanceId)?.query(names, labels, fromMs, toMs) ?? [];
    return [...own, ...this.metrics.query(names, { instance: instanceId }, fromMs, toMs)];
  }

  /** Every series in a time range: the NLB's, per type@version, and (optionally) per instance. */
  allMetrics(names: readonly string[], fromMs: number, toMs: number, perInstance: boolean): SeriesData[] {
    const out = this.metrics.query(names, {}, fromMs, toMs);
    if (!perInstance) return out;
    for (const r of this.registry.all()) {
      const labels = { instance: r.instanceId, module_type: r.moduleType, version: r.version };
      const rows = this.instanceSeries.get(r.instanceId)?.query(names, labels, fromMs, toMs);
      if (rows) out.push(...rows);
    }
    return out;
  }

  /** Records the NLB's own series and per type@version aggregates. */
  private recordAggregates(now: number): void {
    const all = this.registry.all();
    const m = this.metrics;
    m.record('nlb_registered_instances', {}, all.length, now);
    m.record('nlb_healthy_instances', {}, all.filter((r) => r.health === 'HEALTHY').length, now);
    m.record(
      'nlb_active_connections',
      {},
      all.reduce((a, r) => a + r.connections, 0),
      now,
    );
    m.record('nlb_heartbeats_total', {}, this.counters.heartbeats, now);
    m.record('nlb_routed_total', {}, this.counters.routed, now);
    m.record('nlb_routes', {}, this.routes.size, now);
    const groups = new Map<string, InstanceRecord[]>();
    for (const r of all) {
      const key = `${r.moduleType}@${r.version}`;
      const group = groups.get(key);
      if (group) group.push(r);
      else groups.set(key, [r]);
    }
    for (const [key, rs] of groups) {
      const [module_type, version] = key.split('@');
      const labels = { module_type, version };
      const latest = (name: InstanceField) => {
        const xs: number[] = [];
        for (const r of rs) {
          const v = this.instanceSeries.get(r.instanceId)?.latest(name);
          if (v !== undefined) xs.push(v);
        }
        return xs;
      };
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const avg = (xs: number[]) => (xs.length ? sum(xs) / xs.length : 0);
      m.record('instances', labels, rs.length, now);
      m.record('healthy_instances', labels, rs.filter((r) => r.health === 'HEALTHY').length, now);
      m.record(
        'weight',
        labels,
        this.deployments.get(module_type as ModuleTypeName)?.weights[version] ?? 0,
        now,
      );
      m.record('connections', labels, sum(rs.map((r) => r.stats?.activeConnections ?? 0)), now);
      m.record('requests_per_second', labels, sum(latest('requests_per_second')), now);
      m.record('error_rate', labels, avg(latest('error_rate')), now);
      m.record('latency_p99_ms', labels, Math.max(0, ...latest('latency_p99_ms')), now);
      m.record('cpu_percent', labels, avg(rs.map((r) => r.stats?.cpuUsagePercent ?? 0)), now);
    }
  }

  /** ReportMetrics: stores an instance's samples under its labels. */
  reportMetrics(
    instanceId: string,
    points: Array<{ name: string; value: number; labels: Record<string, string>; tsMs: number }>,
    caller: Caller = SYSTEM_CALLER,
  ): number {
    this.owners.checkAct(caller, instanceId, 'report metrics for');
    const r = this.instance(instanceId);
    const p = new Problems();
    if (points.length > 10_000)
      p.add(`${points.length} data points in one report; at most 10000 are allowed`);
    points.forEach((pt, i) => {
      if (!/^[a-zA-Z_:][a-zA-Z0-9_:]{0,127}$/.test(pt.name))
        p.add(`metrics[${i}].name "${pt.name.slice(0, 64)}" must match [a-zA-Z_:][a-zA-Z0-9_:]*`);
      if (!Number.isFinite(pt.value)) p.add(`metrics[${i}].value must be a finite number`);
      if (Object.keys(pt.labels).length > 16) p.add(`metrics[${i}] has more than 16 labels`);
    });
    p.check('metrics report');
    const now = this.deps.clock.now();
    for (const pt of points) {
      const ts = pt.tsMs > 0 && pt.tsMs <= now + 60_000 ? pt.tsMs : now;
      this.metrics.record(
        pt.name,
        { ...pt.labels, instance: r.instanceId, module_type: r.moduleType, version: r.version },
        pt.value,
        ts,
      );
    }
    return points.length;
  }
}

/** The known section names present in a stored config. */
function sectionsOf(config: Partial<NlbConfig>): Set<SectionName> {
  return new Set((Object.keys(config) as SectionName[]).filter((k) => SECTION_NAMES.includes(k)));
}

const INSTANCE_FIELDS = {
  instance_id: (r: InstanceRecord) => r.instanceId,
  module_type: (r: InstanceRecord) => r.moduleType,
  version: (r: InstanceRecord) => r.version,
  health_status: (r: InstanceRecord) => r.health,
  address: (r: InstanceRecord) => r.address,
  traffic_address: (r: InstanceRecord) => r.trafficAddress,
  current_connections: (r: InstanceRecord) => r.connections,
  max_connections: (r: InstanceRecord) => r.maxConnections,
  started_at: (r: InstanceRecord) => r.startedAtMs,
  registered_at: (r: InstanceRecord) => r.registeredAtMs,
  last_heartbeat: (r: InstanceRecord) => r.lastHeartbeatAtMs,
  draining: (r: InstanceRecord) => r.draining,
  cpu_usage_percent: (r: InstanceRecord) => r.stats?.cpuUsagePercent ?? 0,
};

const ROUTE_FIELDS = {
  route_id: (e: RouteEntry) => e.route.routeId,
  protocol: (e: RouteEntry) => e.route.protocol ?? '',
  destination_pattern: (e: RouteEntry) => e.route.destinationPattern,
  destination_port: (e: RouteEntry) => e.route.destinationPort,
  path_pattern: (e: RouteEntry) => e.route.pathPattern,
  priority: (e: RouteEntry) => e.route.priority,
  priority_desc: (e: RouteEntry) => -e.route.priority,
  module_type: (e: RouteEntry) => e.moduleType,
  owner: (e: RouteEntry) => e.owner,
  current_connections: (e: RouteEntry) => e.connections,
  created_at: (e: RouteEntry) => e.createdAtMs,
  last_used: (e: RouteEntry) => e.lastUsedMs,
};
