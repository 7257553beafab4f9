/**
 * ModuleService over real gRPC, routes, limits and config: GetRoutes,
 * UpdateRoutes, DeleteRoute (forwarded to the NLB's routing table), GetRateLimits,
 * SetRateLimit (enforced on traffic), RemoveRateLimit, GetConfig, UpdateConfig and CanHandle.
 * Every bad request gets a clear error and changes nothing (state re-read afterwards).
 */
import { createHash } from 'node:crypto';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createModuleHarness,
  listedIds,
  managedIds,
  ModuleType,
  Protocol,
  rejectionOf,
  StatusCode,
  touch,
  waitFor,
  type ModuleRpc,
  type NlbRpc,
  type TestModule,
} from './module-fixture.js';

const h = createModuleHarness();
let nlbTarget: string;
let nlb: NlbRpc;
let mod: TestModule;
let rpc: ModuleRpc;
let ids: string[];

const WEB = {
  routeId: 'web',
  protocol: Protocol.PROTOCOL_HTTP,
  destinationPattern: 'shop.example.com',
  pathPattern: '/api/*',
  priority: 10,
};

/** Route ids in the NLB's table with their owners, sorted. */
async function nlbRoutes(): Promise<string[]> {
  const t = await nlb('getRoutingTable', {});
  return t.entries.map((e) => `${e.route!.routeId}@${e.targetInstanceId}`).sort();
}

const trafficAddress = async (id: string) =>
  (await rpc('getStatus', { instanceId: id })).instance!.trafficAddress;

beforeEach(async () => {
  const n = await h.startNlb();
  nlbTarget = n.target;
  nlb = n.rpc;
  mod = await h.startModule({ nlb: n.target, instances: 2 });
  rpc = mod.rpc;
  await waitFor('both instances registered', async () => (await listedIds(nlb)).length === 2);
  ids = await managedIds(rpc);
});

afterEach(() => h.closeAll());

