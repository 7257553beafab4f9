/**
 * The client side of the HTTP modules: a node:http server that never listens itself; the
 * instance runtime hands it accepted sockets (`accept`), after the PROXY header. It bounds what
 * a client can do (header size, time to send headers and the whole request, idle keep-alive),
 * answers malformed requests with a 4xx and closes, and optionally terminates TLS
 * (tls-accept.ts). The AILB uses it; the ALB has its own leaner server (http1-server.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { ConnectionInfo, HandlerContext } from '../../runtime/plugin.js';
import { acceptMaybeTls } from './tls-accept.js';
import type { TimerHandle } from '../../../shared/clock.js';

export interface FrontendLimits {
  maxHeaderBytes: number;
  /** Time to receive a complete request head (slowloris). */
  headersTimeoutMs: number;
  /** Time to receive a complete request, body included. */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way is closed after this (0 = never). */
  idleTimeoutMs: number;
  tlsHandshakeTimeoutMs: number;
}

/** What the request handlers learn about the client connection. */
export interface ClientConnection extends ConnectionInfo {
  proto: 'http' | 'https';
}

export interface FrontendHandlers {
  request(req: IncomingMessage, res: ServerResponse, conn: ClientConnection): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, conn: ClientConnection): void;
}

const CLIENT_ERROR_STATUS: Readonly<Record<string, [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
  HPE_HEADERS_TIMEOUT: [408, 'Request Timeout'],
};

/** How often a draining frontend closes connections that went idle. */
const DRAIN_SWEEP_MS = 50;

export class HttpFrontend {
  private server: Server;
  /** Servers replaced by update(), still serving their connections. */
  private readonly retired: Server[] = [];
  private limits: FrontendLimits;
  private tls: SecureContext | null;
  private readonly conns = new WeakMap<object, ClientConnection>();
  private readonly tracking = new WeakSet<Server>();
  /** Set by drain(): responses end their connection. */
  private draining = false;
  /** While draining: closes connections that went idle since (responses begun before drain). */
  private drainSweep: TimerHandle | null = null;

  constructor(
    private readonly ctx: HandlerContext,
    private readonly handlers: FrontendHandlers,
    limits: FrontendLimits,
    tls: SecureContext | null,
  ) {
    this.limits = limits;
    this.tls = tls;
    this.server = this.createServer();
  }

  private createServer(): Server {
    const l = this.limits;
    const server = createServer({
      maxHeaderSize: l.maxHeaderBytes,
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      // How often Node checks the two timeouts above (its default, 30 s, is too coarse).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, l.headersTimeoutMs / 4)),
      noDelay: true,
    });
    server.timeout = l.idleTimeoutMs;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (this.draining) res.shouldKeepAlive = false;
      this.handlers.request(req, res, this.connOf(req.socket));
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handlers.upgrade(req, socket, head, this.connOf(socket)),
    );
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      this.ctx.stats.count('http_connect_refused');
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.clientError(err, socket));
    server.on('timeout', (socket: Socket) => {
      this.ctx.stats.count('http_idle_timeout');
      socket.destroy();
    });
    return server;
  }

  private connOf(socket: object): ClientConnection {
    return (
      this.conns.get(socket) ?? {
        clientAddress: '',
        clientPort: 0,
        proxied: false,
        destinationPort: 0,
        proto: 'http',
      }
    );
  }

  /** A malformed or too slow request: a short 4xx when the socket can still take it, then close. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const code = err.code ?? '';
    this.ctx.stats.count('http_client_errors');
    if (code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, text] = CLIENT_ERROR_STATUS[code] ?? [400, 'Bad Request'];
    this.ctx.stats.count(`status_${Math.floor(status / 100)}xx`);
    const body = `${status} ${text}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    // end() waits for the client to read; a client that never does is cut off.
    const t = this.ctx.clock.setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => t.cancel());
  }

  /** Takes over a connection accepted by the instance runtime. */
  accept(socket: Socket, info: ConnectionInfo): void {
    acceptMaybeTls(this.ctx, socket, this.tls, this.limits.tlsHandshakeTimeoutMs, (s, proto) =>
      this.serve(s, { ...info, proto }),
    );
  }

  private serve(socket: Socket, conn: ClientConnection): void {
    if (!this.tracking.has(this.server)) {
      // Node tracks connections for headersTimeout/requestTimeout (with a timer) only once the
      // server is "listening"; this one never listens (sockets come from the runtime), so it is
      // told so — at its first connection, so idle instances run no timer.
      this.tracking.add(this.server);
      this.server.emit('listening');
    }
    this.conns.set(socket, conn);
    this.server.emit('connection', socket);
  }

  /** New limits or certificate; a new header-size limit takes a new server (for new connections). */
  update(limits: FrontendLimits, tls: SecureContext | null): void {
    const rebuild = limits.maxHeaderBytes !== this.limits.maxHeaderBytes;
    this.limits = limits;
    this.tls = tls;
    if (rebuild) {
      this.server.closeIdleConnections();
      this.retired.push(this.server);
      this.server = this.createServer();
      return;
    }
    const s = this.server;
    s.headersTimeout = limits.headersTimeoutMs;
    s.requestTimeout = limits.requestTimeoutMs;
    s.keepAliveTimeout = limits.keepAliveTimeoutMs;
    s.timeout = limits.idleTimeoutMs;
  }

  /**
   * The instance drains: idle keep-alive connections close now; a response in progress ends its
   * connection when it is done (new requests on a busy connection get "Connection: close").
   */
  drain(): void {
    this.draining = true;
    const sweep = () => {
      for (const s of [this.server, ...this.retired]) s.closeIdleConnections();
    };
    sweep();
    // No per-request hook for this rare case: a response in progress at drain() leaves its
    // connection idle when it ends, and the next sweep closes it.
    this.drainSweep ??= this.ctx.clock.setInterval(sweep, DRAIN_SWEEP_MS);
  }

  /** Stops the timeout checks and closes idle keep-alive connections (the runtime cuts the rest). */
  close(): void {
    this.drainSweep?.cancel();
    this.drainSweep = null;
    for (const s of [this.server, ...this.retired]) if (this.tracking.has(s)) s.close();
  }
}
