/**
 * One module instance: a traffic listener handed to the module type's handler, connection
 * and request accounting, rate limits, and its own lease with the NLB (it registers itself).
 * The same code runs inside the controller (inprocess provider) or in a child process.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { HealthStatus, ProxyProtocolMode, type Route } from '../../../proto/gen/marchproxy/types.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { moduleTypeEnum, protocolEnum, routeToProto, statsToProto } from '../../nlb/transport/convert.js';
import type { RouteSpec } from '../../nlb/domain/types.js';
import type { NlbApi } from './nlb-api.js';
import type { ModuleTypePlugin, TrafficHandler } from './plugin.js';
import { readProxyHeader } from './proxy-header-reader.js';
import { createRegistrationAgent, type RegistrationAgent } from './registration.js';
import { createProcessSampler, StatsCollector, type StatsSnapshot } from './stats.js';
import { RateLimitTable, type RateLimitSpec } from './token-bucket.js';
import { LimitLog } from '../../shared/limit-log.js';

/** Everything an instance needs to know from its controller; pushed again on every change. */
export interface InstanceSnapshot {
  routes: RouteSpec[];
  rateLimits: RateLimitSpec[];
  config: unknown;
  maxConnections: number;
}

export interface InstanceOptions {
  id: string;
  plugin: ModuleTypePlugin;
  version: string;
  clock: Clock;
  logger: Logger;
  nlb: NlbApi;
  /** The controller's ModuleService address (registered as the instance's `address`). */
  controllerAddress: string;
  /** Interface for the traffic listener; the port is chosen by the OS. */
  host: string;
  heartbeatIntervalMs: number;
  snapshot: InstanceSnapshot;
  /** Called when the NLB asks for a reload. */
  onReloadRequested?: () => void;
  /**
   * Rewrites the stats the instance reports (heartbeats, GetStats). The simulator and tests use
   * it to give in-process instances a synthetic load; production instances report as measured.
   */
  statsFilter?: (instanceId: string, measured: StatsSnapshot) => StatsSnapshot;
  /** A number in [0,1) for retry jitter (default Math.random); the simulator seeds it. */
  random?: () => number;
  /**
   * Reads process CPU % and RSS (default: this process). The simulator, whose stats come from
   * `statsFilter`, passes a constant one: the syscalls cost more than the rest of a heartbeat.
   */
  processSampler?: () => { cpuPercent: number; rssMb: number };
  /**
   * How long a new connection may take to show (or not) a PROXY header before it is handed on
   * without one (default 1000 ms; only server-first protocols reached directly ever wait).
   */
  proxyHeaderTimeoutMs?: number;
}

/**
 * Counters that mean a limit or a time budget was hit (docs/security.md "Limits"): each is also
 * a rate-limited `limit reached` warning. The counts reach the NLB with the heartbeat stats.
 */
const LIMIT_COUNTERS = new Set([
  'refused_max_connections',
  'rate_limited',
  // The DBLB counts refused_<reason> for its balancer's LIMIT_REASONS (a test keeps them in step).
  'refused_full',
  'refused_queue_full',
  'refused_rate_limited',
  'rtmp_refused_publisher_limit',
  'rtmp_refused_player_limit',
  'tls_handshake_timeout',
  'http_client_timeouts',
  'pg_startup_timeout',
  'rtmp_closed_handshake_timeout',
  'rtmp_closed_preamble_timeout',
  'rtmp_closed_preamble_too_long',
  'rtmp_closed_pending_overflow',
]);

/** Whether a stats counter is a limit hit (counted in stats, and logged through the LimitLog). */
export function isLimitCounter(name: string): boolean {
  return LIMIT_COUNTERS.has(name);
}

export type InstanceStatus = 'STARTING' | 'HEALTHY' | 'STOPPING' | 'STOPPED';

/** The id of an instance-owned route in the NLB's table: unique per instance. */
export const nlbRouteId = (instanceId: string, routeId: string) => `${instanceId}:${routeId}`;

export class ModuleInstanceRuntime {
  readonly stats: StatsCollector;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly limits = new RateLimitTable();
  private readonly sampler: () => { cpuPercent: number; rssMb: number };
  private handler: TrafficHandler;
  private agent: RegistrationAgent;
  private snapshot: InstanceSnapshot;
  private statusValue: InstanceStatus = 'STARTING';
  /** The routes (proto JSON) the NLB was last given, by a registration or an UpdateRouting. */
  private announcedRoutes = '';
  private address = '';
  private readonly startedAtMs: number;

