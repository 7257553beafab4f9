/**
 * Routing RPCs over real gRPC on loopback: UpdateRouting, GetRoutingTable, RouteRequest and
 * ValidateRoute. Instances name fake module controllers as their address, so CanHandle goes
 * through the NLB's real gRPC module port.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StatusCode } from '../../proto/gen/marchproxy/types.js';
import {
  createNlbHarness,
  HealthStatus,
  instance,
  ModuleType,
  Protocol,
  register,
  rejectionOf,
  route,
  routeIds,
  setWeight,
  type FakeModule,
  type Rpc,
} from './nlb-fixture.js';

const h = createNlbHarness();
let rpc: Rpc;
let albCtl: FakeModule;
let aiCtl: FakeModule;

beforeEach(async () => {
  albCtl = await h.fakeModule();
  aiCtl = await h.fakeModule({
    canHandle: (req) =>
      req.route?.pathPattern === '/private'
        ? { canHandle: false, reason: 'private paths are not served here' }
        : { canHandle: true, priority: 5 },
  });
  ({ rpc } = await h.startNlb());
});
afterEach(() => h.closeAll());

const web = route({
  routeId: 'web',
  destinationPattern: 'shop.example.com',
  pathPattern: '/api/*',
  priority: 5,
  moduleType: 'ALB',
});
const ai = route({ routeId: 'ai', destinationPattern: 'ai.example.com', priority: 7, moduleType: 'AILB' });
const pg = route({ routeId: 'pg', protocol: Protocol.PROTOCOL_POSTGRES, destinationPort: 5432, priority: 1 });

describe('UpdateRouting', () => {
  it('validate_only applies nothing; apply adds; replace_all replaces only the operator’s routes', async () => {
    await register(rpc, instance('alb-1', albCtl.address), [
      route({ routeId: 'owned', destinationPattern: 'a.example.com' }),
    ]);
    const dry = await rpc('updateRouting', { routes: [web, ai], validateOnly: true });
    expect(dry).toMatchObject({
      success: true,
      routesUpdated: 0,
      validationErrors: [],
      message: '2 route(s) valid; nothing applied (validate_only)',
    });
    expect(await routeIds(rpc)).toEqual(['owned']);

    const applied = await rpc('updateRouting', { routes: [web, ai] });
    expect(applied).toMatchObject({ success: true, routesUpdated: 2 });
    const table = await rpc('getRoutingTable', {});
    const byId = Object.fromEntries(table.entries.map((e) => [e.route!.routeId, e]));
    expect(byId.web).toMatchObject({ targetInstanceId: '', targetModuleType: ModuleType.MODULE_TYPE_ALB });
    expect(byId.ai).toMatchObject({ targetInstanceId: '', targetModuleType: ModuleType.MODULE_TYPE_AILB });
    expect(byId.owned).toMatchObject({
      targetInstanceId: 'alb-1',
      targetModuleType: ModuleType.MODULE_TYPE_ALB,
    });

    const replaced = await rpc('updateRouting', { routes: [pg], replaceAll: true });
    expect(replaced).toMatchObject({
      success: true,
      routesUpdated: 1,
      message: '1 route(s) applied, others of the same owner removed',
    });
    expect(await routeIds(rpc)).toEqual(['owned', 'pg']);
    expect(
      (await rpc('getRoutingTable', {})).entries.find((e) => e.route!.routeId === 'pg')?.targetModuleType,
    ).toBe(ModuleType.MODULE_TYPE_DBLB);
  });

  it('gives routes without an id a stable one, and routes sent for an instance belong to it', async () => {
    const anon = route({ destinationPattern: 'x.example.com', moduleType: 'ALB' });
    await rpc('updateRouting', { routes: [anon] });
    await rpc('updateRouting', { routes: [anon] });
    const ids = await routeIds(rpc);
    expect(ids).toHaveLength(1);
    expect(ids[0]).toMatch(/^r-[0-9a-f]{16}$/);

    await register(rpc, instance('ai-1', aiCtl.address, { moduleType: ModuleType.MODULE_TYPE_AILB }));
    const r = await rpc('updateRouting', {
      routes: [route({ routeId: 'ai-own', destinationPattern: 'y.example.com' })],
      sourceInstanceId: 'ai-1',
    });
    expect(r.success).toBe(true);
    const entry = (await rpc('getRoutingTable', {})).entries.find((e) => e.route!.routeId === 'ai-own');
    expect(entry).toMatchObject({ targetInstanceId: 'ai-1', targetModuleType: ModuleType.MODULE_TYPE_AILB });
  });

  it('refuses a batch with any bad route, listing every problem, and applies none of it', async () => {
    await register(rpc, instance('alb-1', albCtl.address), [
      route({ routeId: 'owned', destinationPattern: 'a.example.com' }),
    ]);
    await rpc('updateRouting', { routes: [web] });
    const before = await rpc('getRoutingTable', {});

    const r = await rpc('updateRouting', {
      routes: [
        ai,
        route({ routeId: 'bad-host', destinationPattern: 'not a host' }),
        route({ routeId: 'bad-port', destinationPort: 70_000, moduleType: 'ALB' }),
        route({ routeId: 'owned', destinationPattern: 'b.example.com' }),
        route({ routeId: 'no-type', protocol: Protocol.PROTOCOL_UNSPECIFIED }),
        route({ routeId: 'bad-type', moduleType: 'FTP' }),
      ],
      replaceAll: true,
    });
    expect(r.success).toBe(false);
    expect(r.routesUpdated).toBe(0);
    expect(r.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(r.message).toBe('5 problem(s); nothing was applied');
    expect(r.validationErrors).toEqual([
      'routes[1] (bad-host).destination_pattern "not a host" is not a host, *.domain wildcard or IP',
      'routes[2] (bad-port).destination_port 70000 is out of range: use 0 (any) to 65535',
      'routes[3] (owned): route_id owned belongs to alb-1',
      'routes[4] (no-type): say which module type serves it with metadata.module_type (ALB, DBLB, AILB or RTMP) or a protocol',
      'routes[5] (bad-type).metadata.module_type "FTP" is not one of ALB, DBLB, AILB, RTMP',
    ]);
    const unknownOwner = await rpc('updateRouting', { routes: [ai], sourceInstanceId: 'ghost' });
    expect(unknownOwner.validationErrors).toEqual(['source_instance_id ghost is not registered']);
    const badEnum = await rpc('updateRouting', { routes: [route({ protocol: 99 as Protocol })] });
    expect(badEnum).toMatchObject({
      success: false,
      error: { code: StatusCode.STATUS_CODE_INVALID_ARGUMENT },
    });
    expect(badEnum.message).toBe('routes[0].protocol 99 is not a known protocol');

    expect(await rpc('getRoutingTable', {})).toEqual(before);
  });
});

describe('GetRoutingTable', () => {
  beforeEach(async () => {
    await rpc('updateRouting', {
      routes: [
        web,
        ai,
        pg,
        route({ routeId: 'www', destinationPattern: 'www.example.com', priority: 3, moduleType: 'ALB' }),
      ],
    });
  });

  it('filters by protocol and destination, sorts by priority (highest first) and pages', async () => {
    const all = await rpc('getRoutingTable', {});
    expect(all.entries.map((e) => e.route!.routeId)).toEqual(['ai', 'web', 'www', 'pg']);
    expect(all.totalEntries).toBe(4);
    expect(all.entries[0].createdAt).toBeInstanceOf(Date);
    expect(all.entries[0].lastUsed).toBeUndefined();

    const http = await rpc('getRoutingTable', { protocolFilter: Protocol.PROTOCOL_HTTP });
    expect(http.entries.map((e) => e.route!.routeId)).toEqual(['ai', 'web', 'www']);
    const postgres = await rpc('getRoutingTable', { protocolFilter: Protocol.PROTOCOL_POSTGRES });
    expect(postgres.entries.map((e) => e.route!.routeId)).toEqual(['pg']);
    const shop = await rpc('getRoutingTable', { destinationFilter: 'SHOP.example' });
    expect(shop.entries.map((e) => e.route!.routeId)).toEqual(['web']);

    const page = await rpc('getRoutingTable', {
      query: { sortBy: 'route_id', pagination: { page: 2, pageSize: 3 } },
    });
    expect(page.entries.map((e) => e.route!.routeId)).toEqual(['www']);
    expect(page.pagination).toEqual({ page: 2, pageSize: 3, totalItems: 4, totalPages: 2 });
    const alb = await rpc('getRoutingTable', {
      query: { filters: [{ field: 'module_type', operator: 'eq', value: 'alb' }] },
    });
    expect(alb.entries.map((e) => e.route!.routeId)).toEqual(['web', 'www']);
  });

  it('refuses unknown protocols and fields with INVALID_ARGUMENT', async () => {
    const proto = await rejectionOf(rpc('getRoutingTable', { protocolFilter: 999 as Protocol }));
    expect(proto.code).toBe(status.INVALID_ARGUMENT);
    expect(proto.details).toBe('protocol_filter 999 is not a known protocol');
    const field = await rejectionOf(rpc('getRoutingTable', { query: { sortBy: 'weight' } }));
    expect(field.code).toBe(status.INVALID_ARGUMENT);
    expect(field.details).toContain('query sort_by "weight" is not a known field; use one of route_id');
  });
});

describe('RouteRequest', () => {
  beforeEach(async () => {
    await register(rpc, instance('alb-1', albCtl.address, { trafficAddress: '127.0.0.1:7001' }));
    await register(
      rpc,
      instance('ai-1', aiCtl.address, {
        moduleType: ModuleType.MODULE_TYPE_AILB,
        trafficAddress: '127.0.0.1:7002',
      }),
    );
    await rpc('updateRouting', {
      routes: [
        route({ routeId: 'any-site', destinationPattern: '*.example.com', priority: 10, moduleType: 'ALB' }),
        route({ routeId: 'ai-api', destinationPattern: 'api.example.com', priority: 20, moduleType: 'AILB' }),
      ],
    });
  });

  const req = (host: string, path = '/') => ({
    route: { protocol: Protocol.PROTOCOL_HTTP, destinationPattern: host, pathPattern: path },
  });

  it('takes the highest-priority matching route, and falls back when CanHandle refuses', async () => {
    const ai = await rpc('routeRequest', req('api.example.com', '/v1/chat'));
    expect(ai).toMatchObject({
      routed: true,
      targetInstanceId: 'ai-1',
      targetModuleType: ModuleType.MODULE_TYPE_AILB,
      targetAddress: '127.0.0.1:7002',
      priority: 20,
    });
    expect(ai.message).toBe('route ai-api → AILB 1.0 instance ai-1');
    const www = await rpc('routeRequest', req('www.example.com'));
    expect(www).toMatchObject({
      routed: true,
      targetInstanceId: 'alb-1',
      targetModuleType: ModuleType.MODULE_TYPE_ALB,
      priority: 10,
    });

    // The AILB controller refuses /private: the next route (ALB) takes it.
    const priv = await rpc('routeRequest', req('api.example.com', '/private'));
    expect(priv).toMatchObject({ routed: true, targetInstanceId: 'alb-1', priority: 10 });
    // CanHandle answers are cached: asking again makes no module call.
    const calls = aiCtl.calls.canHandle.length;
    await rpc('routeRequest', req('api.example.com', '/private'));
    expect(aiCtl.calls.canHandle.length).toBe(calls);
  });

  it('splits by deployment weight: SET_WEIGHT 2.0=100 sends everything to the 2.0 instance', async () => {
    await register(
      rpc,
      instance('alb-2', albCtl.address, { version: '2.0', trafficAddress: '127.0.0.1:7003' }),
    );
    const targets = async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++)
        seen.add((await rpc('routeRequest', req('www.example.com'))).targetInstanceId);
      return [...seen].sort();
    };
    expect(await targets()).toEqual(['alb-1']); // a new version starts at weight 0
    await setWeight(rpc, '2.0', 100);
    expect(await targets()).toEqual(['alb-2']);
    await setWeight(rpc, '2.0', 50);
    expect(await targets()).toEqual(['alb-1', 'alb-2']);
  });

  it('dry_run decides without counting or touching the route', async () => {
    const total = async () => (await rpc('getNlbStatus', {})).totalRequests;
    const lastUsed = async () =>
      (await rpc('getRoutingTable', {})).entries.find((e) => e.route!.routeId === 'any-site')!.lastUsed;
    const dry = await rpc('routeRequest', { ...req('www.example.com'), dryRun: true });
    expect(dry).toMatchObject({ routed: true, targetInstanceId: 'alb-1' });
    expect(dry.message).toContain('(dry run)');
    expect(await total()).toBe(0);
    expect(await lastUsed()).toBeUndefined();
    await rpc('routeRequest', req('www.example.com'));
    expect(await total()).toBe(1);
    expect(await lastUsed()).toBeInstanceOf(Date);
  });

  it('reports no route (NOT_FOUND) and no healthy instance (UNAVAILABLE) inside the response', async () => {
    const none = await rpc('routeRequest', req('other.org'));
    expect(none).toMatchObject({
      routed: false,
      targetInstanceId: '',
      error: { code: StatusCode.STATUS_CODE_NOT_FOUND },
    });
    expect(none.message).toBe('no route matches HTTP host other.org path /; add one with mpctl routes apply');
    await rpc('heartbeat', { instanceId: 'alb-1', status: HealthStatus.HEALTH_STATUS_UNHEALTHY });
    const down = await rpc('routeRequest', req('www.example.com'));
    expect(down).toMatchObject({
      routed: false,
      priority: 10,
      error: { code: StatusCode.STATUS_CODE_UNAVAILABLE },
    });
    expect(down.message).toContain(
      'routes match HTTP host www.example.com path / but no healthy instance can take it: ALB',
    );
  });

  it('refuses a missing or malformed route with INVALID_ARGUMENT and counts nothing', async () => {
    const missing = await rejectionOf(rpc('routeRequest', {}));
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    expect(missing.details).toMatch(/^route is required/);
    const bad = await rejectionOf(
      rpc('routeRequest', { route: { destinationPattern: 'www.example.com', pathPattern: 'no-slash' } }),
    );
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toBe(
      'invalid route request: route.path_pattern "no-slash" must start with / and contain no spaces (e.g. /api/*)',
    );
    const s = await rpc('getNlbStatus', {});
    expect(s.totalRequests).toBe(0);
    expect(s.details.routing_failures_total).toBe('0');
  });
});

describe('ValidateRoute', () => {
  it('names conflicting routes and the instances able to handle the route', async () => {
    const refusing = await h.fakeModule({
      canHandle: () => ({ canHandle: false, reason: 'no such backend' }),
    });
    await register(rpc, instance('alb-2', albCtl.address));
    await register(rpc, instance('alb-1', albCtl.address));
    await register(rpc, instance('alb-3', refusing.address));
    await rpc('updateRouting', { routes: [web] });

    const ok = await rpc('validateRoute', { route: { ...web, routeId: 'web2', priority: 6 } });
    expect(ok).toMatchObject({
      valid: true,
      hasHandler: true,
      capableInstances: ['alb-1', 'alb-2'],
      validationErrors: [],
    });
    expect(ok.details).toMatchObject({ module_type: 'ALB', overlaps_web: 'same match, priority 5 → ALB' });
    expect(ok.details.refused).toBe(`${refusing.address}: no such backend`);

    const conflict = await rpc('validateRoute', {
      route: { ...web, routeId: 'web-ai', metadata: { module_type: 'AILB' } },
    });
    expect(conflict.valid).toBe(false);
    expect(conflict.validationErrors).toEqual([
      'conflicts with route web: same match and priority 5, but it goes to ALB; change the priority or the match',
    ]);
    const nobody = await rpc('validateRoute', {
      route: route({ moduleType: 'RTMP', protocol: Protocol.PROTOCOL_RTMP }),
    });
    expect(nobody).toMatchObject({ valid: true, hasHandler: false, capableInstances: [] });
    expect(await routeIds(rpc)).toEqual(['web']);
  });

  it('reports a malformed route as invalid with its problems, and a missing one as INVALID_ARGUMENT', async () => {
    const bad = await rpc('validateRoute', { route: { destinationPattern: '*.*.bad', priority: 2_000_000 } });
    expect(bad.valid).toBe(false);
    expect(bad.validationErrors).toEqual([
      'route.destination_pattern "*.*.bad" is not a host, *.domain wildcard or IP',
      'route.priority 2000000 is out of range: use -1000000 to 1000000',
      'route: say which module type serves it with metadata.module_type or a protocol',
    ]);
    const badType = await rpc('validateRoute', { route: route({ moduleType: 'FTP' }) });
    expect(badType).toMatchObject({
      valid: false,
      validationErrors: ['route.metadata.module_type "FTP" is not one of ALB, DBLB, AILB, RTMP'],
    });
    const missing = await rejectionOf(rpc('validateRoute', {}));
    expect(missing.code).toBe(status.INVALID_ARGUMENT);
    expect(missing.details).toBe('route is required');
    expect(await routeIds(rpc)).toEqual([]);
  });
});
