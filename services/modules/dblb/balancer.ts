/**
 * Connection admission for the DBLB: new-connection rate limits (instance and route), then a
 * slot on a backend of the route's pool within the backend's and the route's connection
 * limits; when none is free the connection waits in a FIFO queue for `queueTimeoutMs`.
 * Time comes from the injected Clock; no I/O here.
 */
import type { Clock, TimerHandle } from '../../shared/clock.js';
import { RateLimiter } from '../runtime/token-bucket.js';
import type { DblbConfig } from './config.js';
import {
  chooseRoute,
  pickBackend,
  routesOf,
  type BackendView,
  type DbRoute,
  type RouteFacts,
} from './routing.js';

export type RefusalReason = 'no_route' | 'down' | 'full' | 'rate_limited' | 'queue_full' | 'closed';
/** Refusals because a limit was reached (the client hears "too many connections"). */
export const LIMIT_REASONS: ReadonlySet<string> = new Set<RefusalReason>([
  'full',
  'queue_full',
  'rate_limited',
]);

/** A held slot: one connection counted on its backend and route until `release()`. */
export interface Lease {
  route: DbRoute;
  backend: BackendView;
  /** Gives the slot back (idempotent). */
  release(): void;
}

export type Admission = { ok: true; lease: Lease } | { ok: false; reason: RefusalReason; message: string };

interface Waiter {
  route: DbRoute;
  exclude: ReadonlySet<string>;
  resolve(a: Admission): void;
  timer: TimerHandle;
}

const limiter = (id: string, perSecond: number, burst: number, nowMs: number) =>
  perSecond > 0
    ? new RateLimiter(
        {
          limitId: id,
          target: '',
          requestsPerSecond: perSecond,
          requestsPerMinute: 0,
          requestsPerHour: 0,
          burstSize: burst,
          enabled: true,
          metadata: {},
        },
        nowMs,
      )
    : null;

export class Balancer {
  private routes: DbRoute[] = [];
  private readonly backends = new Map<string, BackendView>();
  private readonly routeActive = new Map<string, number>();
  private routeLimiters = new Map<string, RateLimiter | null>();
  private globalLimiter: RateLimiter | null = null;
  private queue: Waiter[] = [];
  private turn = 0;
  private closed = false;
  private config!: DblbConfig;

  constructor(
    private readonly clock: Clock,
    config: DblbConfig,
  ) {
    this.apply(config);
  }

  /** Takes a new config: backends keep their counts and health when name and address are unchanged. */
  apply(config: DblbConfig): void {
    const now = this.clock.now();
    const old = new Map(this.backends);
    this.backends.clear();
    for (const b of config.backends) {
      const prev = old.get(b.name);
      const same = prev && prev.address === b.address;
      this.backends.set(b.name, {
        name: b.name,
        address: b.address,
        maxConnections: b.maxConnections,
        active: same ? prev.active : 0,
        healthy: same ? prev.healthy : true,
      });
    }
    this.routes = routesOf(config);
    this.routeLimiters = new Map(
      this.routes.map((r) => [r.name, limiter(`route:${r.name}`, r.connectionsPerSecond, r.burst, now)]),
    );
    const l = config.limits;
    if (
      !this.config ||
      this.config.limits.connectionsPerSecond !== l.connectionsPerSecond ||
      this.config.limits.burst !== l.burst
    )
      this.globalLimiter = limiter('instance', l.connectionsPerSecond, l.burst, now);
    this.config = config;
    this.pump();
  }

  /** The route for these facts, or null. */
  route(facts: RouteFacts): DbRoute | null {
    return chooseRoute(this.routes, facts);
  }

  /** Every route (explicit or implicit). */
  allRoutes(): readonly DbRoute[] {
    return this.routes;
  }

  backend(name: string): BackendView | undefined {
    return this.backends.get(name);
  }

  allBackends(): BackendView[] {
    return [...this.backends.values()];
  }

