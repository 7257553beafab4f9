/**
 * A pool of backends behind one name: weighted balancing (smooth weighted round robin, as nginx
 * does it, or least outstanding requests), health from active checks, and passive ejection of a
 * backend after consecutive failures (for a while that grows with repeated ejections, as Envoy's
 * outlier detection does). Each backend keeps its own keep-alive connections.
 */
import { parseHostPort } from '../../../nlb/domain/validate.js';
import { ConnectionPool, type ConnectionPoolOptions } from './connection-pool.js';

export type Balancing = 'round_robin' | 'least_request';

export interface BackendSpec {
  name: string;
  address: string;
  weight: number;
}

export interface EjectionPolicy {
  /** Consecutive failures (connection errors, timeouts, 502/503/504) that eject; 0 = never. */
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** Never eject more than this share of a pool's backends. */
  maxEjectedPercent: number;
}

export type ConnectionSettings = Omit<ConnectionPoolOptions, 'host' | 'port'>;

export class Backend {
  readonly host: string;
  readonly port: number;
  /** Requests in flight. */
  active = 0;
  /** From active health checks (true until a check says otherwise). */
  healthy = true;
  ejectedUntilMs = 0;
  ejections = 0;
  consecutiveFailures = 0;
  /** Smooth weighted round robin state. */
  currentWeight = 0;
  requests = 0;
  failures = 0;
  readonly connections: ConnectionPool;

  constructor(
    public spec: BackendSpec,
    settings: ConnectionSettings,
    nowMs: number,
    onActivity?: () => void,
  ) {
    const hp = parseHostPort(spec.address);
    if (!hp) throw new Error(`backend ${spec.name}: "${spec.address}" is not host:port`);
    this.host = hp.host;
    this.port = hp.port;
    this.connections = new ConnectionPool({ ...settings, host: hp.host, port: hp.port }, nowMs, onActivity);
  }

  get name(): string {
    return this.spec.name;
  }

  /** Whether it takes new requests now. */
  usable(nowMs: number): boolean {
    return this.spec.weight > 0 && this.healthy && this.ejectedUntilMs <= nowMs;
  }

  /** Which state it is in, for status output. */
  state(nowMs: number): 'healthy' | 'unhealthy' | 'ejected' | 'drained' {
    if (!this.healthy) return 'unhealthy';
    if (this.ejectedUntilMs > nowMs) return 'ejected';
    return this.spec.weight === 0 ? 'drained' : 'healthy';
  }
}

/** What happened to a backend, for the owner to count and log. */
export type BackendEvent =
  | { kind: 'ejected'; backend: string; forMs: number }
  | { kind: 'unhealthy' | 'healthy'; backend: string; reason: string };

export class BackendPool {
  private backendsValue: Backend[] = [];
  private lastPick = 0;

  constructor(
    readonly name: string,
    public balancing: Balancing,
    public ejection: EjectionPolicy,
    private readonly onEvent: (e: BackendEvent) => void,
    /** Passed to every backend's connections (see ConnectionPool). */
    private readonly onActivity?: () => void,
  ) {}

  get backends(): readonly Backend[] {
    return this.backendsValue;
  }

  /**
   * Replaces the backend list. Backends whose name, address and connection settings are unchanged
   * keep their connections, health and ejection state.
   */
  update(specs: readonly BackendSpec[], settings: ConnectionSettings, nowMs: number): void {
    const old = new Map(this.backendsValue.map((b) => [b.name, b]));
    const next: Backend[] = [];
    for (const spec of specs) {
      const prev = old.get(spec.name);
      if (
        prev &&
        prev.spec.address === spec.address &&
        JSON.stringify(settingsOf(prev.connections.options)) === JSON.stringify(settings)
      ) {
        old.delete(spec.name);
        prev.spec = spec;
        next.push(prev);
        continue;
      }
      next.push(new Backend(spec, settings, nowMs, this.onActivity));
    }
    for (const b of old.values()) b.connections.close();
    this.backendsValue = next;
  }

