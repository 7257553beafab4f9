/**
 * A module controller (one per module type and version): owns its instances through an
 * instance provider, keeps their number at the desired count (replacing crashed ones), and
 * owns routes, rate limits and module config, which it persists and pushes to every instance.
 */
import { backoffDelay } from '../../shared/backoff.js';
import type { Clock, TimerHandle } from '../../shared/clock.js';
import {
  DomainError,
  failedPrecondition,
  invalidArgument,
  notFound,
  Problems,
  resourceExhausted,
} from '../../shared/errors.js';
import { LimitLog } from '../../shared/limit-log.js';
import type { Logger } from '../../shared/logger.js';
import type { Rng } from '../../shared/rng.js';
import type { RouteSpec } from '../../nlb/domain/types.js';
import { checkId, validateRoute } from '../../nlb/domain/validate.js';
import type { ControllerState, ControllerStore, ScalingBounds } from './controller-state.js';
import type { InstanceSnapshot } from './instance.js';
import type { ModuleTypePlugin } from './plugin.js';
import type {
  AdoptionRecord,
  InstanceHandle,
  InstanceLaunch,
  InstanceProvider,
} from './providers/provider.js';
import type { RateLimitSpec } from './token-bucket.js';

export interface ControllerOptions {
  plugin: ModuleTypePlugin;
  version: string;
  clock: Clock;
  rng: Rng;
  logger: Logger;
  provider: InstanceProvider;
  store: ControllerStore;
  /** Interface for instances' traffic listeners. */
  host: string;
  heartbeatIntervalMs: number;
  /** Instances at first start (when the store is empty). */
  initialInstances: number;
  defaultDrainTimeoutMs?: number;
  /**
   * Instances started at the same time when several are missing (default 8): their boot times
   * overlap instead of adding up, without flooding the provider.
   */
  startConcurrency?: number;
}

export const DEFAULT_START_CONCURRENCY = 8;

/** How one round of instance starts went. */
export interface StartReport {
  wanted: number;
  started: number;
  /** "id: reason" per failed start. */
  failed: string[];
  /** Not attempted: as many starts as run at once failed in a row (the provider is down or refusing). */
  skipped: number;
}

/** "started 7 of 10 instances; 3 failed: …", for logs, last_error and Scale replies. */
export function describeStarts(r: StartReport): string {
  const shown = r.failed.slice(0, 3).join('; ');
  const more = r.failed.length > 3 ? ` and ${r.failed.length - 3} more` : '';
  const skipped = r.skipped > 0 ? `; ${r.skipped} not attempted after the failures in a row` : '';
  return `started ${r.started} of ${r.wanted} instance(s); ${r.failed.length} failed: ${shown}${more}${skipped}; retrying with backoff`;
}

export interface ManagedInstance {
  handle: InstanceHandle;
  draining: boolean;
}

export const DEFAULT_SCALING: ScalingBounds = {
  minInstances: 0,
  maxInstances: 16,
  targetCpuPercent: 70,
  targetMemoryPercent: 80,
  targetConnections: 1000,
  cooldownSeconds: 60,
  autoScalingEnabled: true,
};

/** The managed instances; every change is reported (to persist what a restart must adopt). */
class InstanceTable extends Map<string, ManagedInstance> {
  onChange: () => void = () => undefined;

  override set(id: string, m: ManagedInstance): this {
    super.set(id, m);
    this.onChange();
    return this;
  }

  override delete(id: string): boolean {
    const had = super.delete(id);
    if (had) this.onChange();
    return had;
  }
}

/** The sequence number in an id made by newId (`alb-1.0-<seq>-<hex>`), 0 for other ids. */
const seqOf = (id: string) => Number(/-(\d+)-[0-9a-f]{4}$/.exec(id)?.[1] ?? 0);

/** Routes one module controller holds (each instance announces them all to the NLB). */
export const MAX_ROUTES = 256;
/** Rate-limit entries one module controller holds. */
export const MAX_RATE_LIMITS = 1024;

