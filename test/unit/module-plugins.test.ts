import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RouteSpec } from '../../services/nlb/domain/types.js';
import { ailbConfigSchema, ailbPlugin, type AilbConfig } from '../../services/modules/ailb/plugin.js';
import { albConfigSchema, albPlugin } from '../../services/modules/alb/plugin.js';
import { backendChecks, tcpCheck } from '../../services/modules/common/backend-checks.js';
import { globMatch, globSpecificity } from '../../services/modules/common/patterns.js';
import { dblbConfigSchema, dblbPlugin, type DblbConfig } from '../../services/modules/dblb/plugin.js';
import { rtmpConfigSchema, rtmpPlugin, type RtmpConfig } from '../../services/modules/rtmp/plugin.js';

/** A route that matches anything; override the fields under test. */
const route = (over: Partial<RouteSpec> = {}): RouteSpec => ({
  routeId: 'asked',
  protocol: null,
  sourcePattern: '',
  destinationPattern: '',
  sourcePort: 0,
  destinationPort: 0,
  headers: {},
  pathPattern: '',
  priority: 0,
  metadata: {},
  ...over,
});

/** Problems from a schema as "path: message" lines. */
function schemaProblems(
  schema: { safeParse(v: unknown): { success: boolean; error?: unknown } },
  v: unknown,
) {
  const r = schema.safeParse(v);
  if (r.success) return [];
  return (r.error as { issues: Array<{ path: PropertyKey[]; message: string }> }).issues.map(
    (i) => `${i.path.map(String).join('.')}: ${i.message}`,
  );
}

describe('globMatch / globSpecificity', () => {
  it('matches "" and "*" against anything', () => {
    expect(globMatch('', 'orders')).toBe(true);
    expect(globMatch('*', '')).toBe(true);
    expect(globMatch('*', 'x.y')).toBe(true);
  });

  it('matches * anywhere, case-insensitively, and the rest literally', () => {
    expect(globMatch('orders_*', 'orders_2024')).toBe(true);
    expect(globMatch('orders_*', 'orders_')).toBe(true);
    expect(globMatch('orders_*', 'ORDERS_eu')).toBe(true);
    expect(globMatch('orders_*', 'archive_orders_1')).toBe(false);
    expect(globMatch('*-prod', 'billing-prod')).toBe(true);
    expect(globMatch('*-prod', 'billing-prod2')).toBe(false);
    expect(globMatch('llama-*-chat', 'llama-3-70b-chat')).toBe(true);
    expect(globMatch('exact', 'exact')).toBe(true);
    expect(globMatch('exact', 'exactly')).toBe(false);
  });

  it('treats regex characters in patterns literally', () => {
    expect(globMatch('a.b', 'a.b')).toBe(true);
    expect(globMatch('a.b', 'axb')).toBe(false);
    expect(globMatch('gpt-4o+(mini)?', 'gpt-4o+(mini)?')).toBe(true);
    expect(globMatch('gpt-4o+(mini)?', 'gpt-4oo(mini)')).toBe(false);
    expect(globMatch('[a]', 'a')).toBe(false);
  });

  it('scores specificity by literal characters', () => {
    expect(globSpecificity('*')).toBe(0);
    expect(globSpecificity('')).toBe(0);
    expect(globSpecificity('orders_*')).toBe(7);
    expect(globSpecificity('*a*b*')).toBe(2);
    expect(globSpecificity('orders_2024')).toBe(11);
  });
});

