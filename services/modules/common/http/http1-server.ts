/**
 * A lean HTTP/1.1 server for the ALB's client side, fed sockets by the instance runtime. It
 * exists for speed: node:http builds an IncomingMessage and a ServerResponse (two streams) per
 * request, which cost about a third of the ALB's CPU per request in the benchmark; this server
 * parses heads strictly (request-parser.ts), streams bodies (a Readable only when there is one),
 * writes responses in one write (client-exchange.ts), keeps connections alive, serves
 * pipelined requests in order, and bounds every client: head size, time to send the head
 * (slowloris) and the whole request, and keep-alive idleness. Malformed input gets a 4xx and a
 * close.
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { SecureContext } from 'node:tls';
import type { TimerHandle } from '../../../shared/clock.js';
import type { ConnectionInfo, HandlerContext } from '../../runtime/plugin.js';
import { ChunkedDecoder } from './chunked.js';
import { ClientExchange, RequestBody, type ExchangeConnection } from './client-exchange.js';
import type { ClientConnection, FrontendLimits } from './frontend.js';
import { parseRequestHead } from './request-parser.js';
import { isShared, readIntoSharedBuffer } from './shared-read-buffer.js';
import { headText } from './syntax.js';
import { acceptMaybeTls } from './tls-accept.js';

export interface Http1Handlers {
  request(ex: ClientExchange): void;
  /** A protocol upgrade: the socket is the handler's from now on; `head` was sent after the request. */
  upgrade(ex: ClientExchange, socket: Socket, head: Buffer): void;
}

/** Bytes of pipelined requests buffered while one is served, before reading pauses. */
const MAX_PIPELINED_BYTES = 256 * 1024;
const SWEEP_MS = 100;
const EMPTY = Buffer.alloc(0);

const enum State {
  Head,
  Body,
  Wait,
  Closed,
  Detached,
}

class Http1Connection implements ExchangeConnection {
  current: ClientExchange | null = null;
  /** No further requests: close once the current response is done. */
  closing = false;
  deadlineMs: number;
  /** 408 when the deadline is the client's fault mid-request; 0 to close silently. */
  private deadlineStatus = 0;
  private state = State.Head;
  private pending: Buffer | null = null;
  private body: RequestBody | null = null;
  private bodyRemaining = 0;
  private chunked: ChunkedDecoder | null = null;
  private bodyPaused = false;
  private clientEnded = false;

  constructor(
    private readonly server: Http1Server,
    readonly socket: Socket,
    private readonly info: ClientConnection,
  ) {
    // Half-closed clients (request sent, then FIN) still get their response.
    (socket as Socket & { allowHalfOpen: boolean }).allowHalfOpen = true;
    socket.setNoDelay(true);
    this.deadlineMs = server.nowMs + server.limits.headersTimeoutMs;
    // Reads go into the process's shared buffer (no ArrayBuffer per read for the GC to sweep);
    // whatever was already buffered goes first, on the next tick as a 'data' listener gets it.
    const early = readIntoSharedBuffer(socket, this.onSharedChunk);
    if (early) {
      socket.resume(); // flowing: 'end' is emitted; reading starts (net.Socket, user buffer)
      if (early.length) process.nextTick(() => early.forEach((b) => this.onData(b)));
    } else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
    socket.on('error', noop);
  }

  /** A read in the shared buffer: valid only now, so whatever is kept of it is copied. */
  private readonly onSharedChunk = (chunk: Buffer): void => {
    if (this.state === State.Detached) {
      // Upgraded: the new owner listens for 'data' (pipe() pauses and resumes the socket).
      this.socket.emit('data', Buffer.from(chunk));
      return;
    }
    this.onData(chunk);
    if (this.pending && isShared(this.pending)) this.pending = Buffer.from(this.pending);
  };

  private readonly onData = (chunk: Buffer): void => {
    switch (this.state) {
      case State.Head:
        this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
        if (this.deadlineStatus === 0) {
          // First bytes of a request: the head must be complete in time.
          this.deadlineMs = this.server.nowMs + this.server.limits.headersTimeoutMs;
          this.deadlineStatus = 408;
        }
        this.processHeads();
        return;
      case State.Body:
        this.feedBody(chunk);
        return;
      case State.Wait:
        this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
        if (this.pending.length > MAX_PIPELINED_BYTES) this.socket.pause();
        return;
      default:
        return;
    }
  };

