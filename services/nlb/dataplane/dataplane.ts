/**
 * The data plane: the set of client listeners built from the `listeners` config section, applied
 * live (added, removed, moved, retuned), one outlier detector shared by all of them, and the
 * accounting that feeds Prometheus (through an observer) and the NLB's metrics store.
 * With `workers` > 1 the listeners are served by worker processes that share the listening
 * sockets (worker-pool.ts); the registry, routing and outlier state stay here (docs/dataplane.md
 * "Workers").
 */
import type { TimerHandle } from '../../shared/clock.js';
import type { LogLevel, Logger } from '../../shared/logger.js';
import type { Nlb } from '../nlb.js';
import type { RoutingService } from '../nlb-routing.js';
import type { CloseReason } from './forward.js';
import { localLink, type ControlLink } from './link.js';
import { Listener, type ConnectionLabels, type DataplaneObserver, type ListenerConfig } from './listener.js';
import { DEFAULT_OUTLIER_POLICY, OutlierDetector, type OutlierPolicy } from './outlier.js';
import { resolveRelay, type NativeRelay, type RelayMode } from './native-relay.js';
import { SharedListener, WorkerPool } from './worker-pool.js';

export type { ConnectionLabels, DataplaneObserver, ListenerConfig } from './listener.js';

export interface DataplaneOptions {
  nlb: Nlb;
  routing: RoutingService;
  logger: Logger;
  /** Prometheus (or nothing). */
  observer?: DataplaneObserver;
  connectTimeoutMs?: number;
  connectRetries?: number;
  /** How long removed listeners' connections (and all of them at stop) may run on. */
  drainGraceMs?: number;
  outlier?: OutlierPolicy;
  /** Worker processes serving the listeners; 1 (the default here) serves them in this process. */
  workers?: number;
  /** The workers' log level. */
  logLevel?: LogLevel;
  /** Who forwards connected pairs (default 'auto': the native relay when it is built). */
  relay?: RelayMode;
  /** Tests: the workers' entry script (see WorkerPoolOptions.entry). */
  workerEntry?: { path: string; execArgv: string[] };
}

/** What the Dataplane needs of a running listener, in this process or served by workers. */
interface RunningListener {
  config: ListenerConfig;
  readonly name: string;
  readonly active: number;
  address(): { host: string; port: number } | null;
  bufferedBytes(): number;
  flushBytes(): void;
  start(): Promise<{ host: string; port: number }>;
  stop(graceMs: number): Promise<void>;
}

export interface ListenerStatus {
  name: string;
  mode: string;
  host: string;
  port: number;
  active: number;
}

/** Per-listener totals since start (the metrics store's series). */
interface Totals {
  accepted: number;
  rejected: number;
  opened: number;
  closed: number;
  bytesIn: number;
  bytesOut: number;
  detectionFailures: number;
  routingFailures: number;
  connectFailures: number;
  connectMsSum: number;
  connectCount: number;
}

const newTotals = (): Totals => ({
  accepted: 0,
  rejected: 0,
  opened: 0,
  closed: 0,
  bytesIn: 0,
  bytesOut: 0,
  detectionFailures: 0,
  routingFailures: 0,
  connectFailures: 0,
  connectMsSum: 0,
  connectCount: 0,
});

const UNSUPPORTED_MODES = new Set(['udp', 'http3']);

/** Accept-time refusals that are a configured limit (noted as limit hits: metric + log line). */
const REJECTION_LIMITS = new Map([
  ['max_connections', 'listener_connections'],
  ['max_connections_per_client', 'client_connections'],
]);
/** Detection failures that are a spent sniff budget. */
const DETECTION_LIMITS = new Map([
  ['timeout', 'sniff_time'],
  ['timeout_no_data', 'sniff_time'],
  ['sniff_bytes_exceeded', 'sniff_bytes'],
]);

