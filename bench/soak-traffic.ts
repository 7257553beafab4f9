/**
 * The soak benchmark's client traffic (bench/soak.ts), paced, not flat out: the point is many
 * hours' worth of connection and request churn in minutes, not throughput.
 *
 * - HTTP through the NLB's `http` listener → ALB instance → echo backend: keep-alive workers
 *   sharing one keep-alive agent, and new-connection workers (one connection per request,
 *   `Connection: close`); GETs on a bounded set of paths, some on never-repeated paths (the
 *   NLB's CanHandle cache is keyed by path), some POSTs with a 1-4 KB body.
 * - PostgreSQL through the NLB's `postgres` listener → DBLB instance → PostgreSQL (optional):
 *   a small pool of long-lived sessions running `SELECT`s, and a worker opening a new session
 *   per query.
 *
 * Every failure is counted by kind, with its time, so the report can say which ones fell
 * next to a control-plane event (a scaled-down instance, a listener change).
 */
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const REQUEST_TIMEOUT_MS = 5000;
/** The first failures are kept with their time; the rest only counted. */
const MAX_LOGGED_ERRORS = 2000;

export interface TrafficError {
  /** Milliseconds since the epoch. */
  at: number;
  /** e.g. "http keep-alive", "http new-conn", "pg pool", "pg new-conn". */
  source: string;
  /** e.g. "status 502", "ECONNRESET", "reused socket: socket hang up", "timeout". */
  kind: string;
}

export interface TrafficCounters {
  requests: number;
  ok: number;
  errors: number;
  bySource: Record<string, { requests: number; errors: number }>;
  errorKinds: Record<string, number>;
  errorLog: TrafficError[];
}

export function newCounters(): TrafficCounters {
  return { requests: 0, ok: 0, errors: 0, bySource: {}, errorKinds: {}, errorLog: [] };
}

/** Counts a request (error null: it succeeded); `request: false` counts a failure outside one. */
function count(c: TrafficCounters, source: string, error: string | null, request = true): void {
  const s = (c.bySource[source] ??= { requests: 0, errors: 0 });
  if (request) {
    c.requests++;
    s.requests++;
  }
  if (error === null) {
    c.ok++;
    return;
  }
  c.errors++;
  s.errors++;
  const key = `${source}: ${error}`;
  c.errorKinds[key] = (c.errorKinds[key] ?? 0) + 1;
  if (c.errorLog.length < MAX_LOGGED_ERRORS) c.errorLog.push({ at: Date.now(), source, kind: error });
}

/** Runs `body` every `periodMs` (catching up at most one period) until `signal` aborts. */
async function paced(periodMs: number, signal: AbortSignal, body: () => Promise<void>): Promise<void> {
  // Spread the workers' first calls over one period.
  await sleep(Math.random() * periodMs, undefined, { signal }).catch(() => undefined);
  let due = performance.now();
  while (!signal.aborted) {
    await body();
    due = Math.max(due + periodMs, performance.now() - periodMs);
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
  }
}

function errorKind(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code && err.code !== 'ERR_STREAM_PREMATURE_CLOSE' ? err.code : err.message || String(e);
}

// ---- HTTP ------------------------------------------------------------------------------------

export interface HttpTrafficOptions {
  port: number;
  /** Requests per second over all workers. */
  rate: number;
  /** Share of the rate sent on keep-alive connections (the rest: one connection per request). */
  keepAliveShare?: number;
}

let seq = 0;

function oneRequest(port: number, agent: Agent | false): Promise<string | null> {
  const n = seq++;
  const post = n % 10 === 0;
  // 5 % on a path never seen before; the rest on 500 recurring ones.
  const path = n % 20 === 1 ? `/u/${n}` : `/soak/${n % 500}?n=${n}`;
  const body = post ? Buffer.alloc(1024 + (n % 3072), 'x') : null;
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: string | null) => {
      if (settled) return;
      settled = true;
      resolve(v);
    };
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: post ? 'POST' : 'GET',
        agent,
        headers: {
          host: 'soak.test',
          ...(agent === false ? { connection: 'close' } : {}),
          ...(body ? { 'content-type': 'text/plain', 'content-length': String(body.length) } : {}),
        },
      },
      (res: IncomingMessage) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) done(`status ${res.statusCode}`);
          else if (!res.headers['x-echo-version']) done('200 without the echo header');
          else done(null);
        });
        res.on('error', (e) => done(`${req.reusedSocket ? 'reused socket: ' : ''}${errorKind(e)}`));
        res.on('aborted', () => done(`${req.reusedSocket ? 'reused socket: ' : ''}response aborted`));
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done(`${req.reusedSocket ? 'reused socket: ' : ''}${errorKind(e)}`));
    req.end(body ?? undefined);
  });
}

