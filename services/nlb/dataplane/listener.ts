/**
 * One client listener (docs/dataplane.md "Listener behaviour"): accept, sniff the first bytes,
 * route with the shared RoutingService, connect to the chosen instance (retrying others), write
 * the PROXY v2 header and the sniffed bytes, then forward both ways. Socket timeouts use real
 * timers, not the injected Clock: they bound real I/O.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../shared/logger.js';
import type { NlbConfig } from '../domain/nlb-config.js';
import type { InstanceRecord } from '../domain/types.js';
import type { RouteDecision } from '../nlb-routing.js';
import { forward, type CloseReason, type Forwarding } from './forward.js';
import type { ConnectionToken, ControlLink } from './link.js';
import type { NativeRelay } from './native-relay.js';
import { ReusedReadBuffer } from './read-buffer.js';
import { routeSpecOf } from './route-facts.js';
import { sniff } from './sniff.js';
import { connectTo, proxyHeaderFor } from './upstream.js';

export type ListenerConfig = NlbConfig['listeners']['listeners'][number];

/** Labels of a forwarded connection. */
export interface ConnectionLabels {
  listener: string;
  protocol: string;
  module_type: string;
  version: string;
  instance: string;
}

/** Where the data plane reports what happens (Prometheus, the metrics store). */
export interface DataplaneObserver {
  accepted(listener: string): void;
  /** Closed at accept (max_connections, max_connections_per_client, stopping). */
  rejected(listener: string, reason: string): void;
  detectionFailed(listener: string, reason: string): void;
  routingFailed(listener: string, protocol: string, reason: string): void;
  connectFailed(labels: ConnectionLabels, reason: string): void;
  opened(labels: ConnectionLabels, connectMs: number): void;
  /** Bytes forwarded since the last report: in = client → instance, out = instance → client. */
  bytes(labels: ConnectionLabels, bytesIn: number, bytesOut: number): void;
  closed(labels: ConnectionLabels, reason: CloseReason): void;
  ejected(moduleType: string, instanceId: string): void;
}

export interface ListenerDeps {
  /** Routing, outlier state and connection counts (the NLB itself, or a worker's replica). */
  link: ControlLink;
  observer: DataplaneObserver;
  logger: Logger;
  connectTimeoutMs: number;
  /** Other instances tried after a failed connect. */
  connectRetries: number;
  /** Connections other processes have open through this listener (workers: max_connections). */
  peerActive?: (listener: string) => number;
  /** Connections other processes have open from one client address (max_connections_per_client). */
  peerClient?: (listener: string, address: string) => number;
  /** Called when the number of open connections changed (workers report it). */
  onActiveChange?: (l: Listener) => void;
  /** Forwards connected pairs natively (dataplane.relay); without it, forward.ts does. */
  relay?: NativeRelay;
}

interface Conn {
  client: Socket;
  /** The client's address, as counted for max_connections_per_client. */
  address: string;
  upstream?: Socket;
  fwd?: Forwarding;
  labels?: ConnectionLabels;
  reported: { in: number; out: number };
}

export class Listener {
  private srv: Server | null = null;
  private readonly conns = new Set<Conn>();
  /** Open connections per client address. */
  private readonly clients = new Map<string, number>();
  /** Addresses whose count changed since takeClientChanges (only while the limit is on). */
  private readonly dirtyClients = new Set<string>();
  private bound: { host: string; port: number } | null = null;
  private stopping = false;

  constructor(
    public config: ListenerConfig,
    private readonly deps: ListenerDeps,
  ) {}

  get name(): string {
    return this.config.name;
  }

  /** The bound address (port 0 resolved), or null before start. */
  address(): { host: string; port: number } | null {
    return this.bound;
  }

  /** The listening server (to lend its socket to another process), or null before start. */
  get server(): Server | null {
    return this.srv;
  }

  /** Connections open through this listener (any phase). */
  get active(): number {
    return this.conns.size;
  }

