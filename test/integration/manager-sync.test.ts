/**
 * Manager API sync against a Manager mocked with msw: happy path, 401, 500, timeouts, malformed
 * JSON, invalid and partial documents, deferred deployments, the interval loop. The NLB is a real
 * startNlb on loopback; nothing leaves the machine (unhandled requests are errors).
 */
import { delay, http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import type { Logger } from '../../services/shared/logger.js';
import { spec } from '../unit/nlb-fixtures.js';
import { freePort } from './module-fixture.js';

const MANAGER = 'http://manager.test:8000';
const DOC_URL = `${MANAGER}/api/v1/nlb/config`;
const API_KEY = 'mgr-key-0123456789';

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function captureLogger() {
  const warnings: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (msg) => void warnings.push(msg),
    error: (msg) => void warnings.push(msg),
    child: () => logger,
  };
  return { logger, warnings };
}

const handles: NlbHandle[] = [];
afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.stop()));
});

async function nlbWithManager(over: { intervalSeconds?: number; timeoutMs?: number } = {}) {
  const { logger, warnings } = captureLogger();
  const config = nlbProcessSchema.parse({
    grpc: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    dataDir: '',
    logLevel: 'silent',
    manager: {
      url: MANAGER,
      apiKey: API_KEY,
      intervalSeconds: over.intervalSeconds ?? 0,
      timeoutMs: over.timeoutMs ?? 2000,
    },
  });
  // Taken before startNlb: no await between its start and the registrations below.
  const [blue, green] = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
  const h = await startNlb(config, { logger });
  handles.push(h);
  // ALB 1.0 and 2.0 registered, so the Manager's weights can apply. Their controller addresses
  // are free ports nothing listens on (rate limits pushed there fail and are retried).
  h.nlb.register(spec({ instanceId: 'alb-blue-1', version: '1.0', address: blue }), [], 'HEALTHY');
  h.nlb.register(spec({ instanceId: 'alb-green-1', version: '2.0', address: green }), [], 'HEALTHY');
  return { h, sync: h.managerSync!, warnings };
}

const FULL = {
  revision: 'r1',
  modules: [
    { type: 'alb', versions: ['1.0', '2.0'] },
    { type: 'dblb', versions: ['1.0'] },
  ],
  routes: [
    { id: 'shop', module: 'alb', protocol: 'http', host: 'shop.example.com', path: '/api', priority: 10 },
    { id: 'db', module: 'dblb', protocol: 'postgres', port: 5432 },
  ],
  rateLimits: [{ module: 'alb', key: 'client_ip', requestsPerSecond: 50, burst: 100 }],
  scalingPolicies: [
    { module: 'alb', minInstances: 2, maxInstances: 6 },
    { module: 'alb', version: '2.0', maxInstances: 3, targetCpuPercent: 60 },
  ],
  deployments: [{ module: 'alb', weights: { '1.0': 80, '2.0': 20 } }],
};

function serve(body: unknown, status = 200) {
  const seen: string[] = [];
  server.use(
    http.get(DOC_URL, ({ request }) => {
      seen.push(request.headers.get('authorization') ?? '');
      return HttpResponse.json(body as Record<string, unknown>, { status });
    }),
  );
  return seen;
}

function managerRoutes(h: NlbHandle) {
  return h.nlb.routes
    .all()
    .map((e) => e.route.routeId)
    .filter((id) => id.startsWith('manager:'))
    .sort();
}