export class ModuleController {
  readonly instances = new InstanceTable();
  private state: ControllerState;
  private address = '';
  private queue: Promise<void> = Promise.resolve();
  private restarts = 0;
  private restartTimer: TimerHandle | null = null;
  private stopped = false;
  private seq = 0;
  readonly startedAtMs: number;
  lastError: string | null = null;
  /** Requests refused because a limit was reached, by limit name (GetMetrics limit_hits_total). */
  readonly limitHits = new Map<string, number>();
  private readonly limitLog: LimitLog;

  constructor(private readonly o: ControllerOptions) {
    this.startedAtMs = o.clock.now();
    this.limitLog = new LimitLog(o.logger, () => o.clock.now());
    const stored = o.store.load();
    this.state = stored ?? {
      desired: o.initialInstances,
      scaling: {
        ...DEFAULT_SCALING,
        maxInstances: Math.max(DEFAULT_SCALING.maxInstances, o.initialInstances),
      },
      routes: [],
      rateLimits: [],
      config: o.plugin.configSchema.parse({}),
      maxConnectionsPerInstance: 0,
      configUpdatedAtMs: o.clock.now(),
    };
    // The config schema may have grown defaults since the state was written.
    this.state.config = o.plugin.configSchema.parse(this.state.config);
    this.instances.onChange = () => this.saveInstances();
  }

  get plugin(): ModuleTypePlugin {
    return this.o.plugin;
  }

  get version(): string {
    return this.o.version;
  }

  get controllerAddress(): string {
    return this.address;
  }

  get desired(): number {
    return this.state.desired;
  }

  get scaling(): ScalingBounds {
    return this.state.scaling;
  }

  get routes(): RouteSpec[] {
    return this.state.routes;
  }

  get rateLimits(): RateLimitSpec[] {
    return this.state.rateLimits;
  }

  get config(): unknown {
    return this.state.config;
  }

  get configUpdatedAtMs(): number {
    return this.state.configUpdatedAtMs;
  }

  get storeLocation(): string {
    return this.o.store.location;
  }

  /** Instances not draining. */
  liveInstances(): ManagedInstance[] {
    return [...this.instances.values()].filter((i) => !i.draining);
  }

  /** The managed instance, or NOT_FOUND naming what exists. */
  instance(id: string): ManagedInstance {
    const m = this.instances.get(id);
    if (!m) {
      throw notFound(
        `instance ${id} is not managed by this ${this.o.plugin.type} ${this.o.version} controller (it has: ${[...this.instances.keys()].join(', ') || 'none'})`,
        {
          instance_id: id,
        },
      );
    }
    return m;
  }

  /** Starts instances up to the desired count; `address` is this controller's ModuleService address. */
  async start(address: string): Promise<void> {
    this.address = address;
    await this.adoptPrevious();
    await this.reconcile();
  }

  private launch(id: string): InstanceLaunch {
    return {
      id,
      version: this.o.version,
      controllerAddress: this.address,
      host: this.o.host,
      heartbeatIntervalMs: this.o.heartbeatIntervalMs,
      snapshot: this.snapshot(),
    };
  }

  /**
   * After a controller restart: re-attaches to the instances the previous run left running (its
   * persisted AdoptionRecords), so they count toward the desired count instead of being started
   * a second time. One that is gone, not the same instance or unfit is dropped (told to stop when
   * it still runs); reconcile then starts replacements.
   */
  private adoptPrevious(): Promise<void> {
    return this.serial(async () => {
      const { provider } = this.o;
      if (!provider.adopt) return;
      const records = this.o.store.loadInstances();
      if (records.length === 0) return;
      const adopted = await Promise.all(
        records.map(async (r: AdoptionRecord) => {
          try {
            if (r.version !== this.o.version)
              throw new Error(`it runs version ${r.version}, this controller ${this.o.version}`);
            return await provider.adopt!(r, this.launch(r.id));
          } catch (e) {
            this.o.logger.warn(
              `did not adopt instance ${r.id}: ${(e as Error).message}; a new one replaces it`,
            );
            return null;
          }
        }),
      );
      for (const handle of adopted) {
        if (!handle || this.instances.has(handle.id)) continue;
        this.seq = Math.max(this.seq, seqOf(handle.id));
        this.instances.set(handle.id, { handle, draining: false });
        handle.onUnexpectedExit((reason) => this.onExit(handle.id, reason));
        this.o.logger.info(`instance ${handle.id} adopted`, {
          traffic: handle.trafficAddress,
          pid: handle.pid,
        });
      }
      // Forget the ones not adopted, even when every one was lost.
      this.saveInstances();
    });
  }