  /**
   * Binds the port; rejects when it cannot (address in use, permission). With `shared`, serves
   * a listening socket bound elsewhere instead (a data-plane worker: the primary bound it).
   */
  async start(shared?: Server): Promise<{ host: string; port: number }> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    server.on('connection', (s: Socket) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const ready = () => {
        server.off('error', reject);
        resolve();
      };
      // listen(handle) with a server takes over its socket (documented for net.Server).
      if (shared) server.listen(shared, ready);
      else server.listen({ host: this.config.address, port: this.config.port }, ready);
    });
    server.on('error', (e) =>
      this.deps.logger.error('listener error', { listener: this.name, err: String(e) }),
    );
    this.srv = server;
    const a = server.address();
    this.bound =
      a && typeof a === 'object' ? { host: a.address, port: a.port } : { host: this.config.address, port: 0 };
    return this.bound;
  }

  /** Serves a connection accepted elsewhere (handed over by the primary; paused, unread). */
  adopt(client: Socket): void {
    this.onConnection(client);
  }

  /**
   * Stops accepting at once; open connections may finish for `graceMs`, then they are closed.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const server = this.srv;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    const deadline = Date.now() + graceMs;
    while (this.conns.size > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    for (const c of this.conns) {
      if (c.fwd) c.fwd.abort('aborted');
      else {
        c.client.destroy();
        c.upstream?.destroy();
      }
    }
    await closed;
  }

  /** Connections open from `address` through this listener (in this process). */
  clientConnections(address: string): number {
    return this.clients.get(address) ?? 0;
  }

  /** Per-client counts that changed since the last call (workers share them for the limit). */
  takeClientChanges(): Array<[address: string, open: number]> {
    const out: Array<[string, number]> = [];
    for (const a of this.dirtyClients) out.push([a, this.clients.get(a) ?? 0]);
    this.dirtyClients.clear();
    return out;
  }

  private countClient(address: string, delta: number): void {
    const n = (this.clients.get(address) ?? 0) + delta;
    if (n > 0) this.clients.set(address, n);
    else this.clients.delete(address);
    if (this.config.maxConnectionsPerClient > 0) this.dirtyClients.add(address);
  }

  /** Bytes held in Node's socket buffers for this listener's connections (both sides). */
  bufferedBytes(): number {
    let n = 0;
    for (const { client, upstream, fwd } of this.conns) {
      if (fwd) n += fwd.buffered();
      else n += client.readableLength + (upstream?.readableLength ?? 0);
    }
    return n;
  }

  /** Reports bytes forwarded since the last call on every open connection. */
  flushBytes(): void {
    for (const c of this.conns) this.reportBytes(c);
  }

  private reportBytes(c: Conn): void {
    if (!c.labels || !c.fwd) return;
    const now = c.fwd.bytes();
    const bytesIn = now.in - c.reported.in;
    const bytesOut = now.out - c.reported.out;
    if (bytesIn === 0 && bytesOut === 0) return;
    c.reported = now;
    this.deps.observer.bytes(c.labels, bytesIn, bytesOut);
  }

  private onConnection(client: Socket): void {
    const { observer } = this.deps;
    client.on('error', () => undefined); // reported where it matters; never an uncaught 'error'
    observer.accepted(this.name);
    if (this.stopping) {
      observer.rejected(this.name, 'stopping');
      client.destroy();
      return;
    }
    const max = this.config.maxConnections;
    if (max > 0 && this.conns.size + (this.deps.peerActive?.(this.name) ?? 0) >= max) {
      observer.rejected(this.name, 'max_connections');
      client.destroy();
      return;
    }
    const address = client.remoteAddress ?? '';
    const perClient = this.config.maxConnectionsPerClient;
    if (
      perClient > 0 &&
      this.clientConnections(address) + (this.deps.peerClient?.(this.name, address) ?? 0) >= perClient
    ) {
      observer.rejected(this.name, 'max_connections_per_client');
      client.destroy();
      return;
    }
    const c: Conn = { client, address, reported: { in: 0, out: 0 } };
    this.conns.add(c);
    this.countClient(address, 1);
    this.deps.onActiveChange?.(this);
    this.serve(c).catch((e: unknown) => {
      this.deps.logger.error('connection handling failed', { listener: this.name, err: String(e) });
      client.destroy();
      c.upstream?.destroy();
      this.forget(c);
    });
  }

  private async serve(c: Conn): Promise<void> {
    const cfg = this.config;
    const { client } = c;
    const sniffed = await sniff(client, cfg);
    if (!sniffed.ok) {
      this.deps.observer.detectionFailed(this.name, sniffed.reason);
      return this.drop(c);
    }
    if (client.destroyed) {
      this.deps.observer.detectionFailed(this.name, 'client_closed');
      return this.drop(c);
    }
    const { route, context } = routeSpecOf(
      sniffed.protocol,
      sniffed.facts,
      this.bound?.port ?? cfg.port,
      client.remoteAddress ?? '',
    );
    const tried = new Set<string>();
    const { link, observer } = this.deps;
    const exclude = (r: InstanceRecord) =>
      !r.trafficAddress || tried.has(r.instanceId) || link.ejected(r.instanceId);
    for (let attempt = 0; attempt <= this.deps.connectRetries; attempt++) {
      let decision: RouteDecision;
      try {
        // Retries are dry runs: total_requests counts each connection once.
        decision = await link.route(route, context, attempt > 0, { exclude });
      } catch (e) {
        observer.routingFailed(this.name, sniffed.protocol, 'invalid');
        this.deps.logger.debug('connection facts do not form a valid route', { err: String(e) });
        return this.drop(c);
      }
      if (!decision.routed || !decision.instance) {
        const reason =
          attempt > 0 ? 'connect_failed' : decision.failure === 'not_found' ? 'no_route' : 'no_instance';
        observer.routingFailed(this.name, sniffed.protocol, reason);
        return this.drop(c);
      }
      if (client.destroyed) {
        observer.routingFailed(this.name, sniffed.protocol, 'client_closed');
        return this.drop(c);
      }
      const inst = decision.instance;
      const labels: ConnectionLabels = {
        listener: this.name,
        protocol: sniffed.protocol,
        module_type: inst.moduleType,
        version: inst.version,
        instance: inst.instanceId,
      };
      const t0 = performance.now();
      let upstream: Socket;
      let reader: ReusedReadBuffer | undefined;
      try {
        reader = new ReusedReadBuffer();
        upstream = await connectTo(
          inst.trafficAddress,
          this.deps.connectTimeoutMs,
          (s) => (c.upstream = s),
          reader,
        );
      } catch (e) {
        c.upstream = undefined;
        // Gone (or stopped) while connecting: not the instance's fault.
        if (client.destroyed) return this.drop(c);
        const reason = (e as NodeJS.ErrnoException).code ?? 'error';
        tried.add(inst.instanceId);
        observer.connectFailed(labels, reason);
        link.connectFailed(inst, reason);
        continue;
      }
      link.connectSucceeded(inst);
      if (client.destroyed) {
        upstream.destroy();
        observer.routingFailed(this.name, sniffed.protocol, 'client_closed');
        return this.drop(c);
      }
      this.open(c, upstream, reader, inst, decision.routeId, labels, sniffed, performance.now() - t0);
      return;
    }
    observer.routingFailed(this.name, sniffed.protocol, 'connect_failed');
    return this.drop(c);
  }

  private drop(c: Conn): void {
    c.client.destroy();
    this.forget(c);
  }

  private forget(c: Conn): void {
    if (!this.conns.delete(c)) return;
    this.countClient(c.address, -1);
    this.deps.onActiveChange?.(this);
  }

  /** Accounting on, PROXY header and sniffed bytes out, forwarding on. */
  private open(
    c: Conn,
    upstream: Socket,
    reader: ReusedReadBuffer | undefined,
    inst: InstanceRecord,
    routeId: string | undefined,
    labels: ConnectionLabels,
    sniffed: { bytes: Buffer },
    connectMs: number,
  ): void {
    const { link, observer } = this.deps;
    const { client } = c;
    c.labels = labels;
    const token: ConnectionToken = link.opened(inst, routeId);
    observer.opened(labels, connectMs);
    const head: Buffer[] = [];
    if (inst.proxyProtocol !== 'none') head.push(proxyHeaderFor(client));
    head.push(sniffed.bytes);
    const opts = {
      head,
      idleTimeoutMs: this.config.idleTimeoutMs,
      reader,
      onClose: (reason: CloseReason) => {
        this.reportBytes(c);
        link.closed(token);
        observer.closed(labels, reason);
        this.forget(c);
      },
    };
    const relay = this.deps.relay;
    const native = relay?.forward(client, upstream, reader?.earlyChunks ?? [], opts);
    if (native) {
      reader?.dropEarly();
      c.upstream = undefined;
    }
    c.fwd = native ?? forward(client, upstream, opts);
  }
}
