/**
 * The primary's side of the data-plane workers (docs/dataplane.md "Workers"): forks N worker
 * processes, shares each listener's socket with all of them (bound here, so bind errors and
 * port 0 behave as in one process; then closed here, so only workers accept), pushes the
 * routing state as versioned snapshots, and applies the workers' reports: connection counts into
 * the registry, connect outcomes into the outlier detector, observer calls into Prometheus and
 * the metrics store. A worker that dies is accounted for (its connections closed out) and
 * replaced.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { LogLevel, Logger } from '../../shared/logger.js';
import type { Nlb, NlbEvent } from '../nlb.js';
import { recordConnectFailure, type OnEjected } from './link.js';
import type { DataplaneObserver, ListenerConfig } from './listener.js';
import type { OutlierDetector } from './outlier.js';
import type { FromWorker, RoutingSnapshot, ToWorker, WorkerReport } from './worker-protocol.js';
import type { RelayMode } from './native-relay.js';
import { closeOut, replayObserver } from './worker-report.js';

export interface WorkerPoolOptions {
  nlb: Nlb;
  outlier: OutlierDetector;
  /** The data plane's accounting observer (totals, then Prometheus). */
  observer: DataplaneObserver;
  onEjected: OnEjected;
  logger: Logger;
  logLevel: LogLevel;
  count: number;
  connectTimeoutMs: number;
  connectRetries: number;
  relay: RelayMode;
  /** The worker entry (tests: one that fails to start); default worker-main next to this file. */
  entry?: { path: string; execArgv: string[] };
}

/**
 * Snapshots are rate-limited by what they cost: after one that took t ms the next waits at least
 * SNAPSHOT_COST_FACTOR × t (at most SNAPSHOT_MAX_GAP_MS), so that building them never takes more
 * than ~20 % of the primary. A small registry's snapshot costs well under a millisecond: changes
 * then reach the workers at once.
 */
const SNAPSHOT_COST_FACTOR = 4;
const SNAPSHOT_MAX_GAP_MS = 50;
/**
 * How often changes that raise no NlbEvent (route table changes, RebalanceLoad's offsets) are
 * looked for: a few numbers compared, so cheap enough to do often.
 */
const FINGERPRINT_MS = 10;
const START_TIMEOUT_MS = 20_000;
const ACK_TIMEOUT_MS = 10_000;
const RESPAWN_DELAY_MS = 1000;

interface Proc {
  index: number;
  child: ChildProcess;
  ready: boolean;
  gone: boolean;
  stateVersion: number;
  /** Connections this worker has open per instance (the registration it counted them for). */
  contrib: Map<string, { registrationId: string; n: number }>;
  /** Connections this worker has open per route incarnation, by `routeId\nincarnation`. */
  routeContrib: Map<string, { routeId: string; incarnation: number; n: number }>;
  /** Open connections per labels key (to close out if the worker dies). */
  open: Map<string, number>;
  /** Per shared listener (its current generation only). */
  listeners: Map<string, { active: number; buffered: number }>;
  /**
   * Open connections per client address, by `listener\0address` (max_connections_per_client),
   * of the listeners' current generations only.
   */
  clients: Map<string, number>;
  /** Connections this worker accepted (all listeners). */
  accepted: number;
  waiters: Set<(m: FromWorker | null, handle?: unknown) => void>;
  exited: Promise<void>;
}

/** The worker entry next to this file: .ts under a TypeScript loader, .js when built. */
function workerEntry(): { path: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts'))
    return { path: self.replace(/worker-pool\.ts$/, 'worker-main.ts'), execArgv: ['--import', 'tsx'] };
  return { path: self.replace(/worker-pool\.js$/, 'worker-main.js'), execArgv: [] };
}

export class WorkerPool {
  private readonly procs: Proc[] = [];
  private readonly shared = new Map<
    string,
    { config: ListenerConfig; host: string; port: number; gen: number }
  >();
  /** Generations of shared listeners: a name removed and added again is a new listener. */
  private gen = 0;
  private version = 0;
  private lastSnapshotAt = 0;
  private snapshotGapMs = 0;
  private snapshotPending = false;
  private fingerprint = '';
  private fingerprintTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private handoffNext = 0;