describe('ALB plugin', () => {
  const config = albConfigSchema.parse({});
  const state = (routes: RouteSpec[]) => ({ routes, config });

  it('refuses a protocol it does not speak, saying why', () => {
    expect(albPlugin.canHandle(route({ protocol: 'MYSQL' }), {}, state([]))).toEqual({
      canHandle: false,
      priority: 0,
      reason: 'ALB does not speak MYSQL (it speaks HTTP, HTTPS, HTTP2, WEBSOCKET, GRPC)',
    });
  });

  it('accepts anything in its protocols with priority 1 when it has no routes', () => {
    const a = albPlugin.canHandle(route({ protocol: 'HTTP', destinationPattern: 'x.org' }), {}, state([]));
    expect(a).toMatchObject({ canHandle: true, priority: 1 });
    expect(a.reason).toContain('has no routes of its own');
    expect(albPlugin.canHandle(route(), {}, state([])).priority).toBe(1);
  });

  it('picks the matching route, scoring more specific routes higher', () => {
    const routes = [
      route({ routeId: 'wildcard', destinationPattern: '*.example.com' }),
      route({ routeId: 'api', destinationPattern: 'api.example.com', pathPattern: '/v1/*' }),
    ];
    const api = albPlugin.canHandle(
      route({ protocol: 'HTTP', destinationPattern: 'api.example.com', pathPattern: '/v1/users' }),
      {},
      state(routes),
    );
    const www = albPlugin.canHandle(
      route({ protocol: 'HTTP', destinationPattern: 'www.example.com' }),
      {},
      state(routes),
    );
    expect(api).toEqual({
      canHandle: true,
      priority: 50, // specificity 4 (exact host) + 1.004 (path glob), × 10
      reason: 'matches route api',
      metadata: { route_id: 'api' },
    });
    expect(www).toMatchObject({ canHandle: true, priority: 30, metadata: { route_id: 'wildcard' } });
    expect(api.priority).toBeGreaterThan(www.priority);
  });

  it('ranks a higher route priority above specificity', () => {
    const routes = [
      route({ routeId: 'exact', destinationPattern: 'api.example.com' }),
      route({ routeId: 'preferred', destinationPattern: '*.example.com', priority: 2 }),
    ];
    const a = albPlugin.canHandle(route({ destinationPattern: 'api.example.com' }), {}, state(routes));
    expect(a).toMatchObject({ priority: 230, metadata: { route_id: 'preferred' } });
  });

  it('uses the host and path from the context when given', () => {
    const routes = [route({ routeId: 'api', destinationPattern: 'api.example.com', pathPattern: '/v1/*' })];
    const asked = route({ protocol: 'HTTP' });
    expect(
      albPlugin.canHandle(asked, { host: 'api.example.com', path: '/v1/x' }, state(routes)).canHandle,
    ).toBe(true);
    expect(albPlugin.canHandle(asked, { host: 'api.example.com', path: '/v2/x' }, state(routes))).toEqual({
      canHandle: false,
      priority: 0,
      reason: "none of ALB's 1 route(s) match",
    });
  });

  it('refuses when none of its routes match', () => {
    const a = albPlugin.canHandle(
      route({ destinationPattern: 'other.org' }),
      {},
      state([route({ routeId: 'r', destinationPattern: '*.example.com' })]),
    );
    expect(a).toEqual({ canHandle: false, priority: 0, reason: "none of ALB's 1 route(s) match" });
  });

  it('validates its config', () => {
    expect(albConfigSchema.parse({ backends: [{ name: 'b', address: '[::1]:80' }] })).toMatchObject({
      backends: [{ name: 'b', address: '[::1]:80', weight: 1, pool: 'default' }],
      defaultPool: 'default',
      balancing: 'round_robin',
    });
    expect(schemaProblems(albConfigSchema, { backends: [{ name: '', address: 'x', weight: 2000 }] })).toEqual(
      [
        expect.stringMatching(/^backends\.0\.name: /),
        'backends.0.address: use host:port',
        expect.stringMatching(/^backends\.0\.weight: /),
      ],
    );
    expect(schemaProblems(albConfigSchema, { backend: [] })).toEqual([expect.stringMatching(/^: .*backend/)]);
  });

  it('advertises its backend count', () => {
    const c = albConfigSchema.parse({ backends: [{ name: 'a', address: 'h:1' }] });
    expect(albPlugin.capabilities(c)).toEqual({
      backends: '1',
      pools: 'default',
      tls: 'false',
      websocket: 'true',
    });
  });
});