export class Dataplane {
  readonly outlier: OutlierDetector;
  private readonly listeners = new Map<string, RunningListener>();
  private readonly link: ControlLink;
  /** Set with `workers` > 1; started with the first listener. */
  private readonly pool: WorkerPool | null;
  private poolStarted: Promise<void> | null = null;
  /** The workers could not start: the listeners are served in this process instead. */
  private poolFailed = false;
  /** Listeners removed or moved by a config change, finishing their connections. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly failures = new Map<string, string>();
  private readonly totals = new Map<string, Totals>();
  private readonly observer: DataplaneObserver;
  private applying: Promise<void> = Promise.resolve();
  private ticker: TimerHandle | null = null;
  private tickMs = 0;
  private stopped = false;
  /** This process's native relay (listeners served here), or undefined: forward.ts forwards. */
  private readonly relay: NativeRelay | undefined;
  /** Which relay forwards connected pairs (why is logged at start). */
  readonly relayInfo: { mode: 'native' | 'js' };

  constructor(private readonly opts: DataplaneOptions) {
    // Throws for 'native' without the addon: better at start than at the first connection.
    const { relay, note } = resolveRelay(opts.relay ?? 'auto');
    this.relay = relay;
    this.relayInfo = { mode: relay ? 'native' : 'js' };
    opts.logger.info(`data plane: ${note}`);
    this.outlier = new OutlierDetector(opts.outlier ?? DEFAULT_OUTLIER_POLICY);
    this.observer = this.accounting(opts.observer);
    const onEjected = (moduleType: string, instanceId: string) =>
      this.observer.ejected(moduleType, instanceId);
    this.link = localLink(opts.nlb, opts.routing, this.outlier, opts.logger, onEjected);
    this.pool =
      (opts.workers ?? 1) > 1
        ? new WorkerPool({
            nlb: opts.nlb,
            outlier: this.outlier,
            observer: this.observer,
            onEjected,
            logger: opts.logger,
            logLevel: opts.logLevel ?? 'info',
            count: opts.workers ?? 1,
            connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
            connectRetries: opts.connectRetries ?? 2,
            relay: opts.relay ?? 'auto',
            entry: opts.workerEntry,
          })
        : null;
    opts.nlb.on((e) => {
      if (e.type === 'registry' && e.event.type === 'removed')
        this.outlier.forget(e.event.instance.instanceId);
      if (e.type === 'config' && e.section === 'metrics' && this.ticker) this.schedule();
    });
  }

