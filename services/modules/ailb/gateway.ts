/**
 * The AILB data plane in one instance: an OpenAI-compatible HTTP gateway on node:http.
 * `/v1/chat/completions`, `/v1/completions` and `/v1/embeddings` are routed by the request's
 * `model` (inference.ts), after the caller's API key, the module's rate limits and the caller's
 * request and token budgets are checked; `/v1/models` lists what can be served; `/ailb/stats`
 * gives per-model figures.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { BackendPool } from '../common/http/backend-pool.js';
import { ejectionPolicy, healthCheckSettings } from '../common/http/config-schemas.js';
import { HttpFrontend, type ClientConnection, type FrontendLimits } from '../common/http/frontend.js';
import { PoolSet } from '../common/http/pool-set.js';
import { headerValue, requestIdFor, scanRequest } from '../common/http/request-head.js';
import { countStatus, retryAfterSeconds, sendJsonError } from '../common/http/responses.js';
import type { HandlerContext, TrafficHandler } from '../runtime/plugin.js';
import { ailbConfigSchema, type AilbConfig } from './config.js';
import { InferenceRequest } from './inference.js';
import { BudgetTable, type KeyBudget } from './key-budget.js';
import { ModelCatalog } from './model-catalog.js';
import { candidatesFor, type ModelBackend } from './model-routing.js';
import { ModelStats } from './model-stats.js';
import { promptChars } from './usage.js';

const POOL = 'models';
const INFERENCE_PATHS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

function frontendLimits(c: AilbConfig): FrontendLimits {
  return {
    maxHeaderBytes: 16_384,
    headersTimeoutMs: c.timeouts.clientHeadersMs,
    requestTimeoutMs: c.timeouts.clientRequestMs,
    keepAliveTimeoutMs: c.timeouts.clientKeepAliveMs,
    idleTimeoutMs: c.timeouts.clientIdleMs,
    tlsHandshakeTimeoutMs: c.timeouts.tlsHandshakeMs,
  };
}

/** Who is calling: a listed key (by name), another key (by a hash prefix) or an address. */
interface Caller {
  id: string;
  listed: AilbConfig['apiKeys'][number] | null;
  hasKey: boolean;
}

class AilbGateway implements TrafficHandler {
  private config: AilbConfig;
  private readonly pools: PoolSet;
  private backends: ModelBackend[] = [];
  private keys = new Map<string, AilbConfig['apiKeys'][number]>();
  private readonly budgets = new BudgetTable();
  private readonly modelStats: ModelStats;
  private readonly frontend: HttpFrontend;
  private readonly catalog: ModelCatalog;
  private tls: SecureContext | null = null;
  private tlsFiles = '';
  private turn = 0;

  constructor(
    private readonly ctx: HandlerContext,
    config: AilbConfig,
  ) {
    this.config = config;
    this.pools = new PoolSet(ctx.clock, ctx.logger, ctx.stats);
    this.modelStats = new ModelStats(ctx.stats);
    this.catalog = new ModelCatalog(ctx);
    this.configure(config);
    this.frontend = new HttpFrontend(
      ctx,
      {
        request: (req, res, conn) => this.onRequest(req, res, conn),
        upgrade: (_req, socket: Duplex) => {
          socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        },
      },
      frontendLimits(config),
      this.tls,
    );
  }

  private configure(c: AilbConfig): void {
    this.config = c;
    this.pools.update(
      [
        {
          name: POOL,
          balancing: c.balancing,
          ejection: ejectionPolicy(c.passiveEjection),
          healthCheck: healthCheckSettings(c.healthCheck),
          backends: c.backends.map((b) => ({ name: b.name, address: b.address, weight: b.weight })),
        },
      ],
      {
        maxIdle: 256,
        idleTimeoutMs: c.timeouts.upstreamIdleMs,
        connectTimeoutMs: c.timeouts.connectMs,
        responseTimeoutMs: c.timeouts.responseMs,
        bodyIdleTimeoutMs: c.timeouts.bodyIdleMs,
        maxResponseHeadBytes: 65_536,
      },
    );
    const byName = new Map(this.pool.backends.map((b) => [b.name, b]));
    this.backends = c.backends.map((spec) => ({ spec, backend: byName.get(spec.name)! }));
    this.keys = new Map(
      c.apiKeys.map((k) => [
        k.keySha256 ??
          createHash('sha256')
            .update(k.key ?? '')
            .digest('hex'),
        k,
      ]),
    );
    this.catalog.reset();
    this.loadTls(c);
  }

  private get pool(): BackendPool {
    return this.pools.get(POOL)!;
  }

  handleConnection: TrafficHandler['handleConnection'] = (socket, info) => this.frontend.accept(socket, info);

  applyConfig(raw: unknown): void {
    const parsed = ailbConfigSchema.safeParse(raw);
    if (!parsed.success) {
      this.ctx.logger.error(`AILB config refused, keeping the running one: ${parsed.error.message}`);
      return;
    }
    this.configure(parsed.data);
    this.frontend.update(frontendLimits(parsed.data), this.tls);
  }

