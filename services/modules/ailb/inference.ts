/**
 * One inference request through the AILB: tries its candidate backends in order (a connection
 * failure, a timeout, a 5xx or a 429 before anything reached the client moves on to the next,
 * fallbacks included), then streams the chosen response through untouched — server-sent events
 * go out as they arrive — while a tap reads the token usage from a copy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BackendPool } from '../common/http/backend-pool.js';
import type { Exchange, ExchangeHandler, UpstreamFailure } from '../common/http/connection-pool.js';
import { buildRequestHead, type ScannedRequest } from '../common/http/request-head.js';
import type { ResponseHead } from '../common/http/response-parser.js';
import { countStatus, sendJsonError } from '../common/http/responses.js';
import type { StatsCollector } from '../runtime/stats.js';
import type { ClientConnection } from '../common/http/frontend.js';
import type { KeyBudget } from './key-budget.js';
import type { Candidate } from './model-routing.js';
import type { ModelStats } from './model-stats.js';
import { UsageTap } from './usage.js';

/** Client headers not passed on: the gateway sets framing, host and (per backend) credentials. */
const DROP = new Set(['host', 'content-length', 'accept-encoding', 'authorization', 'api-key']);
const DROP_KEEP_AUTH = new Set(['host', 'content-length', 'accept-encoding']);

export interface InferenceContext {
  stats: StatsCollector;
  modelStats: ModelStats;
  pool: BackendPool;
  now(): number;
}

export interface InferenceInput {
  req: IncomingMessage;
  res: ServerResponse;
  conn: ClientConnection;
  scanned: ScannedRequest;
  requestId: string;
  /** Path and query as the client sent them. */
  target: string;
  model: string;
  body: Record<string, unknown>;
  rawBody: Buffer;
  promptChars: number;
  candidates: Candidate[];
  budget: KeyBudget | null;
  startedMs: number;
}

export class InferenceRequest implements ExchangeHandler {
  private next = 0;
  private current: Candidate | null = null;
  private exchange: Exchange | null = null;
  private committed = false;
  private done = false;
  private status = 0;
  private tap: UsageTap | null = null;
  private firstByteMs = 0;
  private readonly resume = () => this.exchange?.resume();

  constructor(
    private readonly ctx: InferenceContext,
    private readonly i: InferenceInput,
  ) {
    i.res.once('close', () => {
      if (this.done) return;
      this.exchange?.abort();
      this.release();
      this.ctx.stats.count('client_aborts');
      this.finish(499, true);
    });
  }

  /** Sends the request to the next candidate; answers with an error when none is left. */
  attempt(lastError?: { status: number; message: string }): void {
    const c = this.i.candidates[this.next++];
    if (!c) {
      const e = lastError ?? { status: 503, message: `no healthy backend serves model ${this.i.model}` };
      this.fail(e.status, e.message, e.status === 503 ? 'service_unavailable' : 'upstream_error');
      return;
    }
    if (this.next > 1) this.ctx.stats.count(c.fallback ? 'model_fallbacks' : 'backend_retries');
    this.current = c;
    const i = this.i;
    const body =
      c.model === i.model ? i.rawBody : Buffer.from(JSON.stringify({ ...i.body, model: c.model }), 'utf8');
    const b = c.backend;
    const host = b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
    let extra = `Host: ${host}\r\nContent-Length: ${body.length}\r\n`;
    if (c.spec.apiKey) extra += `Authorization: Bearer ${c.spec.apiKey}\r\n`;
    const head = buildRequestHead(i.req.rawHeaders, i.scanned, {
      method: 'POST',
      target: i.target,
      clientAddress: i.conn.clientAddress,
      proto: i.conn.proto,
      requestId: i.requestId,
      upgrade: false,
      body: 'length',
      drop: c.spec.apiKey ? DROP : DROP_KEEP_AUTH,
      extra,
    });
    b.active++;
    b.requests++;
    this.exchange = b.connections.request({ head, headRequest: false, body }, this);
  }