/** Starts the HTTP workers; resolves when `signal` aborted and every worker finished. */
export function runHttpTraffic(
  o: HttpTrafficOptions,
  counters: TrafficCounters,
  signal: AbortSignal,
): Promise<void> {
  const share = o.keepAliveShare ?? 0.75;
  const keepAliveWorkers = 6;
  const newConnWorkers = 4;
  const agent = new Agent({ keepAlive: true, maxSockets: keepAliveWorkers, keepAliveMsecs: 1000 });
  const workers: Array<Promise<void>> = [];
  const kaPeriod = (keepAliveWorkers * 1000) / Math.max(0.001, o.rate * share);
  const ncPeriod = (newConnWorkers * 1000) / Math.max(0.001, o.rate * (1 - share));
  for (let i = 0; i < keepAliveWorkers && share > 0; i++)
    workers.push(
      paced(kaPeriod, signal, async () =>
        count(counters, 'http keep-alive', await oneRequest(o.port, agent)),
      ),
    );
  for (let i = 0; i < newConnWorkers && share < 1; i++)
    workers.push(
      paced(ncPeriod, signal, async () => count(counters, 'http new-conn', await oneRequest(o.port, false))),
    );
  return Promise.all(workers).then(() => agent.destroy());
}

// ---- PostgreSQL ------------------------------------------------------------------------------

/** The parts of the `pg` module used here (loaded on demand: it is a dev dependency). */
interface PgModule {
  Pool: new (config: object) => PgPool;
  Client: new (config: object) => PgClient;
}
interface PgPool {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  on(event: 'error', listener: (e: Error) => void): void;
  end(): Promise<void>;
}
interface PgClient {
  connect(): Promise<void>;
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  on(event: 'error', listener: (e: Error) => void): void;
  end(): Promise<void>;
}

/** The `pg` client module, or null when it is not installed. */
export async function loadPg(): Promise<PgModule | null> {
  try {
    const mod = (await import('pg')) as unknown as { default?: PgModule } & PgModule;
    return mod.default ?? mod;
  } catch {
    return null;
  }
}

export interface PgTrafficOptions {
  pg: PgModule;
  port: number;
  /** Queries per second on the pooled sessions. */
  rate: number;
  /** New sessions (connect, one query, close) per second. */
  connectRate: number;
}

/** Starts the PostgreSQL workers; resolves when `signal` aborted and every worker finished. */
export async function runPgTraffic(
  o: PgTrafficOptions,
  counters: TrafficCounters,
  signal: AbortSignal,
): Promise<void> {
  const conn = {
    host: '127.0.0.1',
    port: o.port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: REQUEST_TIMEOUT_MS,
    query_timeout: REQUEST_TIMEOUT_MS,
  };
  const poolWorkers = 3;
  const pool = new o.pg.Pool({ ...conn, max: poolWorkers, idleTimeoutMillis: 10_000 });
  // An idle pooled session that the server side closes (a scaled-down instance): counted.
  pool.on('error', (e) => count(counters, 'pg pool idle', errorKind(e), false));
  const check = (rows: Array<Record<string, unknown>>, want: number) =>
    Number(rows[0]?.n) === want ? null : `wrong answer ${JSON.stringify(rows[0])}`;
  let n = 0;
  const workers: Array<Promise<void>> = [];
  for (let i = 0; i < poolWorkers; i++)
    workers.push(
      paced((poolWorkers * 1000) / o.rate, signal, async () => {
        const k = n++;
        try {
          const r = await pool.query('SELECT $1::int + 1 AS n', [k]);
          count(counters, 'pg pool', check(r.rows, k + 1));
        } catch (e) {
          count(counters, 'pg pool', errorKind(e));
        }
      }),
    );
  if (o.connectRate > 0)
    workers.push(
      paced(1000 / o.connectRate, signal, async () => {
        const k = n++;
        const client = new o.pg.Client(conn);
        client.on('error', () => undefined);
        try {
          await client.connect();
          const r = await client.query('SELECT $1::int + 1 AS n', [k]);
          count(counters, 'pg new-conn', check(r.rows, k + 1));
        } catch (e) {
          count(counters, 'pg new-conn', errorKind(e));
        } finally {
          await client.end().catch(() => undefined);
        }
      }),
    );
  await Promise.all(workers);
  await pool.end().catch(() => undefined);
}
