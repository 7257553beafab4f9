/**
 * Manager rate limits reach the module controllers: a Manager mocked with msw, a real NLB with
 * Manager sync, and real ALB/DBLB controllers on loopback (ModuleService over gRPC, which msw does
 * not intercept). Limits added, changed and removed in the Manager show up in each controller's
 * GetRateLimits (per module type and version), operator-set limits are never touched, drift is
 * repaired, and a controller that is down during a sync converges once it starts (retry with
 * backoff). Status (GetNLBStatus details, sync status) and metrics report it.
 */
import { http, HttpResponse, passthrough } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { moduleProcessSchema, startModule, type ModuleHandle } from '../../services/modules/runtime/main.js';
import { nlbProcessSchema, startNlb, type NlbHandle } from '../../services/nlb/main.js';
import { managerLimitId } from '../../services/nlb/manager-sync/rate-limits.js';
import { createClientConnection, createNlbClient, unaryCall } from '../../services/shared/grpc/client.js';
import type { Logger } from '../../services/shared/logger.js';
import { spec } from '../unit/nlb-fixtures.js';
import { createModuleHarness, freePort, waitFor, type ModuleRpc } from './module-fixture.js';

const MANAGER = 'http://manager.test:8000';
const DOC_URL = `${MANAGER}/api/v1/nlb/config`;

const server = setupServer();
beforeAll(() =>
  server.listen({
    onUnhandledRequest: ({ url }, print) => {
      // The NLB's own admin endpoint on loopback (metrics) is real; anything else is an error.
      if (!new URL(url).hostname.startsWith('127.0.0.1')) print.error();
    },
  }),
);
afterAll(() => server.close());

const harness = createModuleHarness();
const nlbs: NlbHandle[] = [];
const lateControllers: ModuleHandle[] = [];
afterEach(async () => {
  server.resetHandlers();
  await Promise.all(lateControllers.splice(0).map((c) => c.stop(false).catch(() => undefined)));
  await harness.closeAll();
  await Promise.all(nlbs.splice(0).map((h) => h.stop()));
});

function captureLogger() {
  const lines: string[] = [];
  const logger: Logger = {
    debug() {},
    info: (msg) => void lines.push(`info ${msg}`),
    warn: (msg) => void lines.push(`warn ${msg}`),
    error: (msg) => void lines.push(`error ${msg}`),
    child: () => logger,
  };
  return { logger, lines };
}

/** The Manager serves `doc` until told otherwise. */
function manager(doc: Record<string, unknown>) {
  server.use(http.get(DOC_URL, () => HttpResponse.json(doc)));
}

async function nlbWithManager() {
  const { logger, lines } = captureLogger();
  // An empty document for the sync at start; each test then serves its own.
  manager({});
  const h = await startNlb(
    nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      dataDir: '',
      logLevel: 'silent',
      heartbeatIntervalSeconds: 1,
      manager: { url: MANAGER, apiKey: 'k', intervalSeconds: 0, timeoutMs: 2000 },
    }),
    { logger },
  );
  nlbs.push(h);
  const sync = h.managerSync!;
  await waitFor('the sync at start', () => sync.status().lastResult?.ok);
  return { h, sync, lines, target: `127.0.0.1:${h.grpcPort}` };
}

/** A controller's limits as { id: summary }, for readable comparisons. */
async function limitsOf(rpc: ModuleRpc): Promise<Record<string, string>> {
  const r = await rpc('getRateLimits', {});
  return Object.fromEntries(
    r.limits.map((l) => [
      l.limitId,
      `${l.target} ${l.requestsPerSecond}/s ${l.requestsPerMinute}/min burst ${l.burstSize} ${l.metadata.owner ?? 'operator'}`,
    ]),
  );
}

async function nlbDetails(target: string): Promise<Record<string, string>> {
  const client = createNlbClient(createClientConnection({ target, timeoutMs: 5000 }));
  try {
    return (await unaryCall(client, 'getNlbStatus', { includeModules: false })).details;
  } finally {
    client.close();
  }
}

const CIDR = '10.0.0.0/8';
const cidrId = managerLimitId(CIDR);
const ALL = managerLimitId('*');