  /** Persists how to find the running instances again; a failed save costs only a later adoption. */
  private saveInstances(): void {
    if (!this.o.provider.adopt) return;
    const records = [...this.instances.values()].flatMap((m) =>
      m.handle.adoption ? [m.handle.adoption] : [],
    );
    try {
      this.o.store.saveInstances(records);
    } catch (e) {
      this.o.logger.warn(
        `could not save the instance list (a restart would replace them): ${(e as Error).message}`,
      );
    }
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  snapshot(): InstanceSnapshot {
    return {
      routes: this.state.routes,
      rateLimits: this.state.rateLimits,
      config: this.state.config,
      maxConnections: this.state.maxConnectionsPerInstance,
    };
  }

  private newId(): string {
    const v = this.o.version.replace(/[^A-Za-z0-9._-]/g, '_');
    for (;;) {
      this.seq++;
      const id = `${this.o.plugin.type.toLowerCase()}-${v}-${this.seq}-${this.o.rng.int(0, 0xffff).toString(16).padStart(4, '0')}`;
      // Adopted instances keep their ids; never hand one out twice.
      if (!this.instances.has(id)) return id;
    }
  }

  /**
   * Brings the number of live instances to the desired count; resolves with how the starts went
   * (null when none were needed).
   */
  reconcile(): Promise<StartReport | null> {
    return this.serial(async () => {
      if (this.stopped || !this.address) return null;
      const missing = this.state.desired - this.liveInstances().length;
      let report: StartReport | null = null;
      if (missing > 0) {
        report = await this.startMany(missing);
        if (report.failed.length > 0) {
          this.lastError = describeStarts(report);
          this.o.logger.error(this.lastError);
          // A provider that keeps failing backs off like instances that keep crashing.
          this.restarts++;
          this.scheduleRestart();
          return report;
        }
        this.lastError = null;
      }
      const live = this.liveInstances();
      const surplus = live.length - this.state.desired;
      if (surplus > 0) {
        // Newest first: the oldest instances have the warmest caches and pools.
        const victims = live.sort((a, b) => b.handle.startedAtMs - a.handle.startedAtMs).slice(0, surplus);
        await Promise.all(victims.map((m) => this.retire(m, true, this.o.defaultDrainTimeoutMs ?? 30_000)));
      }
      return report;
    });
  }

  /**
   * Starts `n` instances, `startConcurrency` at a time. A failed start does not cancel the
   * others; but after as many failures in a row as run at once, no more are launched (the
   * provider is down or refusing, and would only be flooded): the retry with backoff takes over.
   */
  private async startMany(n: number): Promise<StartReport> {
    const width = Math.max(1, Math.min(n, this.o.startConcurrency ?? DEFAULT_START_CONCURRENCY));
    const report: StartReport = { wanted: n, started: 0, failed: [], skipped: 0 };
    let launched = 0;
    let failedInARow = 0;
    const lane = async () => {
      while (launched < n && !this.stopped && failedInARow < width) {
        launched++;
        const id = this.newId();
        try {
          const handle = await this.o.provider.start(this.launch(id));
          this.instances.set(id, { handle, draining: false });
          handle.onUnexpectedExit((reason) => this.onExit(id, reason));
          this.o.logger.info(`instance ${id} started`, { traffic: handle.trafficAddress, pid: handle.pid });
          report.started++;
          failedInARow = 0;
        } catch (e) {
          failedInARow++;
          report.failed.push(`${id}: ${(e as Error).message}`);
          this.o.logger.warn(`could not start instance ${id}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: width }, lane));
    report.skipped = this.stopped ? 0 : n - launched;
    return report;
  }

  private onExit(id: string, reason: string): void {
    if (!this.instances.has(id)) return;
    this.instances.delete(id);
    this.o.logger.warn(`instance ${id} ended unexpectedly (${reason}); replacing it`, {
      desired: this.state.desired,
    });
    this.restarts++;
    this.scheduleRestart();
  }

  /** Replaces lost instances, backing off when they keep dying (0.2 s doubling to 30 s). */
  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    const delay = backoffDelay(this.restarts, { initialMs: 200, maxMs: 30_000, jitter: 0 });
    this.restartTimer = this.o.clock.setTimeout(() => {
      this.restartTimer = null;
      void this.reconcile();
    }, delay);
    // Forgive old crashes once the instances have stayed up for a while.
    this.o.clock.setTimeout(() => (this.restarts = Math.max(0, this.restarts - 1)), 60_000);
  }

  /** Drains (or stops) an instance and forgets it. */
  private async retire(m: ManagedInstance, graceful: boolean, timeoutMs: number): Promise<void> {
    m.draining = true;
    try {
      await m.handle.stop(graceful, timeoutMs);
    } catch (e) {
      this.o.logger.warn(`instance ${m.handle.id} did not stop cleanly: ${(e as Error).message}`);
    }
    this.instances.delete(m.handle.id);
    this.o.logger.info(`instance ${m.handle.id} stopped`, { graceful });
  }

  private persist(next: ControllerState): void {
    this.o.store.save(next);
    this.state = next;
  }

  /** Scale: new desired count (0 = keep) and optional new bounds. */
  async scale(
    desired: number,
    bounds: ScalingBounds | undefined,
    immediate: boolean,
  ): Promise<{ current: number; desired: number; startProblem?: string }> {
    const p = new Problems();
    const b = bounds ?? this.state.scaling;
    if (bounds) {
      if (bounds.minInstances < 0 || bounds.maxInstances < 0)
        p.add('config.min_instances and config.max_instances must not be negative');
      if (bounds.minInstances > bounds.maxInstances)
        p.add(
          `config.min_instances ${bounds.minInstances} exceeds config.max_instances ${bounds.maxInstances}`,
        );
      if (bounds.maxInstances > 1000)
        p.add(`config.max_instances ${bounds.maxInstances} is over the limit of 1000 per controller`);
      if (bounds.targetCpuPercent < 0 || bounds.targetCpuPercent > 100)
        p.add(`config.target_cpu_percent ${bounds.targetCpuPercent} is out of range 0-100`);
      if (bounds.cooldownSeconds < 0) p.add('config.cooldown_seconds must not be negative');
    }
    if (!Number.isInteger(desired) || desired < 0)
      p.add(`desired_instances ${desired} must be 0 (keep) or more`);
    else if (desired > 0 && (desired < b.minInstances || desired > b.maxInstances)) {
      p.add(
        `desired_instances ${desired} is outside the bounds ${b.minInstances}-${b.maxInstances}; change config.min_instances/max_instances too`,
      );
    }
    p.check('scale request');
    const target =
      desired > 0 ? desired : Math.min(b.maxInstances, Math.max(b.minInstances, this.state.desired));
    this.persist({ ...this.state, desired: target, scaling: { ...b } });
    const work = this.reconcile();
    if (!immediate) {
      void work;
      return { current: this.liveInstances().length, desired: target };
    }
    // Waited for: say when only some of the instances could be started.
    const report = await work;
    return {
      current: this.liveInstances().length,
      desired: target,
      ...(report?.failed.length ? { startProblem: describeStarts(report) } : {}),
    };
  }

  /** Pushes the current snapshot to every instance; returns per-instance failures. */
  private async pushAll(): Promise<string[]> {
    const snap = this.snapshot();
    const results = await Promise.all(
      [...this.instances.values()].map(async (m) => {
        try {
          await m.handle.apply(snap);
          return null;
        } catch (e) {
          return `${m.handle.id}: ${(e as Error).message}`;
        }
      }),
    );
    return results.filter((r): r is string => r !== null);
  }

  /** Validates routes (as the NLB would) and the module-specific rules. */
  private checkRoutes(routes: RouteSpec[]): void {
    const p = new Problems();
    const seen = new Set<string>();
    routes.forEach((r, i) => {
      const label = `routes[${i}]`;
      if (!r.routeId)
        p.add(`${label}.route_id is required (it names the route for GetRoutes and DeleteRoute)`);
      validateRoute(p, r, label);
      if (r.routeId && seen.has(r.routeId)) p.add(`${label}.route_id ${r.routeId} appears twice`);
      seen.add(r.routeId);
      if (r.protocol && !this.o.plugin.protocols.includes(r.protocol)) {
        p.add(
          `${label}.protocol ${r.protocol} is not served by ${this.o.plugin.type} (use ${this.o.plugin.protocols.join(', ')})`,
        );
      }
    });
    p.check('routes');
    if (routes.length > MAX_ROUTES)
      this.refuse('routes', `${routes.length} routes; at most ${MAX_ROUTES} per module (delete some first)`);
  }

  /** Counts and logs a limit hit, then refuses the request with RESOURCE_EXHAUSTED. */
  private refuse(limit: string, message: string): never {
    this.limitHits.set(limit, (this.limitHits.get(limit) ?? 0) + 1);
    this.limitLog.hit(limit, { error: message });
    throw resourceExhausted(message, { limit });
  }

  /** UpdateRoutes: add/replace (or replace all), persist, push; instances re-announce them to the NLB. */
  async updateRoutes(
    routes: RouteSpec[],
    replaceAll: boolean,
  ): Promise<{ updated: number; failures: string[] }> {
    this.checkRoutes(routes);
    const next = replaceAll
      ? [...routes]
      : [...this.state.routes.filter((r) => !routes.some((n) => n.routeId === r.routeId)), ...routes];
    this.checkRoutes(next);
    this.persist({ ...this.state, routes: next });
    return { updated: routes.length, failures: await this.pushAll() };
  }

  /** DeleteRoute. */
  async deleteRoute(routeId: string): Promise<string[]> {
    if (!this.state.routes.some((r) => r.routeId === routeId)) {
      throw notFound(
        `route ${routeId} does not exist (routes: ${this.state.routes.map((r) => r.routeId).join(', ') || 'none'})`,
        { route_id: routeId },
      );
    }
    this.persist({ ...this.state, routes: this.state.routes.filter((r) => r.routeId !== routeId) });
    return this.pushAll();
  }

  /** SetRateLimit (create or replace). */
  async setRateLimit(l: RateLimitSpec): Promise<string[]> {
    const p = new Problems();
    checkId(p, 'limit.limit_id', l.limitId);
    for (const [f, v] of [
      ['requests_per_second', l.requestsPerSecond],
      ['requests_per_minute', l.requestsPerMinute],
      ['requests_per_hour', l.requestsPerHour],
      ['burst_size', l.burstSize],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 1e9)
        p.add(`limit.${f} ${v} is out of range: use 0 (off) to 1000000000`);
    }
    if (l.requestsPerSecond === 0 && l.requestsPerMinute === 0 && l.requestsPerHour === 0) {
      p.add('limit sets no window: give requests_per_second, requests_per_minute or requests_per_hour');
    }
    if (l.target.length > 256) p.add('limit.target is longer than 256 characters');
    const others = this.state.rateLimits.filter((x) => x.limitId !== l.limitId);
    p.check('rate limit');
    if (others.length >= MAX_RATE_LIMITS)
      this.refuse(
        'rate_limits',
        `at most ${MAX_RATE_LIMITS} rate limits per module: remove one (RemoveRateLimit) before adding ${l.limitId}`,
      );
    this.persist({ ...this.state, rateLimits: [...others, { ...l, target: l.target || '*' }] });
    return this.pushAll();
  }

  /** RemoveRateLimit. */
  async removeRateLimit(limitId: string): Promise<string[]> {
    if (!this.state.rateLimits.some((l) => l.limitId === limitId)) {
      throw notFound(
        `rate limit ${limitId} does not exist (limits: ${this.state.rateLimits.map((l) => l.limitId).join(', ') || 'none'})`,
        { limit_id: limitId },
      );
    }
    this.persist({ ...this.state, rateLimits: this.state.rateLimits.filter((l) => l.limitId !== limitId) });
    return this.pushAll();
  }

  /** Validates a module config body; returns the parsed config or the problems. */
  validateConfig(body: unknown): { ok: true; config: unknown } | { ok: false; problems: string[] } {
    const r = this.o.plugin.configSchema.safeParse(body);
    if (r.success) return { ok: true, config: r.data };
    return {
      ok: false,
      problems: r.error.issues.map(
        (i) =>
          `${['config', ...i.path.map(String)].join('.')}: ${i.code === 'unrecognized_keys' ? `unknown field(s) ${(i as { keys: string[] }).keys.join(', ')}` : i.message}`,
      ),
    };
  }

  /** UpdateConfig (already validated): persist and push live. */
  async updateConfig(config: unknown, maxConnectionsPerInstance?: number): Promise<string[]> {
    this.persist({
      ...this.state,
      config,
      maxConnectionsPerInstance: maxConnectionsPerInstance ?? this.state.maxConnectionsPerInstance,
      configUpdatedAtMs: this.o.clock.now(),
    });
    return this.pushAll();
  }

  /** Reload: re-read durable state and push it to instances. */
  async reload(): Promise<string[]> {
    const stored = this.o.store.load();
    if (stored) {
      const parsed = this.validateConfig(stored.config);
      if (!parsed.ok)
        throw new DomainError(
          'invalid_argument',
          `stored config is invalid, kept the running one: ${parsed.problems.join('; ')}`,
        );
      this.state = { ...stored, config: parsed.config };
    }
    const failures = await this.pushAll();
    void this.reconcile();
    return failures;
  }

  /** Drains one instance (it stays managed until stopped) or all; returns connections still open. */
  async drain(id: string, timeoutMs: number): Promise<{ drained: number; remaining: number }> {
    const targets = id ? [this.instance(id)] : [...this.instances.values()];
    const remaining = await Promise.all(
      targets.map((m) => {
        m.draining = true;
        return m.handle.drain(timeoutMs);
      }),
    );
    return { drained: targets.length, remaining: remaining.reduce((a, b) => a + b, 0) };
  }

  /** Shutdown of one instance: it is not replaced (desired count goes down by one). */
  async shutdownInstance(id: string, graceful: boolean, timeoutMs: number): Promise<void> {
    const m = this.instance(id);
    if (m.draining && !graceful) throw failedPrecondition(`instance ${id} is already stopping`);
    const desired = Math.max(this.state.scaling.minInstances, this.state.desired - 1);
    if (desired === this.state.desired) {
      throw failedPrecondition(
        `stopping ${id} would go below min_instances ${this.state.scaling.minInstances}; lower it with Scale first, or Drain the instance`,
      );
    }
    this.persist({ ...this.state, desired });
    await this.serial(() => this.retire(m, graceful, timeoutMs));
  }

  /** Stops every instance (graceful drains first) and the restart machinery. */
  async stop(graceful: boolean, timeoutMs: number): Promise<void> {
    this.stopped = true;
    this.restartTimer?.cancel();
    await this.queue;
    await Promise.all([...this.instances.values()].map((m) => this.retire(m, graceful, timeoutMs)));
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Checks a request's instance id: empty (the controller) or one it manages. */
  requireInstanceOrController(id: string): void {
    if (id) this.instance(id);
  }

  /** Refuses requests naming a module type other than this controller's. */
  checkType(typeName: string | null): void {
    if (typeName && typeName !== this.o.plugin.type)
      throw invalidArgument(`this controller serves ${this.o.plugin.type}, not ${typeName}`);
  }
}