describe('Manager sync', () => {
  it('applies modules, routes, scaling policies and deployments through the NLB core, with the API key', async () => {
    const seen = serve(FULL);
    const { h, sync } = await nlbWithManager();
    const r = await sync.syncNow();
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(seen.at(-1)).toBe(`Bearer ${API_KEY}`);
    expect(r.revision).toBe('r1');
    expect(managerRoutes(h)).toEqual(['manager:db', 'manager:shop']);
    const shop = h.nlb.routes.get('manager:shop')!;
    expect(shop.route).toMatchObject({
      protocol: 'HTTP',
      destinationPattern: 'shop.example.com',
      pathPattern: '/api',
    });
    expect(shop.moduleType).toBe('ALB');
    expect(h.nlb.config.scaling.overrides.ALB).toMatchObject({ minInstances: 2, maxInstances: 6 });
    expect(h.nlb.config.scaling.overrides['ALB@2.0']).toMatchObject({
      maxInstances: 3,
      targetCpuPercent: 60,
    });
    expect(h.nlb.deployment('ALB').weights).toEqual({ '1.0': 80, '2.0': 20 });
    expect(r.applied).toMatchObject({ routes: 2, scalingPolicies: 2, deployments: 1 });
    // Rate limits go to the ALB controllers (here unreachable: a warning, retried; the
    // document still counts as applied). manager-sync-ratelimits.test.ts has real controllers.
    expect(r.applied.rateLimits).toBe(1);
    expect(r.warnings.join('\n')).toMatch(
      /rateLimits: ALB 1\.0 controller 127\.0\.0\.1:\d+: UNAVAILABLE: connect ECONNREFUSED .*; retrying in/,
    );
    // Same document again: nothing to do.
    expect(await sync.syncNow()).toMatchObject({ ok: true, unchanged: true });
  });

  it('a next revision replaces Manager routes but leaves operator routes alone', async () => {
    serve(FULL);
    const { h, sync } = await nlbWithManager();
    await sync.syncNow();
    const own = h.nlb.checkRoutes(
      [
        {
          ...h.nlb.routes.get('manager:shop')!.route,
          routeId: 'operator-route',
          destinationPattern: 'ops.example.com',
        },
      ],
      '',
    );
    h.nlb.applyRoutes(own.routes, own.moduleTypes, '', false);
    serve({ ...FULL, revision: 'r2', routes: [FULL.routes[0]] });
    const r = await sync.syncNow();
    expect(r).toMatchObject({ ok: true, revision: 'r2' });
    expect(r.applied.routesRemoved).toBe(1);
    expect(managerRoutes(h)).toEqual(['manager:shop']);
    expect(h.nlb.routes.get('operator-route')).toBeDefined();
  });

  const failures: Array<[string, () => void, RegExp]> = [
    ['401', () => serve({ error: 'bad key' }, 401), /refused the API key \(HTTP 401\)/],
    ['500', () => serve({ error: 'boom' }, 500), /HTTP 500/],
    [
      'malformed JSON',
      () =>
        server.use(
          http.get(
            DOC_URL,
            () => new HttpResponse('{"routes": [', { headers: { 'content-type': 'application/json' } }),
          ),
        ),
      /not JSON/,
    ],
    ['a network error', () => server.use(http.get(DOC_URL, () => HttpResponse.error())), /unreachable/],
    [
      'an invalid document',
      () => serve({ ...FULL, routes: [{ id: 'x', module: 'nope' }] }),
      /document is invalid: routes\.0\.module/,
    ],
    [
      'weights that do not add up',
      () => serve({ ...FULL, deployments: [{ module: 'alb', weights: { '1.0': 50, '2.0': 20 } }] }),
      /weights add up to 70/,
    ],
    [
      'a document the NLB rejects',
      () => serve({ ...FULL, scalingPolicies: [{ module: 'alb', minInstances: 9, maxInstances: 2 }] }),
      /NLB rejected .*scalingPolicies/,
    ],
  ];
  for (const [what, arrange, message] of failures)
    it(`keeps the last good config on ${what}, with a clear warning`, async () => {
      serve(FULL);
      const { h, sync, warnings } = await nlbWithManager();
      expect((await sync.syncNow()).ok).toBe(true);
      arrange();
      const r = await sync.syncNow();
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(message);
      expect(warnings.filter((w) => w.startsWith('Manager sync')).at(-1)).toMatch(
        /Manager sync failed: .*keeping the last good config \(revision r1\)/,
      );
      // Nothing lost.
      expect(managerRoutes(h)).toEqual(['manager:db', 'manager:shop']);
      expect(h.nlb.deployment('ALB').weights).toEqual({ '1.0': 80, '2.0': 20 });
      expect(h.nlb.config.scaling.overrides.ALB).toMatchObject({ minInstances: 2, maxInstances: 6 });
      expect(sync.status().lastGood?.revision).toBe('r1');
      expect(sync.status().lastResult?.error).toBe(r.error);
    });

  it('gives up on a Manager that does not answer within the timeout', async () => {
    server.use(
      http.get(DOC_URL, async () => {
        await delay(5000);
        return HttpResponse.json(FULL);
      }),
    );
    const { h, sync, warnings } = await nlbWithManager({ timeoutMs: 200 });
    const started = Date.now();
    const r = await sync.syncNow();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(r.error).toMatch(/did not answer within 200 ms/);
    expect(warnings.filter((w) => w.startsWith('Manager sync')).at(-1)).toMatch(/keeping the current config/);
    expect(managerRoutes(h)).toEqual([]);
  });

  it('applies a partial document and leaves the other parts unchanged', async () => {
    serve(FULL);
    const { h, sync } = await nlbWithManager();
    await sync.syncNow();
    serve({ revision: 'r2', deployments: [{ module: 'alb', weights: { '1.0': 50, '2.0': 50 } }] });
    const r = await sync.syncNow();
    expect(r).toMatchObject({ ok: true, revision: 'r2' });
    expect(h.nlb.deployment('ALB').weights).toEqual({ '1.0': 50, '2.0': 50 });
    expect(managerRoutes(h)).toEqual(['manager:db', 'manager:shop']);
    expect(h.nlb.config.scaling.overrides.ALB).toMatchObject({ minInstances: 2 });
  });

  it('defers deployments of types or versions that have not registered yet', async () => {
    serve({
      revision: 'r1',
      deployments: [
        { module: 'rtmp', weights: { '1.0': 100 } },
        { module: 'alb', weights: { '1.0': 10, '3.0': 90 } },
      ],
    });
    const { h, sync } = await nlbWithManager();
    const r = await sync.syncNow();
    expect(r.ok).toBe(true);
    expect(r.warnings.join('\n')).toMatch(/deployments\.RTMP: deferred/);
    expect(r.warnings.join('\n')).toMatch(/deployments\.ALB: deferred, version 3\.0 has not registered yet/);
    expect(h.nlb.deployment('ALB').weights['1.0']).toBe(100);
  });

  it('syncs at start and then on its interval', async () => {
    serve(FULL);
    const { h, sync } = await nlbWithManager({ intervalSeconds: 0.2 });
    await expect
      .poll(() => managerRoutes(h), { timeout: 3000, interval: 50 })
      .toEqual(['manager:db', 'manager:shop']);
    serve({ ...FULL, revision: 'r2', routes: [] });
    await expect.poll(() => sync.status().lastGood?.revision, { timeout: 3000, interval: 50 }).toBe('r2');
    expect(managerRoutes(h)).toEqual([]);
  });
});