  /** Parses buffered request heads; dispatches one request and stops (the next waits for it). */
  private processHeads(): void {
    const buf = this.pending;
    if (!buf) return;
    // Empty lines before a request line are allowed (RFC 9112 §2.2).
    let start = 0;
    while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
    const text = headText(buf, start);
    const limit = this.server.limits.maxHeaderBytes;
    if (text === null) {
      if (buf.length - start > limit) this.reject(431, 'request head too large');
      else this.pending = start ? buf.subarray(start) : buf;
      return;
    }
    if (text.length > limit) return this.reject(431, 'request head too large');
    const parsed = parseRequestHead(text);
    const next = start + text.length + 4;
    this.pending = next < buf.length ? buf.subarray(next) : null;
    if (!parsed.ok) return this.reject(parsed.status, parsed.reason);
    const head = parsed.head;
    const s = head.scanned;
    if (head.upgrade) {
      this.detach();
      const ex = new ClientExchange(this, head, this.info, null);
      const rest = this.pending ?? EMPTY;
      this.pending = null;
      this.server.handlers.upgrade(ex, this.socket, isShared(rest) ? Buffer.from(rest) : rest);
      return;
    }
    const hasBody = s.chunked || s.contentLength > 0;
    const body = hasBody ? new RequestBody(this, head.expectContinue) : null;
    const ex = new ClientExchange(this, head, this.info, body);
    this.current = ex;
    if (body) {
      this.state = State.Body;
      this.body = body;
      this.chunked = s.chunked ? new ChunkedDecoder((c) => this.pushBody(c)) : null;
      this.bodyRemaining = s.chunked ? 0 : s.contentLength;
      this.deadlineMs = this.server.nowMs + this.server.limits.requestTimeoutMs;
      this.deadlineStatus = 408;
    } else {
      this.state = State.Wait;
      this.deadlineMs = 0;
      this.deadlineStatus = 0;
    }
    this.server.handlers.request(ex);
    if (this.state === State.Body && this.pending) {
      const rest = this.pending;
      this.pending = null;
      this.feedBody(rest);
    }
  }

  private pushBody(c: Buffer): void {
    if (this.body && !this.body.push(isShared(c) ? Buffer.from(c) : c) && !this.bodyPaused) {
      this.bodyPaused = true;
      this.socket.pause();
    }
  }

