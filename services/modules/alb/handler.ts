/**
 * The ALB data plane in one instance: an HTTP/1.1 reverse proxy. Connections come from the
 * runtime (after the PROXY header); each request is matched to a route, checked against the
 * module's rate limits (per client address, per route), and forwarded to a backend of the
 * route's pool with the X-Forwarded-* headers and a request id. Upgrades become tunnels.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { BackendPool, ConnectionSettings } from '../common/http/backend-pool.js';
import { ejectionPolicy, healthCheckSettings } from '../common/http/config-schemas.js';
import type { FrontendLimits } from '../common/http/frontend.js';
import type { ClientExchange } from '../common/http/client-exchange.js';
import { Http1Server } from '../common/http/http1-server.js';
import { PoolSet, type PoolSpec } from '../common/http/pool-set.js';
import { buildRequestHead, originForm, requestIdFor } from '../common/http/request-head.js';
import { countStatus, rawError, retryAfterSeconds } from '../common/http/responses.js';
import type { HandlerContext, TrafficHandler } from '../runtime/plugin.js';
import { albConfigSchema, poolNames, type AlbConfig } from './config.js';
import { ProxiedRequest, respondError, type ProxyContext } from './proxy-request.js';
import { RouteTable, type CompiledRoute } from './route-table.js';
import { openTunnel } from './tunnel.js';

/** The pools a config describes, with per-pool overrides applied. */
export function poolSpecs(c: AlbConfig): PoolSpec[] {
  return poolNames(c).map((name) => {
    const p = c.pools.find((x) => x.name === name);
    const hc = { ...c.healthCheck, ...p?.healthCheck };
    const ej = { ...c.passiveEjection, ...p?.passiveEjection };
    return {
      name,
      balancing: p?.balancing ?? c.balancing,
      ejection: ejectionPolicy(ej),
      healthCheck: healthCheckSettings(hc),
      backends: c.backends
        .filter((b) => b.pool === name)
        .map((b) => ({ name: b.name, address: b.address, weight: b.weight })),
    };
  });
}

export function connectionSettings(c: AlbConfig): ConnectionSettings {
  return {
    maxIdle: c.limits.maxIdlePerBackend,
    idleTimeoutMs: c.timeouts.upstreamIdleMs,
    connectTimeoutMs: c.timeouts.connectMs,
    responseTimeoutMs: c.timeouts.responseMs,
    bodyIdleTimeoutMs: c.timeouts.bodyIdleMs,
    maxResponseHeadBytes: c.limits.maxResponseHeaderBytes,
  };
}

export function frontendLimits(c: AlbConfig): FrontendLimits {
  return {
    maxHeaderBytes: c.limits.maxRequestHeaderBytes,
    headersTimeoutMs: c.timeouts.clientHeadersMs,
    requestTimeoutMs: c.timeouts.clientRequestMs,
    keepAliveTimeoutMs: c.timeouts.clientKeepAliveMs,
    idleTimeoutMs: c.timeouts.clientIdleMs,
    tlsHandshakeTimeoutMs: c.timeouts.tlsHandshakeMs,
  };
}

type Admission =
  | { route: CompiledRoute; pool: BackendPool }
  | { status: number; message: string; headers: readonly string[] };

class AlbHandler implements TrafficHandler {
  private config: AlbConfig;
  private routes: RouteTable;
  private readonly pools: PoolSet;
  private readonly server: Http1Server;
  private readonly proxyCtx: ProxyContext;
  private tls: SecureContext | null = null;
  private tlsFiles = '';

  constructor(
    private readonly ctx: HandlerContext,
    config: AlbConfig,
  ) {
    this.config = config;
    this.routes = new RouteTable(ctx.routes(), config.defaultPool);
    this.pools = new PoolSet(ctx.clock, ctx.logger, ctx.stats);
    this.pools.update(poolSpecs(config), connectionSettings(config));
    this.proxyCtx = { stats: ctx.stats, now: () => ctx.now(), retries: config.retries };
    this.loadTls(config);
    this.server = new Http1Server(
      ctx,
      {
        request: (ex) => this.onRequest(ex),
        upgrade: (ex, socket, head) => this.onUpgrade(ex, socket, head),
      },
      frontendLimits(config),
      this.tls,
    );
  }

  handleConnection: TrafficHandler['handleConnection'] = (socket, info) => this.server.accept(socket, info);

  applyConfig(raw: unknown): void {
    const parsed = albConfigSchema.safeParse(raw);
    if (!parsed.success) {
      this.ctx.logger.error(`ALB config refused, keeping the running one: ${parsed.error.message}`);
      return;
    }
    const c = parsed.data;
    this.config = c;
    this.routes = new RouteTable(this.ctx.routes(), c.defaultPool);
    this.pools.update(poolSpecs(c), connectionSettings(c));
    this.proxyCtx.retries = c.retries;
    this.loadTls(c);
    this.server.limits = frontendLimits(c);
    this.server.tls = this.tls;
  }

  /** Reads the certificate and key when their paths change; a failure keeps the previous ones. */
  private loadTls(c: AlbConfig): void {
    const files = c.tls ? `${c.tls.certFile}\n${c.tls.keyFile}` : '';
    if (files === this.tlsFiles) return;
    if (!c.tls) {
      this.tls = null;
      this.tlsFiles = '';
      return;
    }
    try {
      this.tls = createSecureContext({
        cert: readFileSync(c.tls.certFile),
        key: readFileSync(c.tls.keyFile),
      });
      this.tlsFiles = files;
    } catch (e) {
      this.ctx.stats.count('tls_config_errors');
      this.ctx.logger.error(
        `TLS certificate or key not usable, keeping the previous TLS setup: ${(e as Error).message}`,
      );
    }
  }