  constructor(private readonly opts: WorkerPoolOptions) {
    opts.nlb.on((e) => {
      if (this.stopping || !this.started) return;
      if (changesRouting(e)) this.scheduleSnapshot();
    });
  }

  private started = false;

  get size(): number {
    return this.opts.count;
  }

  /** Forks the workers; resolves when every one is ready. */
  async start(): Promise<void> {
    this.started = true;
    this.fingerprint = this.currentFingerprint();
    try {
      await Promise.all(Array.from({ length: this.opts.count }, (_, i) => this.spawn(i)));
    } catch (e) {
      // No half-started pool: its listeners fail with this reason (logged, `failed()`).
      this.stopping = true;
      for (const p of this.procs) if (p && !p.gone) p.child.kill('SIGKILL');
      throw new Error(
        `data-plane workers could not start (${(e as Error).message}); dataplane.workers: 1 serves the listeners in the NLB process`,
        { cause: e },
      );
    }
    this.fingerprintTimer = setInterval(() => {
      const f = this.currentFingerprint();
      if (f !== this.fingerprint) this.scheduleSnapshot();
    }, FINGERPRINT_MS);
    this.fingerprintTimer.unref();
  }

  private live(): Proc[] {
    return this.procs.filter((p) => p.ready && !p.gone);
  }

  private async spawn(index: number): Promise<Proc> {
    const entry = this.opts.entry ?? workerEntry();
    const child = fork(entry.path, [], {
      // Not the primary's own flags: a TypeScript loader among them would load twice.
      execArgv: entry.execArgv,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let exited!: () => void;
    const p: Proc = {
      index,
      child,
      ready: false,
      gone: false,
      stateVersion: 0,
      contrib: new Map(),
      routeContrib: new Map(),
      open: new Map(),
      listeners: new Map(),
      clients: new Map(),
      accepted: 0,
      waiters: new Set(),
      exited: new Promise<void>((r) => (exited = r)),
    };
    this.procs[index] = p;
    child.on('message', (m: FromWorker, handle: unknown) => this.onMessage(p, m, handle));
    child.on('error', (e) => this.opts.logger.warn(`data-plane worker ${index}: ${e.message}`));
    child.on('exit', (code, signal) => {
      p.gone = true;
      for (const w of [...p.waiters]) w(null);
      exited();
      this.onExit(p, code, signal);
    });
    this.send(p, {
      type: 'init',
      index,
      logLevel: this.opts.logLevel,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      connectRetries: this.opts.connectRetries,
      relay: this.opts.relay,
      bytesEveryMs: this.opts.nlb.config.metrics.resolutionSeconds * 1000,
    });
    const ok = await this.await(p, (m) => m.type === 'ready', START_TIMEOUT_MS);
    if (!ok) {
      child.kill('SIGKILL');
      throw new Error(`data-plane worker ${index} did not start within ${START_TIMEOUT_MS / 1000} s`);
    }
    p.ready = true;
    this.send(p, { type: 'state', snapshot: this.snapshot() });
    this.sendLoads(p, null);
    this.sendPeers(null);
    this.sendPeerClients(null);
    const now = this.opts.nlb.deps.clock.now();
    for (const e of this.opts.outlier.ejectedInstances(now))
      this.send(p, { type: 'eject', instanceId: e.instanceId, forMs: e.untilMs - now });
    return p;
  }

  private send(p: Proc, m: ToWorker, handle?: Server | Socket): void {
    if (p.gone || !p.child.connected) return;
    try {
      p.child.send(m, handle as never, (e) => {
        if (e && !p.gone) this.opts.logger.debug(`send to data-plane worker ${p.index} failed: ${e.message}`);
      });
    } catch (e) {
      this.opts.logger.debug(`send to data-plane worker ${p.index} failed: ${String(e)}`);
    }
  }

  /** Resolves true on the first message `match` accepts, false on timeout or exit. */
  private await(
    p: Proc,
    match: (m: FromWorker, handle?: unknown) => boolean,
    timeoutMs: number,
    onMatch?: (m: FromWorker, handle?: unknown) => void,
  ): Promise<boolean> {
    if (p.gone) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w = (m: FromWorker | null, handle?: unknown) => {
        if (m && !match(m, handle)) return;
        clearTimeout(timer);
        p.waiters.delete(w);
        if (m) onMatch?.(m, handle);
        resolve(m !== null);
      };
      const timer = setTimeout(() => {
        p.waiters.delete(w);
        resolve(false);
      }, timeoutMs);
      p.waiters.add(w);
    });
  }