describe('routes', () => {
  it('UpdateRoutes saves a route and each instance announces it to the NLB; bad routes change nothing', async () => {
    const r = await rpc('updateRoutes', { routes: [WEB] });
    expect(r).toMatchObject({ success: true, routesUpdated: 1 });
    expect((await rpc('getRoutes', {})).routes.map((x) => x.routeId)).toEqual(['web']);
    const want = ids.map((id) => `${id}:web@${id}`).sort();
    await waitFor(
      'instance-owned routes at the NLB',
      async () => JSON.stringify(await nlbRoutes()) === JSON.stringify(want),
    );

    const routesBefore = await rpc('getRoutes', {});
    const tableBefore = await nlbRoutes();
    const cases = [
      { routes: [{ routeId: 'db', protocol: Protocol.PROTOCOL_POSTGRES }], says: 'is not served by ALB' },
      {
        routes: [{ routeId: 'p', protocol: Protocol.PROTOCOL_HTTP, pathPattern: 'api' }],
        says: 'must start with /',
      },
      { routes: [{ protocol: Protocol.PROTOCOL_HTTP }], says: 'route_id is required' },
      { routes: [{ routeId: 'bad id!' }], says: 'must be 1-128 characters' },
      { routes: [{ routeId: 'x' }, { routeId: 'x' }], says: 'appears twice' },
      { routes: [{ routeId: 'pr', priority: 2_000_000 }], says: 'priority 2000000 is out of range' },
    ];
    for (const c of cases) {
      const bad = await rpc('updateRoutes', { routes: c.routes, replaceAll: true });
      expect(bad.success, c.says).toBe(false);
      expect(bad.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
      expect(bad.message).toContain(c.says);
    }
    const unknown = await rpc('updateRoutes', { instanceId: 'nope', routes: [{ ...WEB, routeId: 'other' }] });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    const unknownGet = await rejectionOf(rpc('getRoutes', { instanceId: 'nope' }));
    expect(unknownGet.code).toBe(grpcStatus.NOT_FOUND);
    expect(await rpc('getRoutes', {})).toEqual(routesBefore);
    expect(await nlbRoutes()).toEqual(tableBefore);
  });

  it('DeleteRoute removes the route here and at the NLB; unknown routes change nothing', async () => {
    await rpc('updateRoutes', { routes: [WEB, { ...WEB, routeId: 'admin', pathPattern: '/admin' }] });
    await waitFor('4 routes at the NLB', async () => (await nlbRoutes()).length === 4);

    const missing = await rpc('deleteRoute', { routeId: 'nope' });
    expect(missing.success).toBe(false);
    expect(missing.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    expect(missing.message).toContain('route nope does not exist (routes: web, admin)');
    const empty = await rpc('deleteRoute', { routeId: '' });
    expect(empty.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    const unknown = await rpc('deleteRoute', { instanceId: 'nope', routeId: 'web' });
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    expect((await rpc('getRoutes', {})).totalRoutes).toBe(2);
    expect((await nlbRoutes()).length).toBe(4);

    const r = await rpc('deleteRoute', { routeId: 'web' });
    expect(r.success).toBe(true);
    expect((await rpc('getRoutes', {})).routes.map((x) => x.routeId)).toEqual(['admin']);
    const want = ids.map((id) => `${id}:admin@${id}`).sort();
    await waitFor(
      'only admin routes at the NLB',
      async () => JSON.stringify(await nlbRoutes()) === JSON.stringify(want),
    );
  });

  it('CanHandle scores ALB routes by match and refuses a missing route', async () => {
    await rpc('updateRoutes', { routes: [WEB] });
    const yes = await rpc('canHandle', {
      route: {
        protocol: Protocol.PROTOCOL_HTTP,
        destinationPattern: 'shop.example.com',
        pathPattern: '/api/orders',
      },
    });
    expect(yes).toMatchObject({ canHandle: true, metadata: { route_id: 'web' } });
    expect(yes.priority).toBeGreaterThan(1);
    const otherHost = await rpc('canHandle', {
      route: {
        protocol: Protocol.PROTOCOL_HTTP,
        destinationPattern: 'blog.example.com',
        pathPattern: '/api/x',
      },
    });
    expect(otherHost.canHandle).toBe(false);
    const viaContext = await rpc('canHandle', {
      route: { protocol: Protocol.PROTOCOL_HTTP },
      context: { host: 'shop.example.com', path: '/api/cart' },
    });
    expect(viaContext.canHandle).toBe(true);
    const mysql = await rpc('canHandle', { route: { protocol: Protocol.PROTOCOL_MYSQL } });
    expect(mysql.canHandle).toBe(false);
    expect(mysql.reason).toContain('does not speak MYSQL');
    const none = await rejectionOf(rpc('canHandle', {}));
    expect(none.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(none.details).toContain('route is required');
    const badProto = await rejectionOf(rpc('canHandle', { route: { protocol: 99 as Protocol } }));
    expect(badProto.code).toBe(grpcStatus.INVALID_ARGUMENT);
  });

  it('CanHandle of DBLB follows the database patterns of its config', async () => {
    const db = await h.startModule({ nlb: nlbTarget, type: 'dblb', instances: 1 });
    const config = {
      backends: [
        { name: 'orders', protocol: 'postgres', address: '127.0.0.1:5432', databases: ['orders_*'] },
      ],
    };
    const u = await db.rpc('updateConfig', {
      config: { configType: 'module', configData: Buffer.from(JSON.stringify(config)) },
    });
    expect(u.success).toBe(true);
    const route = { protocol: Protocol.PROTOCOL_POSTGRES };
    const yes = await db.rpc('canHandle', { route, context: { database: 'orders_eu' } });
    expect(yes).toMatchObject({ canHandle: true, metadata: { backend: 'orders' } });
    const no = await db.rpc('canHandle', { route, context: { database: 'billing' } });
    expect(no.canHandle).toBe(false);
    expect(no.reason).toContain('no backend serves postgres database billing');
    const mysql = await db.rpc('canHandle', {
      route: { protocol: Protocol.PROTOCOL_MYSQL },
      context: { database: 'orders_eu' },
    });
    expect(mysql.canHandle).toBe(false);
    const wrongType = await rejectionOf(db.rpc('getInstances', { moduleType: ModuleType.MODULE_TYPE_ALB }));
    expect(wrongType.code).toBe(grpcStatus.INVALID_ARGUMENT);
  });
});

describe('rate limits', () => {
  it('SetRateLimit is enforced on traffic; bad limits and unknown ids change nothing', async () => {
    const set = await rpc('setRateLimit', {
      limit: { limitId: 'per-client', target: '*', requestsPerSecond: 2, burstSize: 0, enabled: true },
    });
    expect(set.success).toBe(true);
    const got = await rpc('getRateLimits', {});
    expect(got.totalLimits).toBe(1);
    expect(got.limits[0]).toMatchObject({ limitId: 'per-client', target: '*', requestsPerSecond: 2 });
    expect((await rpc('getRateLimits', { target: 'other' })).totalLimits).toBe(0);

    const address = await trafficAddress(ids[0]);
    await Promise.all(Array.from({ length: 10 }, () => touch(address)));
    const stats = await waitFor('rate_limited counted', async () => {
      const s = (await rpc('getStats', { instanceId: ids[0] })).stats!;
      return Number(s.customStats.rate_limited ?? 0) > 0 && s;
    });
    expect(Number(stats.customStats.rate_limited)).toBeGreaterThanOrEqual(5);
    // The ALB answers them 429: client errors, not failures of the module.
    expect(Number(stats.customStats.status_4xx)).toBeGreaterThanOrEqual(5);

    const before = await rpc('getRateLimits', {});
    const bad = [
      { limit: { limitId: 'none', enabled: true }, says: 'limit sets no window' },
      { limit: { limitId: '', requestsPerSecond: 1 }, says: 'limit.limit_id is required' },
      { limit: { limitId: 'neg', requestsPerSecond: -3 }, says: 'requests_per_second -3 is out of range' },
      { limit: { limitId: 'long', requestsPerMinute: 5, target: 'x'.repeat(300) }, says: 'longer than 256' },
    ];
    for (const c of bad) {
      const r = await rpc('setRateLimit', { limit: c.limit });
      expect(r.success, c.says).toBe(false);
      expect(r.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
      expect(r.message).toContain(c.says);
    }
    const noLimit = await rpc('setRateLimit', {});
    expect(noLimit.message).toContain('limit is required');
    const unknown = await rpc('setRateLimit', {
      instanceId: 'nope',
      limit: { limitId: 'x', requestsPerSecond: 1 },
    });
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    const unknownGet = await rejectionOf(rpc('getRateLimits', { instanceId: 'nope' }));
    expect(unknownGet.code).toBe(grpcStatus.NOT_FOUND);
    const missing = await rpc('removeRateLimit', { limitId: 'nope' });
    expect(missing.success).toBe(false);
    expect(missing.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    expect((await rpc('removeRateLimit', { limitId: '' })).error?.code).toBe(
      StatusCode.STATUS_CODE_INVALID_ARGUMENT,
    );
    expect(await rpc('getRateLimits', {})).toEqual(before);

    const removed = await rpc('removeRateLimit', { limitId: 'per-client' });
    expect(removed.success).toBe(true);
    expect((await rpc('getRateLimits', {})).totalLimits).toBe(0);
    await rpc('getStats', { instanceId: ids[0], resetCounters: true });
    await Promise.all(Array.from({ length: 6 }, () => touch(address)));
    const after = (await rpc('getStats', { instanceId: ids[0] })).stats!;
    expect(after.customStats.rate_limited).toBeUndefined();
  });
});

describe('config', () => {
  const body = (o: unknown) => Buffer.from(JSON.stringify(o));

  it('UpdateConfig validates (validate_only changes nothing), applies, and refuses malformed config', async () => {
    const initial = await rpc('getConfig', { configType: 'module' });
    expect(JSON.parse(Buffer.from(initial.configs[0].configData).toString())).toMatchObject({ backends: [] });
    const cfg = { backends: [{ name: 'api', address: '127.0.0.1:8081', weight: 2 }] };

    const dry = await rpc('updateConfig', {
      config: { configType: 'module', configData: body(cfg) },
      validateOnly: true,
    });
    expect(dry).toMatchObject({ success: true, validationPassed: true, validationErrors: [] });
    expect(await rpc('getConfig', { configType: 'module' })).toEqual(initial);

    const bad = [
      { data: Buffer.from('backends: [\n  - {name: api'), says: 'neither JSON nor YAML' },
      { data: body({ backendz: [] }), says: 'unknown field(s) backendz' },
      { data: body({ backends: [{ name: 'api', address: 'no-port' }] }), says: 'config.backends.0.address' },
      {
        data: body({ backends: [{ name: 'api', address: 'h:1', weight: 1001 }] }),
        says: 'config.backends.0.weight',
      },
    ];
    for (const c of bad) {
      const r = await rpc('updateConfig', { config: { configType: 'module', configData: c.data } });
      expect(r.success, c.says).toBe(false);
      expect(r.validationPassed).toBe(false);
      expect(r.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
      expect(r.validationErrors.join('\n')).toContain(c.says);
    }
    const checksum = await rpc('updateConfig', {
      config: { configData: body(cfg), checksum: 'ab'.repeat(32) },
    });
    expect(checksum.message).toContain('does not match the sha256');
    const scaling = await rpc('updateConfig', { config: { configType: 'scaling', configData: body({}) } });
    expect(scaling.message).toContain('cannot be updated here');
    const limits = await rpc('updateConfig', {
      config: { configType: 'limits', configData: body({ maxConnectionsPerInstance: -1 }) },
    });
    expect(limits.success).toBe(false);
    expect((await rpc('updateConfig', {})).message).toContain('config is required');
    const unknown = await rpc('updateConfig', { instanceId: 'nope', config: { configData: body(cfg) } });
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    const badType = await rejectionOf(rpc('getConfig', { configType: 'nope' }));
    expect(badType.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(badType.details).toContain('use module, scaling or limits');
    expect((await rejectionOf(rpc('getConfig', { instanceId: 'nope' }))).code).toBe(grpcStatus.NOT_FOUND);
    expect(await rpc('getConfig', { configType: 'module' })).toEqual(initial);

    const data = body(cfg);
    const sum = createHash('sha256').update(data).digest('hex');
    const ok = await rpc('updateConfig', {
      config: { configType: 'module', configData: data, checksum: sum },
    });
    expect(ok).toMatchObject({ success: true, validationPassed: true });
    expect(ok.message).toContain('applied to 2 instance(s)');
    const now = await rpc('getConfig', { configType: 'module' });
    // Stored as parsed: defaults filled in.
    expect(JSON.parse(Buffer.from(now.configs[0].configData).toString())).toMatchObject({
      backends: [{ ...cfg.backends[0], pool: 'default' }],
    });
    expect(now.configs[0].checksum).not.toBe(initial.configs[0].checksum);
    const all = await rpc('getConfig', {});
    expect(all.configs.map((c) => c.configType)).toEqual(['module', 'scaling', 'limits']);
  });
});
