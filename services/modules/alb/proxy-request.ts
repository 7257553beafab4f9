/**
 * One client request through the ALB: picks a backend of the route's pool, streams the request
 * up and the response down (with back-pressure both ways), retries an idempotent request on a
 * connection failure (elsewhere when it can), and answers 502/503/504 itself when the backends
 * fail. Outcomes feed the pool's passive ejection and the instance's stats.
 */
import { STATUS_CODES } from 'node:http';
import type { Backend, BackendPool } from '../common/http/backend-pool.js';
import type {
  Exchange,
  ExchangeHandler,
  UpstreamFailure,
  UpstreamRequest,
} from '../common/http/connection-pool.js';
import type { ClientExchange, ClientListener } from '../common/http/client-exchange.js';
import type { ResponseHead } from '../common/http/response-parser.js';
import { countStatus } from '../common/http/responses.js';
import type { StatsCollector } from '../runtime/stats.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** A short text error response of the ALB's own, naming the request id. */
export function respondError(
  ex: ClientExchange,
  status: number,
  message: string,
  requestId: string,
  extra: readonly string[] = [],
): void {
  if (ex.headersSent) {
    ex.destroy();
    return;
  }
  ex.respond(
    status,
    ['Content-Type', 'text/plain; charset=utf-8', 'X-Request-Id', requestId, ...extra],
    `${status} ${STATUS_CODES[status] ?? ''}: ${message} (request id ${requestId})\n`,
  );
}

export interface ProxyContext {
  stats: StatsCollector;
  now(): number;
  /** Retries left for idempotent requests after a connection failure. */
  retries: number;
}

export class ProxiedRequest implements ExchangeHandler, ClientListener {
  private backend: Backend | null = null;
  private exchange: Exchange | null = null;
  private status = 0;
  private responseBytes = 0;
  private attempts = 0;
  private done = false;
  private readonly idempotent: boolean;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly pool: BackendPool,
    private readonly client: ClientExchange,
    private readonly upstream: UpstreamRequest,
    private readonly requestId: string,
    private readonly startedMs: number,
  ) {
    this.idempotent = IDEMPOTENT.has(client.method);
    client.listener = this;
  }

  clientClosed(): void {
    // The client went away before the response was complete.
    if (this.done) return;
    this.exchange?.abort();
    this.releaseBackend();
    this.ctx.stats.count('client_aborts');
    // 499 as nginx logs it; not the backends' failure, so not an error in the stats.
    this.finish(499, true);
  }

  clientDrained(): void {
    this.exchange?.resume();
  }

  /** Sends the request to a backend (or answers 503 when none is usable). */
  start(): void {
    const b = this.pool.pick(this.ctx.now());
    if (!b) {
      const why =
        this.pool.backends.length === 0
          ? `pool ${this.pool.name} has no backends`
          : `no healthy backend in pool ${this.pool.name}`;
      this.fail(503, why);
      return;
    }
    this.send(b);
  }

  private send(b: Backend): void {
    this.attempts++;
    this.backend = b;
    b.active++;
    b.requests++;
    this.exchange = b.connections.request(this.upstream, this);
  }

  onHead(head: ResponseHead): void {
    const b = this.backend!;
    this.status = head.status;
    if (head.status === 502 || head.status === 503 || head.status === 504)
      this.pool.failed(b, this.ctx.now());
    else this.pool.succeeded(b);
    const headers = head.headers;
    headers.push('X-Request-Id', this.requestId);
    // Flushed by onReadEnd (or taken along by the body bytes of the same read): no tick needed.
    this.client.writeHead(head.status, head.statusText, headers, head.contentLength, false);
  }

  onReadEnd(): void {
    this.client.flushHead();
  }

  onBody(chunk: Buffer): boolean {
    this.responseBytes += chunk.length;
    return this.client.write(chunk);
  }

  onEnd(): void {
    this.releaseBackend();
    this.client.end();
    this.finish(this.status, this.status < 500);
  }

  onError(f: UpstreamFailure): void {
    const b = this.backend!;
    this.releaseBackend();
    this.pool.failed(b, this.ctx.now());
    if (this.done) return;
    if (this.client.headersSent) {
      // Mid-response: nothing sensible can be sent any more; cut the client off.
      this.ctx.stats.count('upstream_aborted_responses');
      this.client.destroy();
      this.finish(this.status || 502, false);
      return;
    }
    const canRetry =
      this.idempotent &&
      this.attempts <= this.ctx.retries &&
      !f.bodyConsumed &&
      (f.kind === 'connect' || f.staleConnection);
    if (canRetry) {
      // Elsewhere when possible; a stale keep-alive connection is the backend's idle timeout, not
      // a sick backend, so the same one is fine then.
      const now = this.ctx.now();
      const next = this.pool.pick(now, b) ?? (f.staleConnection && b.usable(now) ? b : null);
      if (next) {
        this.ctx.stats.count('upstream_retries');
        this.send(next);
        return;
      }
    }
    if (f.kind === 'timeout') this.fail(504, `backend ${b.name} did not answer in time`);
    else this.fail(502, `backend ${b.name} failed: ${f.message}`);
  }

  private releaseBackend(): void {
    if (this.backend) {
      this.backend.active--;
      this.backend = null;
    }
  }

  private fail(status: number, message: string): void {
    if (this.done) return;
    this.status = status;
    this.ctx.stats.count(status === 503 ? 'no_backend' : 'upstream_errors');
    respondError(this.client, status, message, this.requestId);
    this.finish(status, false);
  }

  /** Counts the request once. */
  private finish(status: number, ok: boolean): void {
    if (this.done) return;
    this.done = true;
    const s = this.ctx.stats;
    s.request(ok, performance.now() - this.startedMs);
    countStatus(s, status);
    if (this.responseBytes) s.count('response_body_bytes', this.responseBytes);
    const sent = this.exchange?.bodyBytes ?? 0;
    if (sent) s.count('request_body_bytes', sent);
  }
}