  private onMessage(p: Proc, m: FromWorker, handle: unknown): void {
    switch (m.type) {
      case 'report':
        this.apply(p, m.report);
        break;
      case 'state-applied':
        p.stateVersion = m.version;
        break;
      case 'can-handle':
        void this.canHandle(p, m);
        break;
      case 'listen-failed':
        this.opts.logger.error(
          `data-plane worker ${p.index} could not serve listener ${m.name}: ${m.message}`,
        );
        break;
    }
    for (const w of [...p.waiters]) w(m, handle);
  }

  private async canHandle(p: Proc, m: Extract<FromWorker, { type: 'can-handle' }>): Promise<void> {
    let answer: Extract<ToWorker, { type: 'can-handle-result' }>['answer'];
    try {
      const r = await this.opts.nlb.deps.modules.canHandle(m.address, m.route, m.context, m.timeoutMs);
      answer = { ok: true, canHandle: r.canHandle, priority: r.priority, reason: r.reason };
    } catch (e) {
      answer = { ok: false, message: (e as Error).message };
    }
    this.send(p, { type: 'can-handle-result', id: m.id, answer });
  }

  // ---- listeners -------------------------------------------------------------------------

  /**
   * Shares a listening server (bound by the caller) with every worker, then closes it here.
   * Connections this process accepts meanwhile are handed to a worker unread.
   */
  async share(config: ListenerConfig, server: Server): Promise<void> {
    const a = server.address();
    const bound = a && typeof a === 'object' ? { host: a.address, port: a.port } : { host: '', port: 0 };
    this.shared.set(config.name, { config, ...bound, gen: ++this.gen });
    await this.lend(config.name, server, this.live());
  }

  private async lend(name: string, server: Server, to: Proc[]): Promise<void> {
    const onStray = (s: Socket) => this.handoff(name, s);
    server.on('connection', onStray);
    const shared = this.shared.get(name);
    try {
      if (!shared) return;
      const { config, gen } = shared;
      const acks = to.map((p) => {
        const ok = this.await(
          p,
          (m) => (m.type === 'listening' || m.type === 'listen-failed') && m.name === name,
          ACK_TIMEOUT_MS,
        );
        this.send(p, { type: 'listen', config, gen }, server);
        return ok;
      });
      await Promise.all(acks);
    } finally {
      server.off('connection', onStray);
      server.close();
    }
  }

  /** A connection this process accepted while sharing: a worker serves it. */
  private handoff(name: string, s: Socket): void {
    const live = this.live();
    if (live.length === 0) {
      s.destroy();
      return;
    }
    const p = live[this.handoffNext++ % live.length];
    this.send(p, { type: 'adopt', name }, s);
  }

  retune(config: ListenerConfig): void {
    const s = this.shared.get(config.name);
    if (s) s.config = config;
    for (const p of this.live()) this.send(p, { type: 'retune', config });
  }