  private loadTls(c: AilbConfig): void {
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

  private callerOf(raw: readonly string[], conn: ClientConnection): Caller {
    const auth = headerValue(raw, 'authorization');
    const key = (auth && /^Bearer\s+(\S+)$/i.exec(auth)?.[1]) || headerValue(raw, 'api-key') || '';
    if (!key) return { id: `addr:${conn.clientAddress}`, listed: null, hasKey: false };
    const sha = createHash('sha256').update(key).digest('hex');
    const listed = this.keys.get(sha) ?? null;
    return { id: listed ? `key:${listed.name}` : `key:${sha.slice(0, 12)}`, listed, hasKey: true };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, conn: ClientConnection): void {
    const startedMs = performance.now();
    const scanned = scanRequest(req.rawHeaders);
    const requestId = requestIdFor(scanned);
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    const reply = (status: number, message: string, type: string, headers: Record<string, string> = {}) => {
      sendJsonError(res, status, message, type, requestId, headers);
      this.ctx.stats.request(status < 500, performance.now() - startedMs);
      countStatus(this.ctx.stats, status);
    };
    const caller = this.callerOf(req.rawHeaders, conn);
    if (this.config.requireApiKey && !caller.listed) {
      this.ctx.stats.count('unauthorized');
      return reply(
        401,
        caller.hasKey ? 'invalid API key' : 'an API key is required (Authorization: Bearer …)',
        'invalid_request_error',
      );
    }
    if (req.method === 'GET' && (path === '/v1/models' || path.startsWith('/v1/models/'))) {
      void this.catalog
        .serve(path.slice('/v1/models/'.length), res, requestId, this.config, this.backends)
        .then((status) => {
          this.ctx.stats.request(status < 500, performance.now() - startedMs);
          countStatus(this.ctx.stats, status);
        });
      return;
    }
    if (req.method === 'GET' && path === '/ailb/stats') {
      const body = JSON.stringify({ models: this.modelStats.snapshot(), backends: this.backendStates() });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    if (!INFERENCE_PATHS.has(path)) {
      return reply(404, `unknown endpoint ${req.method} ${path}`, 'invalid_request_error');
    }
    if (req.method !== 'POST') return reply(405, `use POST for ${path}`, 'invalid_request_error');
    const max = this.config.maxRequestBodyBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        if (!tooLarge) {
          tooLarge = true;
          reply(413, `request body larger than ${max} bytes`, 'invalid_request_error', {
            Connection: 'close',
          });
          req.destroy();
        }
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) return;
      let body: Record<string, unknown>;
      const rawBody = Buffer.concat(chunks);
      try {
        const parsed: unknown = JSON.parse(rawBody.toString('utf8'));
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        body = parsed as Record<string, unknown>;
      } catch {
        return reply(400, 'the request body is not a JSON object', 'invalid_request_error');
      }
      const model = body.model;
      if (typeof model !== 'string' || !model)
        return reply(400, 'the request has no "model"', 'invalid_request_error');
      this.infer({ req, res, conn, scanned, requestId, url, model, body, rawBody, caller, startedMs, reply });
    });
  }

  private infer(a: {
    req: IncomingMessage;
    res: ServerResponse;
    conn: ClientConnection;
    scanned: ReturnType<typeof scanRequest>;
    requestId: string;
    url: string;
    model: string;
    body: Record<string, unknown>;
    rawBody: Buffer;
    caller: Caller;
    startedMs: number;
    reply: (status: number, message: string, type: string, headers?: Record<string, string>) => void;
  }): void {
    const now = this.ctx.now();
    const limited = this.ctx.rateLimit([a.caller.id, a.conn.clientAddress, `model:${a.model}`]);
    if (limited) {
      this.ctx.stats.count('rate_limited');
      return a.reply(429, `rate limit ${limited.limitId} exceeded`, 'rate_limit_exceeded', {
        'Retry-After': retryAfterSeconds(limited.retryAfterMs),
      });
    }
    const limits = {
      tokensPerMinute: a.caller.listed?.tokensPerMinute ?? this.config.limits.tokensPerMinute,
      requestsPerMinute: a.caller.listed?.requestsPerMinute ?? this.config.limits.requestsPerMinute,
    };
    let budget: KeyBudget | null = null;
    if (limits.tokensPerMinute > 0 || limits.requestsPerMinute > 0) {
      budget = this.budgets.get(a.caller.id, limits, now);
      const admitted = budget.admit(now);
      if (!admitted.ok) {
        this.ctx.stats.count(admitted.limit === 'tokens' ? 'token_limited' : 'rate_limited');
        return a.reply(
          429,
          `${admitted.limit === 'tokens' ? 'tokens' : 'requests'} per minute exceeded for ${a.caller.id}`,
          'rate_limit_exceeded',
          { 'Retry-After': retryAfterSeconds(admitted.retryAfterMs) },
        );
      }
    }
    const { candidates, served } = candidatesFor(a.model, this.backends, this.config, now, this.turn++);
    if (!served) {
      this.ctx.stats.count('model_not_found');
      return a.reply(404, `model ${a.model} is not served here (see GET /v1/models)`, 'model_not_found');
    }
    new InferenceRequest(
      { stats: this.ctx.stats, modelStats: this.modelStats, pool: this.pool, now: () => this.ctx.now() },
      {
        req: a.req,
        res: a.res,
        conn: a.conn,
        scanned: a.scanned,
        requestId: a.requestId,
        target: a.url,
        model: a.model,
        body: a.body,
        rawBody: a.rawBody,
        promptChars: promptChars(a.body),
        candidates,
        budget,
        startedMs: a.startedMs,
      },
    ).attempt();
  }

  private backendStates() {
    const now = this.ctx.now();
    return this.pool.backends.map((b) => ({
      name: b.name,
      state: b.state(now),
      active: b.active,
      requests: b.requests,
      failures: b.failures,
    }));
  }

  drain(): void {
    this.frontend.drain();
  }

  close(): Promise<void> {
    this.frontend.close();
    this.pools.close();
    return Promise.resolve();
  }
}

/** Creates the AILB traffic handler for one instance. */
export function createAilbGateway(ctx: HandlerContext, config: AilbConfig): TrafficHandler {
  return new AilbGateway(ctx, config);
}