  sendContinue(): void {
    if (this.state === State.Body && this.current && !this.current.headersSent)
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  /** The body stream wants more. */
  resumeBody(): void {
    if (this.bodyPaused) {
      this.bodyPaused = false;
      if (this.state === State.Body) this.socket.resume();
    }
  }

  private feedBody(chunk: Buffer): void {
    let used: number;
    if (this.chunked) {
      const r = this.chunked.execute(chunk);
      if (typeof r === 'string') {
        this.body?.destroy(new Error(r));
        this.reject(400, r);
        return;
      }
      used = r;
      if (!this.chunked.done) return;
    } else {
      used = Math.min(this.bodyRemaining, chunk.length);
      this.pushBody(used === chunk.length ? chunk : chunk.subarray(0, used));
      this.bodyRemaining -= used;
      if (this.bodyRemaining > 0) return;
    }
    // The body is complete; what follows is the next request.
    this.body?.push(null);
    this.body = null;
    this.chunked = null;
    this.deadlineMs = 0;
    this.deadlineStatus = 0;
    if (used < chunk.length) this.pending = chunk.subarray(used);
    if (this.current && !this.current.finished) this.state = State.Wait;
    else this.nextRequest();
  }

  /** The handler ended the response of `ex`. */
  exchangeDone(ex: ClientExchange): void {
    if (this.current !== ex) return;
    this.current = null;
    if (!ex.keepAlive || this.closing || this.clientEnded || this.state === State.Body) {
      // A body the handler never read (or a client that asked for it) ends the connection.
      this.state = State.Closed;
      this.socket.end();
      this.server.forget(this);
      return;
    }
    if (this.state === State.Wait) this.nextRequest();
  }

  private nextRequest(): void {
    this.state = State.Head;
    this.deadlineMs = this.server.nowMs + this.server.limits.keepAliveTimeoutMs;
    this.deadlineStatus = 0;
    if (this.socket.isPaused() && !this.bodyPaused) this.socket.resume();
    if (this.pending) {
      // A pipelined request: parse it on the next tick, not inside the previous response's call.
      process.nextTick(() => {
        if (this.state === State.Head && this.pending) {
          this.deadlineStatus = 408;
          this.deadlineMs = this.server.nowMs + this.server.limits.headersTimeoutMs;
          this.processHeads();
        }
      });
    }
  }

  /** A malformed or too slow request: a short 4xx when possible, then close. */
  reject(status: number, reason: string): void {
    const stats = this.server.stats;
    stats.count('http_client_errors');
    stats.count(`status_${Math.floor(status / 100)}xx`);
    this.pending = null;
    this.closing = true;
    const ex = this.current;
    if (ex && ex.headersSent) {
      this.destroy();
      return;
    }
    this.current = null;
    this.state = State.Closed;
    this.server.forget(this);
    if (ex) ex.finished = true;
    const body = `${status} ${STATUS_CODES[status] ?? ''}: ${reason}\n`;
    if (this.socket.writable) {
      this.socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        'latin1',
      );
    }
    // A client that never reads its answer is cut off.
    const socket = this.socket;
    const t = this.server.clock.setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => t.cancel());
    ex?.listener?.clientClosed();
  }

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    if (this.state === State.Body) {
      // The body was cut short.
      this.body?.destroy(new Error('the client closed the connection mid-body'));
      this.destroy();
      return;
    }
    if (!this.current && !this.pending) {
      this.state = State.Closed;
      this.socket.end();
      this.server.forget(this);
    }
  };

  private readonly onClose = (): void => {
    this.state = State.Closed;
    this.server.forget(this);
    this.body?.destroy(new Error('the client connection closed'));
    const ex = this.current;
    this.current = null;
    if (ex && !ex.finished) {
      ex.finished = true;
      ex.listener?.clientClosed();
    }
  };

  private readonly onDrain = (): void => {
    this.current?.listener?.clientDrained();
  };

  /** Checks the connection's deadline (called from the server's sweep). */
  check(nowMs: number): void {
    if (this.deadlineMs === 0 || nowMs < this.deadlineMs || this.state === State.Closed) return;
    this.server.stats.count(this.deadlineStatus ? 'http_client_timeouts' : 'http_idle_closed');
    if (this.deadlineStatus && !this.current?.headersSent)
      this.reject(this.deadlineStatus, 'request timeout');
    else this.destroy();
  }

  /** Hands the socket over (upgrades): no more parsing, timers or listeners here. */
  private detach(): void {
    this.state = State.Detached;
    this.server.forget(this);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.socket.off('drain', this.onDrain);
    // Nothing may be read (and lost) before the new owner listens: pipe() resumes it.
    this.socket.pause();
    (this.socket as Socket & { allowHalfOpen: boolean }).allowHalfOpen = false;
  }

  destroy(): void {
    this.state = State.Closed;
    this.server.forget(this);
    this.socket.destroy();
  }

  /**
   * No further requests on this connection: closed now when it is idle between requests (no
   * exchange, no bytes of the next request), else after its current response, which then says
   * "Connection: close".
   */
  windDown(): void {
    this.closing = true;
    if (!this.current && this.state === State.Head && !this.pending) this.destroy();
  }
}

function noop(): void {}

export class Http1Server {
  /** Coarse time, updated by the sweep: deadlines need no clock reads per request. */
  nowMs: number;
  private readonly conns = new Set<Http1Connection>();
  /** Runs only while there are connections. */
  private sweeper: TimerHandle | null = null;

  constructor(
    private readonly ctx: HandlerContext,
    readonly handlers: Http1Handlers,
    public limits: FrontendLimits,
    public tls: SecureContext | null,
  ) {
    this.nowMs = ctx.now();
  }

  get stats(): HandlerContext['stats'] {
    return this.ctx.stats;
  }

  get clock(): HandlerContext['clock'] {
    return this.ctx.clock;
  }

  /** Connections being served now. */
  get size(): number {
    return this.conns.size;
  }

  /** Takes over a connection accepted by the instance runtime. */
  accept(socket: Socket, info: ConnectionInfo): void {
    acceptMaybeTls(this.ctx, socket, this.tls, this.limits.tlsHandshakeTimeoutMs, (s, proto) => {
      this.nowMs = this.ctx.now();
      this.conns.add(new Http1Connection(this, s, { ...info, proto }));
      this.sweeper ??= this.ctx.clock.setInterval(() => this.sweep(), SWEEP_MS);
    });
  }

  forget(conn: Http1Connection): void {
    this.conns.delete(conn);
  }

  private sweep(): void {
    const now = (this.nowMs = this.ctx.now());
    for (const c of this.conns) c.check(now);
    if (this.conns.size === 0) {
      this.sweeper?.cancel();
      this.sweeper = null;
    }
  }

  /** The instance drains: idle keep-alive connections close now, busy ones after their response. */
  drain(): void {
    for (const c of [...this.conns]) c.windDown();
  }

  /** Stops the sweep; idle connections close, the runtime cuts the rest. */
  close(): void {
    this.sweeper?.cancel();
    this.sweeper = null;
    for (const c of [...this.conns]) {
      c.closing = true;
      if (!c.current) c.destroy();
    }
  }
}