describe('DBLB plugin', () => {
  const parse = (c: unknown): DblbConfig => dblbConfigSchema.parse(c);
  const pg = route({ protocol: 'POSTGRES' });

  it('refuses protocols other than PostgreSQL and MySQL', () => {
    const a = dblbPlugin.canHandle(route({ protocol: 'HTTP' }), {}, { routes: [], config: parse({}) });
    expect(a).toMatchObject({ canHandle: false, priority: 0 });
    expect(a.reason).toBe('DBLB does not speak HTTP (it speaks POSTGRES, MYSQL)');
    expect(
      dblbPlugin.canHandle(route({ protocol: 'REDIS' }), {}, { routes: [], config: parse({}) }).canHandle,
    ).toBe(false);
  });

  it('accepts with priority 1 when it has no routes and no backends', () => {
    expect(dblbPlugin.canHandle(pg, { database: 'x' }, { routes: [], config: parse({}) })).toMatchObject({
      canHandle: true,
      priority: 1,
    });
  });

  it('matches the database and user against backend patterns', () => {
    const config = parse({
      backends: [
        {
          name: 'orders',
          protocol: 'postgres',
          address: 'db1:5432',
          databases: ['orders_*'],
          users: ['app'],
        },
        { name: 'mysql-any', protocol: 'mysql', address: 'db2:3306' },
      ],
    });
    const s = { routes: [], config };
    expect(dblbPlugin.canHandle(pg, { database: 'orders_2024', user: 'app' }, s)).toEqual({
      canHandle: true,
      priority: 1 + 7, // "orders_*" has 7 literal characters
      reason: 'backend orders serves it',
      metadata: { backend: 'orders' },
    });
    expect(dblbPlugin.canHandle(pg, { database: 'orders_2024', user: 'intruder' }, s)).toEqual({
      canHandle: false,
      priority: 0,
      reason: 'no backend serves postgres database orders_2024 for user intruder',
    });
    expect(dblbPlugin.canHandle(pg, { database: 'billing' }, s).reason).toBe(
      'no backend serves postgres database billing',
    );
    // MySQL goes to the MySQL backend, whose defaults accept any database and user.
    expect(dblbPlugin.canHandle(route({ protocol: 'MYSQL' }), { database: 'orders_2024' }, s)).toMatchObject({
      canHandle: true,
      priority: 1,
      metadata: { backend: 'mysql-any' },
    });
  });

  it('scores only the patterns that match, so an exact database beats a backend with long unrelated patterns', () => {
    const exact = parse({
      backends: [{ name: 'exact', protocol: 'postgres', address: 'db1:5432', databases: ['orders_2024'] }],
    });
    const broad = parse({
      backends: [
        {
          name: 'broad',
          protocol: 'postgres',
          address: 'db2:5432',
          databases: ['orders_*', 'a_very_long_unrelated_database_name'],
        },
      ],
    });
    const ctx = { database: 'orders_2024' };
    const e = dblbPlugin.canHandle(pg, ctx, { routes: [], config: exact });
    const b = dblbPlugin.canHandle(pg, ctx, { routes: [], config: broad });
    expect(e.priority).toBe(1 + 11);
    expect(b.priority).toBe(1 + 7);
    expect(e.priority).toBeGreaterThan(b.priority);
  });

  it('scores patterns only for what the route asks (no database or user asked: base priority)', () => {
    const config = parse({
      backends: [
        {
          name: 'orders',
          protocol: 'postgres',
          address: 'db1:5432',
          databases: ['orders_*'],
          users: ['app'],
        },
      ],
    });
    expect(dblbPlugin.canHandle(pg, {}, { routes: [], config })).toMatchObject({
      canHandle: true,
      priority: 1,
    });
  });

  it('validates its config', () => {
    expect(parse({ backends: [{ name: 'a', protocol: 'postgres', address: 'h:5432' }] }).backends[0]).toEqual(
      {
        name: 'a',
        protocol: 'postgres',
        address: 'h:5432',
        databases: ['*'],
        users: ['*'],
        maxConnections: 0,
      },
    );
    const problems = schemaProblems(dblbConfigSchema, {
      backends: [{ name: 'a', protocol: 'oracle', address: 'h:1521', databases: [''], maxConnections: -1 }],
    });
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'backends.0.protocol',
      'backends.0.databases.0',
      'backends.0.maxConnections',
    ]);
  });
});