  constructor(private readonly o: InstanceOptions) {
    this.snapshot = o.snapshot;
    this.sampler = o.processSampler ?? createProcessSampler();
    this.startedAtMs = o.clock.now();
    this.stats = new StatsCollector(this.startedAtMs);
    const limitLog = new LimitLog(o.logger, () => o.clock.now());
    this.stats.onCount = (name) => {
      if (isLimitCounter(name)) limitLog.hit(name, { instance: o.id });
    };
    this.limits.set(o.snapshot.rateLimits);
    this.handler = o.plugin.createHandler(
      {
        logger: o.logger,
        stats: this.stats,
        now: () => o.clock.now(),
        clock: o.clock,
        routes: () => this.snapshot.routes,
        rateLimit: (keys) => (this.limits.size === 0 ? null : this.limits.check(keys, o.clock.now())),
      },
      o.snapshot.config,
    );
    this.server = createServer({ pauseOnConnect: false }, (s) => this.accept(s));
    this.server.on('error', (e) =>
      o.logger.error(`traffic listener error: ${e.message}`, { instance: o.id }),
    );
    this.agent = createRegistrationAgent({
      clock: o.clock,
      logger: o.logger,
      nlb: o.nlb,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      random: o.random,
      request: () => this.registration(),
      stats: () => statsToProto(o.id, this.statsSnapshot())!,
      status: () => HealthStatus[`HEALTH_STATUS_${this.statusValue}`],
      onInstructions: (ins) => {
        if (ins.reload === 'true') o.onReloadRequested?.();
      },
      // Routes pushed while the registration was in flight went out with neither it nor an
      // UpdateRouting: send them now.
      onRegistered: (sent) => {
        this.announcedRoutes = JSON.stringify(sent.initialRoutes);
        void this.announceRoutes().catch((e: Error) =>
          o.logger.warn(`could not announce routes after registering: ${e.message}`, { instance: o.id }),
        );
      },
    });
  }

  get id(): string {
    return this.o.id;
  }

  get trafficAddress(): string {
    return this.address;
  }

  get status(): InstanceStatus {
    return this.statusValue;
  }

  /** The lease with the NLB (state and counters, for status output and tests). */
  get lease(): RegistrationAgent {
    return this.agent;
  }

  /** Opens the traffic listener and registers with the NLB. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, this.o.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    const port = typeof a === 'object' && a ? a.port : 0;
    this.address = `${this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host}:${port}`;
    this.statusValue = 'HEALTHY';
    this.agent.start();
  }

  private accept(s: Socket): void {
    if (
      this.statusValue !== 'HEALTHY' ||
      (this.snapshot.maxConnections > 0 && this.sockets.size >= this.snapshot.maxConnections)
    ) {
      this.stats.count(this.statusValue === 'HEALTHY' ? 'refused_max_connections' : 'refused_draining');
      s.destroy();
      return;
    }
    this.sockets.add(s);
    this.stats.connectionOpened();
    s.once('close', () => {
      this.sockets.delete(s);
      this.stats.connectionClosed(s.bytesRead, s.bytesWritten);
    });
    s.on('error', () => undefined);
    // The NLB puts a PROXY v2 header first; direct connections (tests, health probes) have none.
    readProxyHeader(s, this.o.clock, this.o.proxyHeaderTimeoutMs ?? 1000, (outcome) => {
      if (outcome.kind === 'closed' || s.destroyed) return;
      if (outcome.kind === 'invalid') {
        this.stats.count('proxy_header_invalid');
        s.destroy();
        return;
      }
      // LOCAL, UNSPEC and UNIX headers carry no IP: keep the connection's own endpoints.
      const h =
        outcome.kind === 'header' && (outcome.header.family === 'IPv4' || outcome.header.family === 'IPv6')
          ? outcome.header
          : null;
      this.handler.handleConnection(s, {
        clientAddress: h ? h.srcAddress : (s.remoteAddress ?? ''),
        clientPort: h ? h.srcPort : (s.remotePort ?? 0),
        proxied: h !== null,
        destinationPort: h ? h.dstPort : (s.localPort ?? 0),
      });
    });
  }

  private registration() {
    const o = this.o;
    return {
      instance: {
        instanceId: o.id,
        moduleType: moduleTypeEnum(o.plugin.type),
        address: o.controllerAddress,
        healthStatus: HealthStatus[`HEALTH_STATUS_${this.statusValue}`],
        metadata: {
          pid: String(process.pid),
          data_plane: o.plugin.placeholderDataPlane ? 'placeholder' : 'real',
        },
        startedAt: new Date(this.startedAtMs),
        currentConnections: this.sockets.size,
        maxConnections: this.snapshot.maxConnections,
        version: o.version,
        trafficWeight: 0,
        trafficAddress: this.address,
        // Instances read the header (proxy-header-reader.ts), so they ask for it.
        proxyProtocol: ProxyProtocolMode.PROXY_PROTOCOL_MODE_V2,
        draining: this.statusValue === 'STOPPING',
        protocols: o.plugin.protocols.map(protocolEnum),
      },
      initialRoutes: this.nlbRoutes(),
      healthConfig: undefined,
      capabilities: o.plugin.capabilities(this.snapshot.config),
    };
  }

  private nlbRoutes(): Route[] {
    return this.snapshot.routes.map((r) => routeToProto({ ...r, routeId: nlbRouteId(this.o.id, r.routeId) }));
  }

  /** Current counters plus process CPU and memory. */
  statsSnapshot(): StatsSnapshot {
    const measured = this.stats.snapshot(this.sampler());
    return this.o.statsFilter ? this.o.statsFilter(this.o.id, measured) : measured;
  }