  /**
   * Makes the running listeners match `configs`: new names start, missing ones stop accepting
   * (their connections get the drain grace), a changed address or port rebinds, other changes
   * apply to new connections. Resolves when every start has been tried; a listener that cannot
   * bind is logged and reported by `failed()`, and the others still run.
   */
  apply(configs: ListenerConfig[]): Promise<void> {
    const run = this.applying.then(() => this.applyNow(configs));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(configs: ListenerConfig[]): Promise<void> {
    if (this.stopped) return;
    if (!this.ticker) this.schedule();
    const wanted = new Map(configs.map((c) => [c.name, c]));
    for (const [name, l] of this.listeners) {
      const c = wanted.get(name);
      if (!c || c.address !== l.config.address || c.port !== l.config.port) {
        this.retire(l);
        // Workers stop accepting one message later: the port is free when it leaves the list.
        if (l instanceof SharedListener) await l.closed;
        this.listeners.delete(name);
      }
    }
    for (const c of configs) {
      const running = this.listeners.get(c.name);
      if (running) {
        running.config = c;
        continue;
      }
      this.failures.delete(c.name);
      if (UNSUPPORTED_MODES.has(c.mode)) {
        this.fail(c, `mode ${c.mode} needs UDP, which the data plane does not serve yet`);
        continue;
      }
      try {
        const l = await this.createListener(c);
        const a = await l.start();
        this.listeners.set(c.name, l);
        this.totals.set(c.name, this.totals.get(c.name) ?? newTotals());
        this.opts.logger.info(`listener ${c.name} (${c.mode}) on ${a.host}:${a.port}`);
      } catch (e) {
        this.fail(c, (e as Error).message);
      }
    }
    for (const name of this.failures.keys()) if (!wanted.has(name)) this.failures.delete(name);
  }

  /** A listener in this process, or one the workers serve (starting them the first time). */
  private async createListener(c: ListenerConfig): Promise<RunningListener> {
    if (this.pool && !this.poolFailed) {
      this.poolStarted ??= this.pool.start();
      try {
        await this.poolStarted;
        return new SharedListener(c, this.pool);
      } catch (e) {
        // Traffic first: a data plane in one process beats listeners that do not run.
        if (!this.poolFailed)
          this.opts.logger.error(
            `data plane: ${(e as Error).message}. Serving the listeners in the NLB's own process instead (until it restarts).`,
          );
        this.poolFailed = true;
      }
    }
    return new Listener(c, {
      link: this.link,
      observer: this.observer,
      logger: this.opts.logger.child({ listener: c.name }),
      connectTimeoutMs: this.opts.connectTimeoutMs ?? 2000,
      connectRetries: this.opts.connectRetries ?? 2,
      relay: this.relay,
    });
  }

  /**
   * Makes the workers report what they saw so far (connections, bytes, failures) and resolves
   * once it is in the totals, the registry and Prometheus; at once without workers.
   */
  async flush(): Promise<void> {
    if (this.pool && this.poolStarted && !this.poolFailed) await this.pool.flush();
  }

  /** The worker processes (none in one process): pid, connections accepted and open. */
  workerStatus(): Array<{ index: number; pid: number; accepted: number; active: number }> {
    return this.poolFailed ? [] : (this.pool?.status() ?? []);
  }

  /** Worker processes serving the listeners (1: this process). */
  get workers(): number {
    return this.poolFailed ? 1 : (this.pool?.size ?? 1);
  }

  /**
   * Resolves when every worker routes on the NLB's current state (at once without workers);
   * false when they did not catch up within `timeoutMs`.
   */
  synced(timeoutMs = 5000): Promise<boolean> {
    return this.pool && this.poolStarted && !this.poolFailed
      ? this.pool.synced(timeoutMs)
      : Promise.resolve(true);
  }

  private fail(c: ListenerConfig, why: string): void {
    this.failures.set(c.name, why);
    this.opts.logger.error(`listener ${c.name} on ${c.address}:${c.port} is not running: ${why}`);
  }

  private retire(l: RunningListener): void {
    const done = l.stop(this.opts.drainGraceMs ?? 10_000).catch(() => undefined);
    this.retiring.add(done);
    void done.then(() => this.retiring.delete(done));
  }

  /** Running listeners with their bound addresses (port 0 resolved). */
  addresses(): ListenerStatus[] {
    return [...this.listeners.values()].map((l) => {
      const a = l.address();
      return { name: l.name, mode: l.config.mode, host: a?.host ?? '', port: a?.port ?? 0, active: l.active };
    });
  }

  /** Bytes held in Node's socket buffers across all connections (bounded by back-pressure). */
  bufferedBytes(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.bufferedBytes();
    return n;
  }

  /** Listeners that could not start, with why. */
  failed(): Record<string, string> {
    return Object.fromEntries(this.failures);
  }

  /** Stops accepting everywhere; open connections get `graceMs` to finish, then are closed. */
  async stop(graceMs = this.opts.drainGraceMs ?? 10_000): Promise<void> {
    this.stopped = true;
    await this.applying;
    this.ticker?.cancel();
    this.ticker = null;
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all([...all.map((l) => l.stop(graceMs)), ...this.retiring]);
    // The workers have drained their listeners by now; their last reports arrive before they exit.
    if (this.pool && this.poolStarted)
      await this.poolStarted.catch(() => undefined).then(() => this.pool!.stop(0));
    this.record();
  }

  private schedule(): void {
    const ms = this.opts.nlb.config.metrics.resolutionSeconds * 1000;
    if (this.ticker && ms === this.tickMs) return;
    this.ticker?.cancel();
    this.tickMs = ms;
    this.ticker = this.opts.nlb.deps.clock.setInterval(() => this.record(), ms);
  }

  /** Writes the data plane's series into the metrics store. */
  private record(): void {
    const { nlb } = this.opts;
    for (const l of this.listeners.values()) l.flushBytes();
    const now = nlb.deps.clock.now();
    const m = nlb.metrics;
    for (const [name, t] of this.totals) {
      const labels = { listener: name };
      m.record('dataplane_connections_total', labels, t.accepted, now);
      m.record('dataplane_active_connections', labels, this.listeners.get(name)?.active ?? 0, now);
      m.record('dataplane_bytes_in_total', labels, t.bytesIn, now);
      m.record('dataplane_bytes_out_total', labels, t.bytesOut, now);
      m.record('dataplane_detection_failures_total', labels, t.detectionFailures, now);
      m.record('dataplane_routing_failures_total', labels, t.routingFailures, now);
      m.record('dataplane_connect_failures_total', labels, t.connectFailures, now);
      if (t.connectCount > 0) {
        m.record('dataplane_connect_latency_ms', labels, t.connectMsSum / t.connectCount, now);
        t.connectMsSum = 0;
        t.connectCount = 0;
      }
    }
    // Per type@version, not per instance: a series costs ~13 KB, and 10k instances would make
    // this the NLB's largest memory user. Per-instance counts are in ListModules and
    // GetLoadDistribution.
    const groups = new Map<
      string,
      { module_type: string; version: string; connections: number; ejected: number }
    >();
    for (const r of nlb.registry.all()) {
      const key = `${r.moduleType}@${r.version}`;
      let g = groups.get(key);
      if (!g)
        groups.set(key, (g = { module_type: r.moduleType, version: r.version, connections: 0, ejected: 0 }));
      g.connections += r.connections;
      if (this.outlier.ejected(r.instanceId, now)) g.ejected++;
    }
    for (const g of groups.values()) {
      const labels = { module_type: g.module_type, version: g.version };
      m.record('dataplane_connections', labels, g.connections, now);
      m.record('dataplane_ejected', labels, g.ejected, now);
    }
  }

  /** The observer listeners report to: keeps totals, then passes everything on. */
  private accounting(next: DataplaneObserver | undefined): DataplaneObserver {
    const t = (listener: string) => {
      let x = this.totals.get(listener);
      if (!x) this.totals.set(listener, (x = newTotals()));
      return x;
    };
    return {
      accepted: (l) => {
        t(l).accepted++;
        next?.accepted(l);
      },
      rejected: (l, reason) => {
        t(l).rejected++;
        const limit = REJECTION_LIMITS.get(reason);
        if (limit) this.opts.nlb.noteLimit({ limit, message: `listener ${l}: ${limit} reached` });
        next?.rejected(l, reason);
      },
      detectionFailed: (l, reason) => {
        t(l).detectionFailures++;
        const limit = DETECTION_LIMITS.get(reason);
        if (limit) this.opts.nlb.noteLimit({ limit, message: `listener ${l}: ${limit} budget spent` });
        next?.detectionFailed(l, reason);
      },
      routingFailed: (l, protocol, reason) => {
        t(l).routingFailures++;
        next?.routingFailed(l, protocol, reason);
      },
      connectFailed: (labels: ConnectionLabels, reason) => {
        t(labels.listener).connectFailures++;
        next?.connectFailed(labels, reason);
      },
      opened: (labels, connectMs) => {
        const x = t(labels.listener);
        x.opened++;
        x.connectMsSum += connectMs;
        x.connectCount++;
        next?.opened(labels, connectMs);
      },
      bytes: (labels, bytesIn, bytesOut) => {
        const x = t(labels.listener);
        x.bytesIn += bytesIn;
        x.bytesOut += bytesOut;
        next?.bytes(labels, bytesIn, bytesOut);
      },
      closed: (labels, reason: CloseReason) => {
        t(labels.listener).closed++;
        next?.closed(labels, reason);
      },
      ejected: (moduleType, instanceId) => next?.ejected(moduleType, instanceId),
    };
  }
}