describe('AILB plugin', () => {
  const config: AilbConfig = ailbConfigSchema.parse({
    backends: [
      { name: 'gpu-llama', address: 'gpu1:8000', models: ['llama-*'], gpu: true },
      { name: 'cpu-any', address: 'cpu1:8000', models: ['*'] },
    ],
  });
  const s = { routes: [], config };
  const http = route({ protocol: 'HTTP' });

  it('refuses protocols other than HTTP(S)', () => {
    expect(ailbPlugin.canHandle(route({ protocol: 'GRPC' }), { model: 'x' }, s).reason).toBe(
      'AILB does not speak GRPC (it speaks HTTP, HTTPS, HTTP2)',
    );
  });

  it('without a model in the context, answers from routes only', () => {
    expect(ailbPlugin.canHandle(http, {}, s)).toMatchObject({ canHandle: true, priority: 1 });
  });

  it('scores the most specific matching model pattern and honours gpu', () => {
    expect(ailbPlugin.canHandle(http, { model: 'llama-3-70b', gpu: 'true' }, s)).toEqual({
      canHandle: true,
      priority: 1 + 6,
      reason: 'backend gpu-llama serves llama-3-70b',
      metadata: { backend: 'gpu-llama' },
    });
    expect(ailbPlugin.canHandle(http, { model: 'gpt-4o' }, s)).toMatchObject({
      canHandle: true,
      priority: 1,
      metadata: { backend: 'cpu-any' },
    });
    expect(ailbPlugin.canHandle(http, { model: 'gpt-4o', gpu: 'true' }, s)).toEqual({
      canHandle: false,
      priority: 0,
      reason: 'no backend serves model gpt-4o on a GPU',
    });
  });

  it('refuses a model when no backend is configured', () => {
    const none = { routes: [], config: ailbConfigSchema.parse({}) };
    expect(ailbPlugin.canHandle(http, { model: 'm' }, none).reason).toBe('no backend serves model m');
  });

  it('advertises models and gpu, and validates its config', () => {
    expect(ailbPlugin.capabilities(config)).toEqual({ models: 'llama-*,*', gpu: 'true' });
    expect(
      schemaProblems(ailbConfigSchema, { backends: [{ name: 'a', address: 'h:1', models: [] }] }),
    ).toEqual([expect.stringMatching(/^backends\.0\.models: /)]);
    expect(
      schemaProblems(ailbConfigSchema, {
        backends: [{ name: 'a', address: 'h:1', models: ['m'], gpu: 'yes' }],
      }),
    ).toEqual([expect.stringMatching(/^backends\.0\.gpu: /)]);
  });
});

describe('RTMP plugin', () => {
  const parse = (c: unknown): RtmpConfig => rtmpConfigSchema.parse(c);
  const rtmp = route({ protocol: 'RTMP' });
  const config = parse({
    origins: [
      { name: 'live', address: 'o1:1935', apps: ['live'], streams: ['event-*'] },
      { name: 'any', address: 'o2:1935' },
    ],
    maxBandwidthMbps: 100,
  });
  const s = { routes: [], config };

  it('refuses protocols other than RTMP and RTMPS', () => {
    expect(rtmpPlugin.canHandle(route({ protocol: 'HTTP' }), {}, s).reason).toBe(
      'RTMP does not speak HTTP (it speaks RTMP, RTMPS)',
    );
  });

  it('matches app and stream patterns and scores the specific origin higher', () => {
    expect(rtmpPlugin.canHandle(rtmp, { app: 'live', stream: 'event-42' }, s)).toEqual({
      canHandle: true,
      priority: 1 + 6, // "event-*"
      reason: 'origin live serves it',
      metadata: { origin: 'live' },
    });
    expect(rtmpPlugin.canHandle(rtmp, { app: 'vod', stream: 'x' }, s)).toMatchObject({
      canHandle: true,
      priority: 1,
      metadata: { origin: 'any' },
    });
    expect(rtmpPlugin.canHandle(rtmp, {}, s)).toMatchObject({ canHandle: true, priority: 1 });
  });

  it('refuses when no origin serves the app and stream', () => {
    const only = {
      routes: [],
      config: parse({ origins: [{ name: 'live', address: 'o1:1935', apps: ['live'] }] }),
    };
    expect(rtmpPlugin.canHandle(rtmp, { app: 'vod' }, only)).toEqual({
      canHandle: false,
      priority: 0,
      reason: 'no origin serves app vod stream *',
    });
  });

  it('scores only matching patterns, not the longest pattern an origin lists', () => {
    const c = parse({
      origins: [{ name: 'o', address: 'o1:1935', apps: ['live', 'a_very_long_unrelated_app_name'] }],
    });
    expect(rtmpPlugin.canHandle(rtmp, { app: 'live' }, { routes: [], config: c }).priority).toBe(1 + 4);
  });

  it('refuses once the bandwidth budget is used up', () => {
    expect(rtmpPlugin.canHandle(rtmp, { bandwidth_mbps_in_use: '100' }, s)).toEqual({
      canHandle: false,
      priority: 0,
      reason: 'bandwidth budget of 100 Mbit/s is used up',
    });
    expect(rtmpPlugin.canHandle(rtmp, { bandwidth_mbps_in_use: '99.5' }, s).canHandle).toBe(true);
    // No budget (0) means no limit.
    const unlimited = { routes: [], config: parse({}) };
    expect(rtmpPlugin.canHandle(rtmp, { bandwidth_mbps_in_use: '1e6' }, unlimited).canHandle).toBe(true);
  });

  it('validates its config', () => {
    expect(parse({})).toEqual({ origins: [], maxBandwidthMbps: 0 });
    expect(schemaProblems(rtmpConfigSchema, { maxBandwidthMbps: -1 })).toEqual([
      expect.stringMatching(/^maxBandwidthMbps: /),
    ]);
    expect(
      schemaProblems(rtmpConfigSchema, { origins: [{ name: 'o', address: 'nope', extra: 1 }] }),
    ).toHaveLength(2);
  });
});