  private get hasMore(): boolean {
    return this.next < this.i.candidates.length;
  }

  onHead(head: ResponseHead): void {
    const c = this.current!;
    const retryable = head.status === 429 || head.status >= 500;
    if (retryable) this.ctx.pool.failed(c.backend, this.ctx.now());
    else this.ctx.pool.succeeded(c.backend);
    if (retryable && this.hasMore) {
      // Not committed to the client yet: drop this answer and try the next backend.
      this.exchange?.abort();
      this.release();
      this.attempt();
      return;
    }
    this.committed = true;
    this.status = head.status;
    const type = headerOf(head.headers, 'content-type').toLowerCase();
    this.tap = new UsageTap(
      type.includes('text/event-stream') ? 'sse' : type.includes('json') ? 'json' : 'other',
    );
    const headers = [...head.headers, 'X-Request-Id', this.i.requestId, 'X-Ailb-Backend', c.spec.name];
    if (c.model !== this.i.model) headers.push('X-Ailb-Model', c.model);
    const res = this.i.res;
    res.writeHead(head.status, head.statusText || undefined, headers);
    // Events must not wait for the first body chunk's write to carry the head.
    if (this.tap && type.includes('text/event-stream')) res.flushHeaders();
  }

  onBody(chunk: Buffer): boolean {
    if (!this.firstByteMs) this.firstByteMs = performance.now() - this.i.startedMs;
    this.tap?.feed(chunk);
    if (this.i.res.write(chunk)) return true;
    this.i.res.once('drain', this.resume);
    return false;
  }

  onEnd(): void {
    this.release();
    this.i.res.end();
    this.finish(this.status, this.status < 500);
  }

  onError(f: UpstreamFailure): void {
    const c = this.current!;
    this.release();
    this.ctx.pool.failed(c.backend, this.ctx.now());
    if (this.done) return;
    if (this.committed) {
      this.ctx.stats.count('upstream_aborted_responses');
      this.i.res.destroy();
      this.finish(this.status, false);
      return;
    }
    const status = f.kind === 'timeout' ? 504 : 502;
    const message =
      f.kind === 'timeout'
        ? `backend ${c.spec.name} did not answer in time`
        : `backend ${c.spec.name} failed: ${f.message}`;
    this.attempt({ status, message });
  }

  private release(): void {
    if (this.current && this.exchange) {
      this.current.backend.active--;
      this.exchange = null;
    }
    this.i.res.off('drain', this.resume);
  }

  private fail(status: number, message: string, type: string): void {
    if (this.done) return;
    this.ctx.stats.count('upstream_errors');
    sendJsonError(this.i.res, status, message, type, this.i.requestId);
    this.finish(status, false);
  }

  /** Counts the request once: instance stats, per-model stats and the caller's tokens. */
  private finish(status: number, ok: boolean): void {
    if (this.done) return;
    this.done = true;
    const latencyMs = performance.now() - this.i.startedMs;
    const s = this.ctx.stats;
    s.request(ok, latencyMs);
    countStatus(s, status);
    const success = status >= 200 && status < 300;
    const usage = success && this.tap ? this.tap.finish(this.i.promptChars) : null;
    if (usage) {
      this.i.budget?.consume(usage.totalTokens, this.ctx.now());
      s.count('tokens_total', usage.totalTokens);
      if (usage.estimated) s.count('tokens_estimated', usage.totalTokens);
    }
    this.ctx.modelStats.record(this.i.model, {
      ok,
      latencyMs,
      firstByteMs: this.firstByteMs,
      promptTokens: usage?.promptTokens ?? 0,
      completionTokens: usage?.completionTokens ?? 0,
      estimated: usage?.estimated ?? false,
    });
  }
}

function headerOf(headers: readonly string[], lower: string): string {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === lower) return headers[i + 1];
  return '';
}