  /**
   * Marks a backend healthy or not: a recovery lets queued connections through; queued
   * connections whose pool has no healthy backend left are refused at once.
   */
  setHealthy(name: string, healthy: boolean): void {
    const b = this.backends.get(name);
    if (!b || b.healthy === healthy) return;
    b.healthy = healthy;
    this.pump();
  }

  /** Connections on a route now. */
  routeConnections(name: string): number {
    return this.routeActive.get(name) ?? 0;
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Admits a new connection on `route`: rate limits first (unless `retry`, a second try after a
   * failed connect), then a slot now or after waiting in the queue.
   */
  admit(route: DbRoute, opts: { exclude?: ReadonlySet<string>; retry?: boolean } = {}): Promise<Admission> {
    if (this.closed) return Promise.resolve(refuse('closed', 'the balancer is closing'));
    const exclude = opts.exclude ?? new Set<string>();
    if (!opts.retry) {
      const now = this.clock.now();
      if (this.globalLimiter && !this.globalLimiter.tryTake(now))
        return Promise.resolve(
          refuse('rate_limited', 'too many new connections per second on this instance'),
        );
      const rl = this.routeLimiters.get(route.name);
      if (rl && !rl.tryTake(now))
        return Promise.resolve(
          refuse('rate_limited', `too many new connections per second on route ${route.name}`),
        );
    }
    const now = this.tryAcquire(route, exclude);
    if (now.ok || now.reason !== 'full') return Promise.resolve(now);
    const { maxQueued, queueTimeoutMs } = this.config.limits;
    if (queueTimeoutMs === 0 || this.queue.length >= maxQueued)
      return Promise.resolve(refuse(queueTimeoutMs === 0 ? 'full' : 'queue_full', now.message));
    return new Promise<Admission>((resolve) => {
      const w: Waiter = {
        route,
        exclude,
        resolve,
        timer: this.clock.setTimeout(() => {
          this.queue = this.queue.filter((x) => x !== w);
          resolve(refuse('full', `${now.message}; waited ${queueTimeoutMs} ms`));
        }, queueTimeoutMs),
      };
      this.queue.push(w);
    });
  }

  /** Refuses every queued connection and every later one. */
  close(): void {
    this.closed = true;
    for (const w of this.queue.splice(0)) {
      w.timer.cancel();
      w.resolve(refuse('closed', 'the balancer is closing'));
    }
  }

  private tryAcquire(route: DbRoute, exclude: ReadonlySet<string>): Admission {
    const inRoute = this.routeActive.get(route.name) ?? 0;
    if (route.maxConnections > 0 && inRoute >= route.maxConnections)
      return refuse('full', `route ${route.name} has its ${route.maxConnections} connections in use`);
    const pool = route.backends.map((n) => this.backends.get(n));
    const pick = pickBackend(pool, exclude, this.turn++);
    if (pick.kind === 'down') return refuse('down', `no healthy backend for route ${route.name}`);
    if (pick.kind === 'full')
      return refuse('full', `every backend of route ${route.name} is at its connection limit`);
    const b = pick.backend;
    b.active++;
    this.routeActive.set(route.name, inRoute + 1);
    let released = false;
    return {
      ok: true,
      lease: {
        route,
        backend: b,
        release: () => {
          if (released) return;
          released = true;
          b.active = Math.max(0, b.active - 1);
          this.routeActive.set(route.name, Math.max(0, (this.routeActive.get(route.name) ?? 1) - 1));
          this.pump();
        },
      },
    };
  }

  /** Lets queued connections in, in order, while slots are free; refuses those whose pool is down. */
  private pump(): void {
    if (this.queue.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.queue) {
      const a = this.tryAcquire(w.route, w.exclude);
      if (!a.ok && a.reason === 'full') still.push(w);
      else {
        w.timer.cancel();
        w.resolve(a);
      }
    }
    this.queue = still;
  }
}

const refuse = (reason: RefusalReason, message: string): Admission => ({ ok: false, reason, message });