  /**
   * Every worker stops accepting on the listener: `closed` resolves when none accepts any more,
   * `drained` when their connections are done (or closed after `graceMs`).
   */
  unshare(name: string, graceMs: number): { closed: Promise<void>; drained: Promise<void> } {
    this.shared.delete(name);
    // Its connections no longer count towards any limit (a listener added again under the name
    // starts from none, as in one process); the workers forget the others' counts on `unlisten`,
    // and reports about this generation are ignored from now on.
    for (const p of this.procs) {
      if (!p) continue;
      p.listeners.delete(name);
      for (const key of p.clients.keys()) if (key.startsWith(`${name}\0`)) p.clients.delete(key);
    }
    const live = this.live();
    const closed = live.map((p) =>
      this.await(p, (m) => m.type === 'unlistening' && m.name === name, ACK_TIMEOUT_MS),
    );
    const drained = live.map((p) => {
      const done = this.await(p, (m) => m.type === 'unlistened' && m.name === name, graceMs + ACK_TIMEOUT_MS);
      this.send(p, { type: 'unlisten', name, graceMs });
      return done;
    });
    return {
      closed: Promise.all(closed).then(() => undefined),
      drained: Promise.all(drained).then(() => undefined),
    };
  }

  /** Every worker reports now; resolves when their reports are applied. */
  async flush(): Promise<void> {
    await Promise.all(
      this.live().map((p) => {
        const done = this.await(p, (m) => m.type === 'flushed', ACK_TIMEOUT_MS);
        this.send(p, { type: 'flush' });
        return done;
      }),
    );
    // Each report made us relay counts to the other workers: a round trip to every worker (the
    // channel keeps order) means they have applied them, so the limits hold on what was flushed.
    await Promise.all(
      this.live().map((p) => {
        const done = this.await(p, (m) => m.type === 'pong', ACK_TIMEOUT_MS);
        this.send(p, { type: 'ping' });
        return done;
      }),
    );
  }

  /** The worker processes: pid, connections accepted and open (as of their last reports). */
  status(): Array<{ index: number; pid: number; accepted: number; active: number }> {
    return this.live().map((p) => {
      let active = 0;
      for (const l of p.listeners.values()) active += l.active;
      return { index: p.index, pid: p.child.pid ?? 0, accepted: p.accepted, active };
    });
  }

  /** Connections open through a listener, over all workers (as of their last reports). */
  active(name: string): number {
    let n = 0;
    for (const p of this.live()) n += p.listeners.get(name)?.active ?? 0;
    return n;
  }

  bufferedBytes(name: string): number {
    let n = 0;
    for (const p of this.live()) n += p.listeners.get(name)?.buffered ?? 0;
    return n;
  }