  /**
   * The backend for the next request, skipping `exclude` (a retry goes elsewhere when it can);
   * null when none is usable.
   */
  pick(nowMs: number, exclude: Backend | null = null): Backend | null {
    const list = this.backendsValue;
    if (list.length === 1) {
      const b = list[0];
      return b !== exclude && b.usable(nowMs) ? b : null;
    }
    return this.balancing === 'least_request'
      ? this.leastRequest(list, nowMs, exclude)
      : this.smoothRoundRobin(list, nowMs, exclude);
  }

  /** nginx's smooth weighted round robin: even spreading, exact weights over a cycle. */
  private smoothRoundRobin(list: readonly Backend[], nowMs: number, exclude: Backend | null): Backend | null {
    let best: Backend | null = null;
    let total = 0;
    for (const b of list) {
      if (b === exclude || !b.usable(nowMs)) continue;
      b.currentWeight += b.spec.weight;
      total += b.spec.weight;
      if (!best || b.currentWeight > best.currentWeight) best = b;
    }
    if (best) best.currentWeight -= total;
    return best;
  }

  /** Fewest requests in flight relative to weight; ties rotate so equal backends share. */
  private leastRequest(list: readonly Backend[], nowMs: number, exclude: Backend | null): Backend | null {
    let best: Backend | null = null;
    let bestScore = Infinity;
    const n = list.length;
    const start = (this.lastPick = (this.lastPick + 1) % n);
    for (let k = 0; k < n; k++) {
      const b = list[(start + k) % n];
      if (b === exclude || !b.usable(nowMs)) continue;
      const score = (b.active + 1) / b.spec.weight;
      if (score < bestScore) {
        best = b;
        bestScore = score;
      }
    }
    return best;
  }

  /** A request through `b` went well (resets its failure streak). */
  succeeded(b: Backend): void {
    b.consecutiveFailures = 0;
  }

  /** A request through `b` failed at the gateway level; may eject it. */
  failed(b: Backend, nowMs: number): void {
    b.failures++;
    b.consecutiveFailures++;
    const p = this.ejection;
    if (p.consecutiveFailures <= 0 || b.consecutiveFailures < p.consecutiveFailures) return;
    if (b.ejectedUntilMs > nowMs) return;
    const ejected = this.backendsValue.filter((x) => x.ejectedUntilMs > nowMs).length;
    if (((ejected + 1) * 100) / this.backendsValue.length > p.maxEjectedPercent && ejected > 0) return;
    b.ejections++;
    const forMs = Math.min(p.maxEjectionMs, p.baseEjectionMs * b.ejections);
    b.ejectedUntilMs = nowMs + forMs;
    b.consecutiveFailures = 0;
    this.onEvent({ kind: 'ejected', backend: b.name, forMs });
  }

  /** Sets a backend's health from an active check. */
  setHealth(b: Backend, healthy: boolean, reason: string): void {
    if (b.healthy === healthy) return;
    b.healthy = healthy;
    if (healthy) {
      // Back in rotation: forget old ejections so the next one starts short again.
      b.ejectedUntilMs = 0;
      b.ejections = 0;
      b.consecutiveFailures = 0;
    }
    this.onEvent({ kind: healthy ? 'healthy' : 'unhealthy', backend: b.name, reason });
  }

  /** Sweeps every backend's connections; returns how many connections are still open. */
  sweep(nowMs: number): number {
    let open = 0;
    for (const b of this.backendsValue) {
      b.connections.sweep(nowMs);
      open += b.connections.size;
    }
    return open;
  }

  close(): void {
    for (const b of this.backendsValue) b.connections.close();
    this.backendsValue = [];
  }
}

function settingsOf(o: ConnectionPoolOptions): ConnectionSettings {
  const { host: _h, port: _p, ...rest } = o;
  return rest;
}
