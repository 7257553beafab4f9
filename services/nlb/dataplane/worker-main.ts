/**
 * A data-plane worker process (docs/dataplane.md "Workers"), forked by the NLB (worker-pool.ts).
 * It serves the listening sockets the primary shares with it, routes over a replica of the
 * primary's routing state, and reports back every REPORT_MS. It exits when the primary says
 * stop (after draining) or goes away (its connections are closed: the control plane is gone).
 */
import { resolveRelay, type NativeRelay } from './native-relay.js';
import type { Server, Socket } from 'node:net';
import { createSystemClock } from '../../shared/clock.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { createRng } from '../../shared/rng.js';
import { Listener, type ListenerConfig } from './listener.js';
import { WorkerLink } from './worker-link.js';
import type { CanHandleAnswer, FromWorker, ToWorker, WorkerInit, WorkerReport } from './worker-protocol.js';
import { ReportingObserver } from './worker-report.js';

/** How often a worker reports what happened (when anything did). */
const REPORT_MS = 20;
/** A report is sent at least this often (listener gauges stay fresh). */
const IDLE_REPORT_MS = 1000;

const send = (m: FromWorker, handle?: Server | Socket) => {
  if (process.connected) process.send!(m, handle as never);
};

class Worker {
  private readonly link: WorkerLink;
  private readonly observer = new ReportingObserver();
  private readonly listeners = new Map<string, Promise<Listener | null>>();
  private readonly logger: Logger;
  private readonly canHandleWaiters = new Map<number, (a: CanHandleAnswer) => void>();
  /** Connections open through each listener in the other workers. */
  private readonly peers = new Map<string, number>();
  /** Connections from client addresses in the other workers, by listener then address. */
  private readonly peerClients = new Map<string, Map<string, number>>();
  /** Each listener's generation (the primary's: reports carry it). */
  private readonly gens = new WeakMap<Listener, number>();
  private reportSoon = false;
  private nextId = 1;
  private lastReport = 0;
  private stopping = false;
  private readonly reporter: NodeJS.Timeout;
  private readonly bytesTimer: NodeJS.Timeout;
  private readonly relay: NativeRelay | undefined;

  constructor(private readonly init: WorkerInit) {
    this.logger = createLogger({ level: init.logLevel, name: 'nlb' }).child({
      component: 'dataplane',
      worker: init.index,
    });
    // The primary resolved the same mode already ('native' without the addon stops it there).
    const { relay, note } = resolveRelay(init.relay);
    this.relay = relay;
    this.logger.debug(note);
    this.link = new WorkerLink({
      // Failed connects count towards ejection in the primary: the sooner it knows, the fewer
      // connections try the failing instance meanwhile.
      onConnectFailed: () => this.reportNow(),
      clock: createSystemClock(),
      rng: createRng(`${process.pid}:${Date.now()}`),
      canHandle: (address, route, context, timeoutMs) => this.canHandle(address, route, context, timeoutMs),
    });
    this.reporter = setInterval(() => void this.report(false), REPORT_MS);
    this.bytesTimer = setInterval(() => void this.flushBytes(), init.bytesEveryMs);
  }

  onMessage(m: ToWorker, handle: unknown): void {
    switch (m.type) {
      case 'init':
        return;
      case 'state':
        this.link.applySnapshot(m.snapshot);
        return send({ type: 'state-applied', version: m.snapshot.version });
      case 'loads':
        return this.link.applyLoads(m.others, m.full);
      case 'eject':
        return this.link.eject(m.instanceId, m.forMs);
      case 'listen':
        return this.listen(m.config, m.gen, handle as Server);
      case 'retune':
        return void this.listeners.get(m.config.name)?.then((l) => {
          if (l) l.config = m.config;
        });
      case 'unlisten':
        return void this.unlisten(m.name, m.graceMs);
      case 'adopt':
        return void this.adopt(m.name, handle as Socket);
      case 'lend':
        return void this.lend(m.name);
      case 'can-handle-result':
        this.canHandleWaiters.get(m.id)?.(m.answer);
        return;
      case 'peers':
        for (const [name, n] of m.active) this.peers.set(name, n);
        return;
      case 'peer-clients':
        for (const [name, address, n] of m.counts) {
          let byAddress = this.peerClients.get(name);
          if (!byAddress) this.peerClients.set(name, (byAddress = new Map<string, number>()));
          if (n > 0) byAddress.set(address, n);
          else byAddress.delete(address);
        }
        return;
      case 'flush':
        return void this.flushBytes()
          .then(() => this.report(true))
          .then(() => send({ type: 'flushed' }));
      case 'ping':
        return send({ type: 'pong' });
      case 'stop':
        return void this.stop(m.graceMs);
    }
  }