  /**
   * Route, pool and rate limit of a request, or why it is refused: 404 (no route), 429 (rate
   * limited, with Retry-After) or 503 (the route's pool does not exist).
   */
  private admit(ex: ClientExchange, upgrade: boolean): Admission {
    const info = ex.info;
    const route =
      this.routes.catchAll ??
      this.routes.match({
        host: ex.head.scanned.host,
        path: ex.target,
        rawHeaders: ex.rawHeaders,
        clientAddress: info.clientAddress,
        clientPort: info.clientPort,
        destinationPort: info.destinationPort,
        tls: info.proto === 'https',
        upgrade,
      });
    if (!route) {
      this.ctx.stats.count('no_route');
      return { status: 404, message: 'no route matches this request', headers: [] };
    }
    const limited = this.ctx.rateLimit([info.clientAddress, route.limitKey]);
    if (limited) {
      this.ctx.stats.count('rate_limited');
      return {
        status: 429,
        message: `rate limit ${limited.limitId} exceeded`,
        headers: ['Retry-After', retryAfterSeconds(limited.retryAfterMs)],
      };
    }
    const pool = this.pools.get(route.pool);
    if (!pool) {
      this.ctx.stats.count('no_backend');
      return {
        status: 503,
        message: `route ${route.id || '(default)'} names pool ${route.pool}, which has no backends`,
        headers: [],
      };
    }
    return { route, pool };
  }

  private onRequest(ex: ClientExchange): void {
    const startedMs = performance.now();
    const scanned = ex.head.scanned;
    const requestId = requestIdFor(scanned);
    const admitted = this.admit(ex, false);
    if ('status' in admitted) {
      respondError(ex, admitted.status, admitted.message, requestId, admitted.headers);
      this.ctx.stats.request(admitted.status < 500, performance.now() - startedMs);
      countStatus(this.ctx.stats, admitted.status);
      return;
    }
    const method = ex.method;
    const body = scanned.chunked ? 'chunked' : scanned.contentLength > 0 ? 'length' : 'none';
    const head = buildRequestHead(ex.rawHeaders, scanned, {
      method,
      target: originForm(ex.target),
      clientAddress: ex.info.clientAddress,
      proto: ex.info.proto,
      requestId,
      upgrade: false,
      body,
    });
    new ProxiedRequest(
      this.proxyCtx,
      admitted.pool,
      ex,
      {
        head,
        headRequest: method === 'HEAD',
        body: ex.body ? { stream: ex.body, chunked: body === 'chunked' } : null,
      },
      requestId,
      startedMs,
    ).start();
  }

  private onUpgrade(ex: ClientExchange, socket: Socket, clientHead: Buffer): void {
    const startedMs = performance.now();
    const stats = this.ctx.stats;
    const scanned = ex.head.scanned;
    const requestId = requestIdFor(scanned);
    const refuse = (status: number, message: string, headers: readonly string[] = []) => {
      const extra: Record<string, string> = { 'X-Request-Id': requestId };
      for (let i = 0; i < headers.length; i += 2) extra[headers[i]] = headers[i + 1];
      rawError(socket, status, `${message} (request id ${requestId})`, extra);
      stats.request(status < 500, performance.now() - startedMs);
      countStatus(stats, status);
    };
    const admitted = this.admit(ex, true);
    if ('status' in admitted) return refuse(admitted.status, admitted.message, admitted.headers);
    const { pool } = admitted;
    const head = buildRequestHead(ex.rawHeaders, scanned, {
      method: ex.method,
      target: originForm(ex.target),
      clientAddress: ex.info.clientAddress,
      proto: ex.info.proto,
      requestId,
      upgrade: true,
      body: 'none',
    });
    const attempt = (exclude: (typeof pool.backends)[number] | null, triesLeft: number) => {
      const b = pool.pick(this.ctx.now(), exclude);
      if (!b) return refuse(503, `no healthy backend in pool ${pool.name}`);
      b.active++;
      openTunnel({
        host: b.host,
        port: b.port,
        head,
        clientHead,
        client: socket,
        clock: this.ctx.clock,
        connectTimeoutMs: this.config.timeouts.connectMs,
        idleTimeoutMs: this.config.timeouts.tunnelIdleMs,
        onResponse: (status) => {
          if (status === 502 || status === 503 || status === 504) pool.failed(b, this.ctx.now());
          else pool.succeeded(b);
          stats.request(status < 500, performance.now() - startedMs);
          countStatus(stats, status);
          if (status === 101) stats.count('websocket_upgrades');
        },
        onConnectFailed: (message) => {
          b.active--;
          pool.failed(b, this.ctx.now());
          if (triesLeft > 0 && !socket.destroyed) {
            stats.count('upstream_retries');
            attempt(b, triesLeft - 1);
            return;
          }
          stats.count('upstream_errors');
          refuse(502, `backend ${b.name} failed: ${message}`);
        },
        onClosed: () => {
          b.active--;
        },
      });
    };
    attempt(null, this.config.retries);
  }

  drain(): void {
    this.server.drain();
  }

  close(): Promise<void> {
    this.server.close();
    this.pools.close();
    return Promise.resolve();
  }
}

/** Creates the ALB traffic handler for one instance. */
export function createAlbHandler(ctx: HandlerContext, config: AlbConfig): TrafficHandler {
  return new AlbHandler(ctx, config);
}