  /** Resolves when every worker routes on the current state (bounded by `timeoutMs`). */
  async synced(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (this.currentFingerprint() !== this.fingerprint) this.scheduleSnapshot();
    if (this.snapshotPending) await new Promise((r) => setTimeout(r, this.snapshotGapMs + 5));
    while (Date.now() < deadline) {
      if (this.live().every((p) => p.stateVersion >= this.version)) return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return false;
  }

  // ---- state to the workers ----------------------------------------------------------------

  private scheduleSnapshot(): void {
    if (this.snapshotPending) return;
    this.snapshotPending = true;
    const wait = this.lastSnapshotAt + this.snapshotGapMs - performance.now();
    // At once (after the current call stack: one event's siblings coalesce), or at the gap's end.
    if (wait <= 0) queueMicrotask(() => this.pushSnapshot());
    else setTimeout(() => this.pushSnapshot(), wait);
  }

  private pushSnapshot(): void {
    this.snapshotPending = false;
    if (this.stopping) return;
    const t0 = performance.now();
    this.fingerprint = this.currentFingerprint();
    const snapshot = this.snapshot();
    for (const p of this.live()) this.send(p, { type: 'state', snapshot });
    this.lastSnapshotAt = performance.now();
    this.snapshotGapMs = Math.min(SNAPSHOT_MAX_GAP_MS, (this.lastSnapshotAt - t0) * SNAPSHOT_COST_FACTOR);
  }

  private snapshot(): RoutingSnapshot {
    const { nlb } = this.opts;
    const weights: Record<string, Record<string, number>> = {};
    for (const d of nlb.deployments.all()) weights[d.moduleType] = d.weights;
    return {
      version: ++this.version,
      registryRevision: nlb.registryRevision,
      routesRevision: nlb.routes.revision,
      instances: nlb.registry
        .all()
        .map((r) => ({ ...r, stats: null, pendingInstructions: {}, connections: 0 })),
      routes: nlb.routes.all().map((e) => ({
        route: e.route,
        owner: e.owner,
        moduleType: e.moduleType,
        incarnation: e.incarnation,
      })),
      weights,
      strategy: nlb.selection.strategy,
      offsets: [...nlb.selection.offsets],
      routing: {
        canHandleTimeoutMs: nlb.config.routing.canHandleTimeoutMs,
        canHandleCacheTtlMs: nlb.config.routing.canHandleCacheTtlMs,
      },
    };
  }

  /** What a snapshot depends on that may change without an event. */
  private currentFingerprint(): string {
    const { nlb } = this.opts;
    return `${nlb.registryRevision}|${nlb.routes.revision}|${nlb.selection.strategy}|${nlb.selection.revision}`;
  }

  /** Tells `p` how many connections the other processes have open (`ids` only, or all). */
  private sendLoads(p: Proc, ids: Iterable<string> | null): void {
    const { registry } = this.opts.nlb;
    const others: Array<[string, number]> = [];
    const each = (id: string) => {
      const r = registry.get(id);
      if (!r) return others.push([id, 0]);
      const own = p.contrib.get(id);
      const mine = own && own.registrationId === r.registrationId ? own.n : 0;
      others.push([id, Math.max(0, r.connections - mine)]);
    };
    if (ids) for (const id of ids) each(id);
    else for (const r of registry.all()) if (r.connections > 0) each(r.instanceId);
    if (ids && others.length === 0) return;
    this.send(p, { type: 'loads', others, full: ids === null });
  }

  // ---- reports from the workers ------------------------------------------------------------

  private apply(p: Proc, r: WorkerReport): void {
    const { nlb, outlier, observer, logger, onEjected } = this.opts;
    const changed = new Set<string>();
    for (const [id, registrationId, routeId, routeIncarnation, delta] of r.conns) {
      const rec = nlb.registry.get(id);
      if (rec && rec.registrationId === registrationId) {
        nlb.registry.addConnections(id, delta);
        let c = p.contrib.get(id);
        if (!c || c.registrationId !== registrationId) p.contrib.set(id, (c = { registrationId, n: 0 }));
        c.n = Math.max(0, c.n + delta);
        if (c.n === 0) p.contrib.delete(id);
        changed.add(id);
      }
      if (routeId) {
        nlb.routes.countConnection(routeId, routeIncarnation, delta);
        const key = `${routeId}\n${routeIncarnation}`;
        let c = p.routeContrib.get(key);
        if (!c) p.routeContrib.set(key, (c = { routeId, incarnation: routeIncarnation, n: 0 }));
        c.n += delta;
        if (c.n <= 0) p.routeContrib.delete(key);
      }
    }
    for (const [instanceId, moduleType, ok, reason] of r.connects) {
      if (ok) outlier.success(instanceId);
      else if (recordConnectFailure(nlb, outlier, logger, onEjected, { instanceId, moduleType }, reason))
        for (const q of this.live())
          this.send(q, { type: 'eject', instanceId, forMs: outlier.policy.ejectionMs });
    }
    const now = nlb.deps.clock.now();
    for (const [result, moduleType, version, n] of r.routing) {
      if (result === 'routed') nlb.counters.routed += n;
      else nlb.counters.routingFailures += n;
      for (let i = 0; i < n; i++) nlb.emit({ type: 'routing', result, moduleType, version });
    }
    for (const id of r.touched) nlb.routes.touch(id, now);
    for (const [key, n] of r.counts) if (key.startsWith('["a"')) p.accepted += n;
    replayObserver(r, observer, (k, d) => {
      const n = (p.open.get(k) ?? 0) + d;
      if (n > 0) p.open.set(k, n);
      else p.open.delete(k);
    });
    // Only the listeners' current generations: a removed one's report may still be on its way.
    const current = (name: string, gen: number) => this.shared.get(name)?.gen === gen;
    const before = p.listeners;
    p.listeners = new Map();
    for (const [name, gen, active, buffered] of r.listeners)
      if (current(name, gen)) p.listeners.set(name, { active, buffered });
    if (changed.size) for (const q of this.live()) if (q !== p) this.sendLoads(q, changed);
    // max_connections is per listener over all workers: tell the others what this one has open.
    let limited = false;
    for (const [name, { active }] of p.listeners)
      if (before.get(name)?.active !== active && this.shared.get(name)?.config.maxConnections) limited = true;
    if (limited) this.sendPeers(p);
    // max_connections_per_client likewise: the others learn this worker's per-client counts.
    if (r.clients.length) {
      const keys = new Set<string>();
      for (const [name, gen, address, n] of r.clients) {
        if (!current(name, gen)) continue;
        const key = `${name}\0${address}`;
        if (n > 0) p.clients.set(key, n);
        else p.clients.delete(key);
        keys.add(key);
      }
      this.sendPeerClients(keys, p);
    }
  }

  /**
   * Tells each worker (but `except`) how many connections the others have open from the client
   * addresses in `keys` (`listener\0address`; null: every address any worker has open).
   */
  private sendPeerClients(keys: Set<string> | null, except?: Proc): void {
    const live = this.live();
    if (!keys) {
      keys = new Set();
      for (const o of live) for (const k of o.clients.keys()) keys.add(k);
    }
    if (keys.size === 0) return;
    for (const q of live) {
      if (q === except) continue;
      const counts: Array<[string, string, number]> = [];
      for (const key of keys) {
        let n = 0;
        for (const o of live) if (o !== q) n += o.clients.get(key) ?? 0;
        const cut = key.indexOf('\0');
        counts.push([key.slice(0, cut), key.slice(cut + 1), n]);
      }
      this.send(q, { type: 'peer-clients', counts });
    }
  }

  private sendPeers(except: Proc | null): void {
    const live = this.live();
    for (const q of live) {
      if (q === except) continue;
      const active: Array<[string, number]> = [];
      for (const [name, s] of this.shared) {
        if (!s.config.maxConnections) continue;
        let n = 0;
        for (const o of live) if (o !== q) n += o.listeners.get(name)?.active ?? 0;
        active.push([name, n]);
      }
      if (active.length) this.send(q, { type: 'peers', active });
    }
  }

  private onExit(p: Proc, code: number | null, signal: NodeJS.Signals | null): void {
    const { nlb, observer, logger } = this.opts;
    // Its connections died with it: take them out of the counts and close them out.
    const changed = new Set<string>();
    for (const [id, c] of p.contrib) {
      if (nlb.registry.get(id)?.registrationId === c.registrationId) nlb.registry.addConnections(id, -c.n);
      changed.add(id);
    }
    for (const c of p.routeContrib.values()) nlb.routes.countConnection(c.routeId, c.incarnation, -c.n);
    p.contrib.clear();
    p.routeContrib.clear();
    closeOut(p.open, observer);
    p.listeners.clear();
    this.sendPeers(p);
    const gone = new Set(p.clients.keys());
    p.clients.clear();
    this.sendPeerClients(gone, p);
    if (changed.size) for (const q of this.live()) this.sendLoads(q, changed);
    if (this.stopping) return;
    logger.error(
      `data-plane worker ${p.index} exited (code ${code}, signal ${signal}); starting a replacement`,
    );
    setTimeout(() => void this.replace(p.index), RESPAWN_DELAY_MS).unref();
  }

  /** Starts a worker in slot `index` and shares every listener with it. */
  private async replace(index: number): Promise<void> {
    if (this.stopping) return;
    let p: Proc;
    try {
      p = await this.spawn(index);
    } catch (e) {
      this.opts.logger.error(`could not replace data-plane worker ${index}: ${(e as Error).message}`);
      if (!this.stopping) setTimeout(() => void this.replace(index), RESPAWN_DELAY_MS * 5).unref();
      return;
    }
    for (const [name, s] of [...this.shared]) {
      const server = await this.socketFor(name, s, p);
      if (server && this.shared.has(name)) await this.lend(name, server, [p]);
      else server?.close();
    }
  }

  /** The listener's socket: borrowed from a live worker, or bound again when none has it. */
  private async socketFor(
    name: string,
    s: { host: string; port: number },
    except: Proc,
  ): Promise<Server | null> {
    for (const q of this.live()) {
      if (q === except) continue;
      let got: Server | null = null;
      await this.await(
        q,
        (m) => m.type === 'lent' && m.name === name,
        ACK_TIMEOUT_MS,
        (_m, handle) => (got = (handle as Server | undefined) ?? null),
      );
      this.send(q, { type: 'lend', name });
      if (got) {
        // Our own server over the lent socket, pausing what it accepts (handed over unread).
        const server = createServer({ pauseOnConnect: true });
        await new Promise<void>((r) => server.listen(got!, () => r()));
        return server;
      }
    }
    const server = createServer({ pauseOnConnect: true });
    return new Promise((resolve) => {
      server.once('error', (e) => {
        this.opts.logger.error(`listener ${name}: could not bind ${s.host}:${s.port} again: ${e.message}`);
        resolve(null);
      });
      server.listen({ host: s.host, port: s.port }, () => resolve(server));
    });
  }

  /** Stops every worker: they drain their listeners for `graceMs`, report, and exit. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.fingerprintTimer) clearInterval(this.fingerprintTimer);
    const procs = this.procs.filter((p) => p && !p.gone);
    await Promise.all(
      procs.map(async (p) => {
        const stopped = this.await(p, (m) => m.type === 'stopped', graceMs + ACK_TIMEOUT_MS);
        this.send(p, { type: 'stop', graceMs });
        await stopped;
        if (p.child.connected) p.child.disconnect();
        const t = setTimeout(() => p.child.kill('SIGKILL'), 2000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    this.shared.clear();
  }
}

/** Events after which the workers need a new snapshot. */
function changesRouting(e: NlbEvent): boolean {
  switch (e.type) {
    case 'registry':
      return e.event.type !== 'refreshed';
    case 'deployment':
      return true;
    case 'config':
      return e.section === 'routing';
    default:
      return false;
  }
}

/** A listener served by the workers, as the Dataplane sees it (bound here, served there). */
export class SharedListener {
  private bound: { host: string; port: number } | null = null;
  private retired = false;

  constructor(
    private cfg: ListenerConfig,
    private readonly pool: WorkerPool,
  ) {}

  get name(): string {
    return this.cfg.name;
  }

  get config(): ListenerConfig {
    return this.cfg;
  }

  /** A changed config applies to the workers' new connections. */
  set config(c: ListenerConfig) {
    this.cfg = c;
    if (this.bound && !this.retired) this.pool.retune(c);
  }

  address(): { host: string; port: number } | null {
    return this.bound;
  }

  get active(): number {
    return this.pool.active(this.name);
  }

  bufferedBytes(): number {
    return this.pool.bufferedBytes(this.name);
  }

  /** Workers report open connections' bytes themselves, every metrics interval. */
  flushBytes(): void {}

  /** Binds here (errors and port 0 as in one process), then hands the socket to the workers. */
  async start(): Promise<{ host: string; port: number }> {
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.cfg.address, port: this.cfg.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address();
    this.bound =
      a && typeof a === 'object' ? { host: a.address, port: a.port } : { host: this.cfg.address, port: 0 };
    await this.pool.share(this.cfg, server);
    return this.bound;
  }

  /** Resolves once no worker accepts on this listener any more (after `stop`). */
  closed: Promise<void> = Promise.resolve();

  /** Every worker stops accepting at once; open connections may finish for `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.retired = true;
    if (!this.bound) return;
    const { closed, drained } = this.pool.unshare(this.name, graceMs);
    this.closed = closed;
    await drained;
  }
}