describe('backend checks', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  /** A TCP server on 127.0.0.1:0 that closes every connection it accepts; returns its port. */
  async function listen(): Promise<{ server: Server; port: number }> {
    const server = createServer((sock: Socket) => sock.destroy());
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const a = server.address();
    if (!a || typeof a === 'string') throw new Error('no port');
    return { server, port: a.port };
  }

  it('tcpCheck reaches a listening server', async () => {
    const { port } = await listen();
    const r = await tcpCheck(`127.0.0.1:${port}`, 2000);
    expect(r.ok).toBe(true);
    expect(r.message).toMatch(/^reachable in \d+ ms$/);
  });

  it('tcpCheck reports ECONNREFUSED for a closed port', async () => {
    const { server, port } = await listen();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    servers.splice(servers.indexOf(server), 1);
    expect(await tcpCheck(`127.0.0.1:${port}`, 2000)).toEqual({
      ok: false,
      message: `127.0.0.1:${port}: ECONNREFUSED`,
    });
  });

  it('tcpCheck refuses an address that is not host:port', async () => {
    expect(await tcpCheck('no-port', 100)).toEqual({ ok: false, message: '"no-port" is not host:port' });
  });

  it('backendChecks reports one result per backend when deep, and a count when shallow', async () => {
    const { port } = await listen();
    const backends = [
      { name: 'up', address: `127.0.0.1:${port}` },
      { name: 'bad', address: 'nope' },
    ];
    expect(await backendChecks(backends, false)).toEqual({
      config: { ok: true, message: '2 backend(s) configured' },
    });
    const deep = await backendChecks(backends, true);
    expect(Object.keys(deep).sort()).toEqual(['backend:bad', 'backend:up']);
    expect(deep['backend:up'].ok).toBe(true);
    expect(deep['backend:bad']).toEqual({ ok: false, message: '"nope" is not host:port' });
  });

  it('DBLB checks its backends deeply by speaking the protocol, not just TCP', async () => {
    const { port } = await listen();
    const c = dblbConfigSchema.parse({
      backends: [{ name: 'pg', protocol: 'postgres', address: `127.0.0.1:${port}` }],
    });
    const r = await dblbPlugin.healthChecks(c, true);
    // A TCP server that closes every connection at once is not a PostgreSQL server.
    expect(r['backend:pg'].ok).toBe(false);
    expect(r['backend:pg'].message).toMatch(/closed the connection|ECONNRESET/);
    const origins = rtmpConfigSchema.parse({ origins: [{ name: 'o', address: 'x:1' }] });
    expect(await rtmpPlugin.healthChecks(origins, false)).toEqual({
      config: { ok: true, message: '1 backend(s) configured' },
    });
  });
});