  /** Applies a new snapshot: limits and config live; routes are re-announced to the NLB. */
  async apply(next: InstanceSnapshot): Promise<void> {
    this.snapshot = next;
    this.limits.set(next.rateLimits);
    this.handler.applyConfig(next.config);
    await this.announceRoutes();
  }

  /**
   * Sends the routes to the NLB when they differ from the last ones it got (in the registration
   * or an UpdateRouting). Not registered: the next registration carries them.
   */
  private async announceRoutes(): Promise<void> {
    if (this.agent.state !== 'registered') return;
    const routes = this.nlbRoutes();
    const current = JSON.stringify(routes);
    if (current === this.announcedRoutes) return;
    const res = await this.o.nlb.updateRouting({
      routes,
      replaceAll: true,
      sourceInstanceId: this.o.id,
      validateOnly: false,
    });
    if (!res.success) throw new Error(`the NLB refused the routes of ${this.o.id}: ${res.message}`);
    this.announcedRoutes = current;
  }

  /**
   * Stops taking connections, tells the NLB (graceful unregistration), and waits up to
   * `timeoutMs` for open connections to finish. Returns how many were still open.
   */
  async drain(timeoutMs: number): Promise<number> {
    if (this.statusValue === 'STOPPED') return 0;
    this.statusValue = 'STOPPING';
    this.server.close();
    await this.agent.stop(true, Math.ceil(timeoutMs / 1000));
    // Out of the NLB's routing now: the handler may end what it can (idle keep-alives).
    this.handler.drain?.();
    const deadline = this.o.clock.now() + timeoutMs;
    while (this.sockets.size > 0 && this.o.clock.now() < deadline) {
      await this.o.clock.sleep(Math.min(50, Math.max(1, deadline - this.o.clock.now())));
    }
    return this.sockets.size;
  }

  /** Stops the instance: graceful drains first; then remaining connections are cut. */
  async stop(graceful: boolean, timeoutMs: number): Promise<void> {
    if (this.statusValue === 'STOPPED') return;
    if (graceful) await this.drain(timeoutMs);
    else {
      this.statusValue = 'STOPPING';
      this.server.close();
      await this.agent.stop(false);
    }
    for (const s of this.sockets) s.destroy();
    await this.handler.close();
    this.statusValue = 'STOPPED';
  }

  /** Dies without unregistering: listener and connections gone, the NLB finds out by missed heartbeats. */
  crash(): void {
    this.statusValue = 'STOPPED';
    this.agent.abandon();
    this.server.close();
    for (const s of this.sockets) s.destroy();
    void this.handler.close();
  }

  /** Zeroes counters (GetStats reset_counters). */
  resetStats(): void {
    this.stats.reset(this.o.clock.now());
  }
}