  private listen(config: ListenerConfig, gen: number, server: Server): void {
    const l = new Listener(config, {
      link: this.link,
      observer: this.observer,
      logger: this.logger.child({ listener: config.name }),
      connectTimeoutMs: this.init.connectTimeoutMs,
      connectRetries: this.init.connectRetries,
      relay: this.relay,
      peerActive: (name) => this.peers.get(name) ?? 0,
      peerClient: (name, address) => this.peerClients.get(name)?.get(address) ?? 0,
      // The connection limits count every worker's connections: report changes at once, not in
      // 20 ms.
      onActiveChange: (changed) => {
        if (changed.config.maxConnections > 0 || changed.config.maxConnectionsPerClient > 0) this.reportNow();
      },
    });
    this.gens.set(l, gen);
    const started = l.start(server).then(
      () => {
        // Our own server has taken the socket (the same handle) over; closing the one that
        // carried it would close the socket.
        send({ type: 'listening', name: config.name });
        return l;
      },
      (e: unknown) => {
        send({ type: 'listen-failed', name: config.name, message: String(e) });
        return null;
      },
    );
    this.listeners.set(config.name, started);
  }

  /** Reports on the next turn of the event loop (coalesced), not on the 20 ms tick. */
  reportNow(): void {
    if (this.reportSoon) return;
    this.reportSoon = true;
    setImmediate(() => {
      this.reportSoon = false;
      void this.report(true);
    });
  }

  private async unlisten(name: string, graceMs: number): Promise<void> {
    // Out of the map at once: a `listen` of the same name may come before `started` resolves.
    // Its draining connections count towards no limit any more (as in one process, a listener
    // added again under the name starts from none): the primary dropped its counts, and the
    // others' counts it relayed for the name go too.
    const started = this.listeners.get(name);
    this.listeners.delete(name);
    this.peers.delete(name);
    this.peerClients.delete(name);
    const l = await started;
    // stop() closes the server before it first waits: no new connections from here on.
    const drained = l?.stop(graceMs);
    send({ type: 'unlistening', name });
    await drained;
    await this.report(true);
    send({ type: 'unlistened', name });
  }

  private async adopt(name: string, socket: Socket | undefined): Promise<void> {
    if (!socket) return;
    const l = await this.listeners.get(name);
    if (l) l.adopt(socket);
    else socket.destroy();
  }

  private async lend(name: string): Promise<void> {
    const l = await this.listeners.get(name);
    send({ type: 'lent', name }, l?.server ?? undefined);
  }

  private canHandle(
    address: string,
    route: Parameters<WorkerLink['route']>[0],
    context: Record<string, string>,
    timeoutMs: number,
  ): Promise<{ canHandle: boolean; priority: number; reason: string }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // The primary bounds the call by timeoutMs; this bounds the IPC round trip as well.
      const timer = setTimeout(
        () => done({ ok: false, message: 'no answer from the NLB primary' }),
        timeoutMs + 1000,
      );
      const done = (a: CanHandleAnswer) => {
        clearTimeout(timer);
        this.canHandleWaiters.delete(id);
        if (a.ok) resolve(a);
        else reject(new Error(a.message));
      };
      this.canHandleWaiters.set(id, done);
      send({ type: 'can-handle', id, address, route, context, timeoutMs });
    });
  }

  private async flushBytes(): Promise<void> {
    for (const p of this.listeners.values()) (await p)?.flushBytes();
  }

  /** Sends what happened since the last report (always when `force`, or once a second). */
  async report(force: boolean): Promise<void> {
    const now = Date.now();
    if (!force && !this.link.pending && this.observer.empty && now - this.lastReport < IDLE_REPORT_MS) return;
    this.lastReport = now;
    const r = { listeners: [], clients: [] } as unknown as WorkerReport;
    this.observer.take(r);
    this.link.take(r);
    for (const p of this.listeners.values()) {
      const l = await p;
      if (!l) continue;
      const gen = this.gens.get(l) ?? 0;
      r.listeners.push([l.name, gen, l.active, l.bufferedBytes()]);
      for (const [address, n] of l.takeClientChanges()) r.clients.push([l.name, gen, address, n]);
    }
    send({ type: 'report', report: r });
  }

  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const all = await Promise.all(this.listeners.values());
    this.listeners.clear();
    await Promise.all(all.map((l) => (l ? l.stop(graceMs) : Promise.resolve())));
    clearInterval(this.reporter);
    clearInterval(this.bytesTimer);
    await this.flushBytes();
    await this.report(true);
    send({ type: 'stopped' }); // the primary then disconnects, and the worker exits
  }
}

let worker: Worker | undefined;
process.on('message', (m: ToWorker, handle: unknown) => {
  if (m.type === 'init') {
    worker = new Worker(m);
    send({ type: 'ready' });
    return;
  }
  worker?.onMessage(m, handle);
});
// The primary went away: its control plane (routing updates, counts) is gone with it.
process.on('disconnect', () => {
  void (worker ? worker.stop(0) : Promise.resolve()).finally(() => process.exit(0));
});
// A terminal's ^C, a hangup, or a supervisor that signals the whole group (systemd's
// control-group kill mode) reach the workers too: the primary drains and stops them; they
// exit on their own only when it is gone.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
