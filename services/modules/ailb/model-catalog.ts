/**
 * What the AILB can serve, for `/v1/models`: the exact model names of its config and, for
 * backends that serve patterns, the entries of the backend's own `/v1/models` that match them
 * (asked with a short budget, kept for a while).
 */
import type { ServerResponse } from 'node:http';
import type { Backend } from '../common/http/backend-pool.js';
import { sendJsonError } from '../common/http/responses.js';
import type { HandlerContext } from '../runtime/plugin.js';
import type { AilbConfig } from './config.js';
import { listedModels, modelRank, type ModelBackend } from './model-routing.js';

/** How long /v1/models waits for a backend's own list, and how long that list is kept. */
const MODEL_LIST_TIMEOUT_MS = 2000;
const MODEL_LIST_TTL_MS = 30_000;

export class ModelCatalog {
  private readonly remote = new Map<string, { atMs: number; ids: string[] }>();

  constructor(private readonly ctx: HandlerContext) {}

  /** Forgets the backends' lists (after a config change). */
  reset(): void {
    this.remote.clear();
  }

  /** GET /v1/models and /v1/models/{id}; resolves with the status sent. */
  async serve(
    id: string,
    res: ServerResponse,
    requestId: string,
    config: AilbConfig,
    backends: readonly ModelBackend[],
  ): Promise<number> {
    const listed = listedModels(config);
    // Backends serving patterns are asked for their own lists (cached).
    const patterned = backends.filter((b) => b.spec.models.some((m) => m.includes('*')));
    const remote = await Promise.all(patterned.map((b) => this.remoteList(b)));
    patterned.forEach((b, i) => {
      for (const m of remote[i])
        if (!listed.has(m) && modelRank(b.spec.models, m) >= 0) listed.set(m, b.spec.name);
    });
    const entry = (m: string, owner: string) => ({ id: m, object: 'model', created: 0, owned_by: owner });
    if (id) {
      const owner =
        listed.get(id) ?? backends.find((b) => modelRank(b.spec.models, id) >= 0)?.spec.name ?? null;
      if (!owner) {
        sendJsonError(res, 404, `model ${id} is not served here`, 'model_not_found', requestId);
        return 404;
      }
      const body = JSON.stringify(entry(id, owner));
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': requestId });
      res.end(body);
      return 200;
    }
    const body = JSON.stringify({
      object: 'list',
      data: [...listed].sort(([a], [b]) => a.localeCompare(b)).map(([m, owner]) => entry(m, owner)),
    });
    res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': requestId });
    res.end(body);
    return 200;
  }

  /** A backend's own /v1/models ids (empty when it does not answer in time). */
  private remoteList(b: ModelBackend): Promise<string[]> {
    const cached = this.remote.get(b.spec.name);
    const now = this.ctx.now();
    if (cached && now - cached.atMs < MODEL_LIST_TTL_MS) return Promise.resolve(cached.ids);
    return fetchModelIds(b.backend, b.spec.apiKey, this.ctx).then((ids) => {
      this.remote.set(b.spec.name, { atMs: this.ctx.now(), ids });
      return ids;
    });
  }
}

/** GET /v1/models on a backend over its pooled connections; [] on any failure. */
function fetchModelIds(b: Backend, apiKey: string | undefined, ctx: HandlerContext): Promise<string[]> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let settled = false;
    const done = (ids: string[]) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      resolve(ids);
    };
    const host = b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
    const auth = apiKey ? `Authorization: Bearer ${apiKey}\r\n` : '';
    const ex = b.connections.request(
      {
        head: `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nAccept: application/json\r\n${auth}\r\n`,
        headRequest: false,
        body: null,
      },
      {
        onHead: (h) => (status = h.status),
        onBody: (c) => {
          chunks.push(Buffer.from(c));
          return true;
        },
        onEnd: () => {
          try {
            const o = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
              data?: Array<{ id?: unknown }>;
            };
            done(
              status === 200
                ? (o.data ?? []).map((m) => m.id).filter((x): x is string => typeof x === 'string')
                : [],
            );
          } catch {
            done([]);
          }
        },
        onError: () => done([]),
      },
    );
    const timer = ctx.clock.setTimeout(() => {
      ex.abort();
      done([]);
    }, MODEL_LIST_TIMEOUT_MS);
  });
}