describe('Manager rate limits on module controllers', () => {
  it('adds, changes and removes limits on the controllers of the right type and version, leaving operator limits alone', async () => {
    const { h, sync, lines, target } = await nlbWithManager();
    const alb1 = await harness.startModule({ nlb: target, type: 'alb', version: '1.0' });
    const alb2 = await harness.startModule({ nlb: target, type: 'alb', version: '2.0' });
    const dblb = await harness.startModule({ nlb: target, type: 'dblb', version: '1.0' });
    await waitFor('three controllers registered', () =>
      new Set(h.nlb.registry.all().map((r) => r.address)).size === 3 ? true : undefined,
    );
    // An operator's own limit on ALB 1.0, set directly on the controller.
    await alb1.rpc('setRateLimit', {
      limit: { limitId: 'ops-block', target: '192.0.2.7', requestsPerSecond: 1, enabled: true },
    });

    manager({
      revision: 'r1',
      rateLimits: [
        { module: 'alb', key: '*', requestsPerSecond: 100, burst: 20 },
        { module: 'alb', version: '2.0', key: '*', requestsPerSecond: 10 },
        { module: 'alb', key: CIDR, requestsPerMinute: 600 },
      ],
    });
    const r1 = await sync.syncNow();
    expect(r1.error).toBeUndefined();
    expect(r1).toMatchObject({ ok: true, revision: 'r1', applied: { rateLimits: 3 } });
    await expect
      .poll(() => limitsOf(alb1.rpc), { timeout: 5000, interval: 50 })
      .toEqual({
        [ALL]: '* 100/s 0/min burst 20 manager-sync',
        [cidrId]: `${CIDR} 0/s 600/min burst 0 manager-sync`,
        'ops-block': '192.0.2.7 1/s 0/min burst 0 operator',
      });
    // The version's own limit wins over the type-wide one for the same key.
    expect(await limitsOf(alb2.rpc)).toEqual({
      [ALL]: '* 10/s 0/min burst 0 manager-sync',
      [cidrId]: `${CIDR} 0/s 600/min burst 0 manager-sync`,
    });
    expect(await limitsOf(dblb.rpc)).toEqual({});

    // Drift: a Manager-owned limit removed by hand comes back at the next sync (same document).
    await alb1.rpc('removeRateLimit', { limitId: ALL });
    expect(await sync.syncNow()).toMatchObject({ ok: true, unchanged: true });
    expect(Object.keys(await limitsOf(alb1.rpc))).toContain(ALL);

    manager({
      revision: 'r2',
      rateLimits: [
        { module: 'alb', key: '*', requestsPerSecond: 200, burst: 20 },
        { module: 'dblb', key: 'api-key-1', requestsPerSecond: 7 },
      ],
    });
    expect((await sync.syncNow()).ok).toBe(true);
    await expect
      .poll(() => limitsOf(alb1.rpc), { timeout: 5000, interval: 50 })
      .toEqual({
        [ALL]: '* 200/s 0/min burst 20 manager-sync',
        'ops-block': '192.0.2.7 1/s 0/min burst 0 operator',
      });
    expect(await limitsOf(alb2.rpc)).toEqual({ [ALL]: '* 200/s 0/min burst 20 manager-sync' });
    expect(await limitsOf(dblb.rpc)).toEqual({
      'manager:api-key-1': 'api-key-1 7/s 0/min burst 0 manager-sync',
    });

    // A partial document (no rateLimits key) leaves the limits as they are.
    manager({ revision: 'r3', routes: [] });
    expect((await sync.syncNow()).ok).toBe(true);
    expect(Object.keys(await limitsOf(dblb.rpc))).toEqual(['manager:api-key-1']);

    manager({ revision: 'r4', rateLimits: [] });
    expect((await sync.syncNow()).ok).toBe(true);
    await expect
      .poll(() => limitsOf(alb1.rpc), { timeout: 5000, interval: 50 })
      .toEqual({ 'ops-block': '192.0.2.7 1/s 0/min burst 0 operator' });
    expect(await limitsOf(alb2.rpc)).toEqual({});
    expect(await limitsOf(dblb.rpc)).toEqual({});

    // Observable: status, GetNLBStatus details, log lines, metrics.
    const st = sync.status().rateLimits!;
    expect(st.limits).toBe(0);
    expect(st.controllers.map((c) => [c.moduleType, c.version, c.state]).sort()).toEqual([
      ['ALB', '1.0', 'in_sync'],
      ['ALB', '2.0', 'in_sync'],
      ['DBLB', '1.0', 'in_sync'],
    ]);
    expect(st.controllers.find((c) => c.address === alb1.address)?.operator).toBe(1);
    const details = await nlbDetails(target);
    expect(details['manager_sync.last_good_revision']).toBe('r4');
    expect(details['manager_sync.rate_limits']).toBe('0 limits; 3/3 controllers in sync');
    expect(details[`manager_sync.rate_limits.${alb1.address}`]).toMatch(
      /^ALB 1\.0 in_sync \(0 managed, 1 operator-set\)/,
    );
    expect(lines.join('\n')).toMatch(
      new RegExp(`info Manager rate limits on ALB 1\\.0 controller .*: set none; removed ${ALL}`),
    );
    server.use(http.get(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/, () => passthrough()));
    const metrics = await (await fetch(`http://127.0.0.1:${h.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/mp_nlb_manager_rate_limit_controllers\{state="in_sync"\} 3/);
    expect(metrics).toMatch(
      /mp_nlb_manager_rate_limit_changes_total\{module_type="ALB",op="set",outcome="ok"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /mp_nlb_manager_rate_limit_changes_total\{module_type="DBLB",op="remove",outcome="ok"\} 1/,
    );
    expect(metrics).toMatch(/mp_nlb_manager_syncs_total\{outcome="unchanged"\} 1/);
  });

  it('a Manager limit whose id an operator already uses is left alone and reported', async () => {
    const { sync, lines, target } = await nlbWithManager();
    const alb = await harness.startModule({ nlb: target, type: 'alb', version: '1.0' });
    await waitFor('controller registered', async () => (await nlbDetails(target)).healthy_instances === '1');
    await alb.rpc('setRateLimit', {
      limit: { limitId: ALL, target: '*', requestsPerSecond: 3, enabled: true },
    });
    manager({ revision: 'r1', rateLimits: [{ module: 'alb', key: '*', requestsPerSecond: 100 }] });
    expect((await sync.syncNow()).ok).toBe(true);
    expect(await limitsOf(alb.rpc)).toEqual({ [ALL]: '* 3/s 0/min burst 0 operator' });
    expect(sync.status().rateLimits!.controllers[0]).toMatchObject({
      state: 'in_sync',
      conflicts: [ALL],
    });
    expect(lines.join('\n')).toMatch(
      new RegExp(`warn .*${ALL} already exist as operator-set limits; left alone`),
    );
  });

  it('a controller that is down during the sync is retried with backoff and converges once it starts', async () => {
    const { h, sync, lines, target } = await nlbWithManager();
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    // The NLB knows the controller (an instance registered with its address), but it is down.
    h.nlb.register(
      spec({ instanceId: 'alb-early-1', address, trafficAddress: '127.0.0.1:9' }),
      [],
      'HEALTHY',
    );
    manager({ revision: 'r1', rateLimits: [{ module: 'alb', key: '*', requestsPerSecond: 25, burst: 5 }] });
    const r = await sync.syncNow();
    // The document is applied; the unreachable controller is a warning, not a failed sync.
    expect(r.ok).toBe(true);
    expect(r.warnings.join('\n')).toMatch(
      new RegExp(`rateLimits: ALB 1\\.0 controller ${address}: .*; retrying in \\d+\\.\\d s`),
    );
    expect(sync.status().rateLimits!.controllers).toMatchObject([
      { address, state: 'retrying', attempts: 1 },
    ]);
    expect((await nlbDetails(target))[`manager_sync.rate_limits.${address}`]).toMatch(
      /^ALB 1\.0 retrying \(attempt \d+, next in \d+\.\d s\): /,
    );
    // It keeps retrying on its own (no further sync needed).
    await waitFor(
      'a second attempt',
      () => (sync.status().rateLimits!.controllers[0]?.attempts ?? 0) >= 2 || undefined,
      5000,
    );
    // The controller starts on that address with no instances of its own (so no registration
    // event prompts the push): only the retry loop can bring it in line.
    const late = await startControllerOn(port, target);
    await expect
      .poll(() => limitsOf(late.rpc).catch(() => ({})), { timeout: 15_000, interval: 100 })
      .toEqual({ [ALL]: '* 25/s 0/min burst 5 manager-sync' });
    await expect
      .poll(() => sync.status().rateLimits!.controllers[0]?.state, { timeout: 5000, interval: 50 })
      .toBe('in_sync');
    expect(sync.status().rateLimits!.controllers[0]).toMatchObject({ attempts: 0, managed: 1 });
    expect(lines.join('\n')).toMatch(
      /warn Manager rate limits on ALB 1\.0 controller .* not applied \(attempt 1\)/,
    );
    expect(lines.join('\n')).toMatch(/info Manager rate limits on ALB 1\.0 controller .* are in sync again/);
  });
});

/** A real ALB 1.0 controller serving ModuleService on 127.0.0.1:<port>, with no instances. */
async function startControllerOn(port: number, nlb: string): Promise<{ rpc: ModuleRpc }> {
  const handle = await startModule(
    moduleProcessSchema.parse({
      type: 'alb',
      version: '1.0',
      instances: 0,
      grpc: { host: '127.0.0.1', port },
      nlb,
      provider: 'inprocess',
      dataDir: harness.tempDir(),
      logLevel: 'silent',
      heartbeatIntervalSeconds: 1,
    }),
  );
  lateControllers.push(handle);
  return harness.moduleClient(handle.address);
}
