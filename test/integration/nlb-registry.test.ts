/**
 * Registry RPCs over real gRPC on loopback: RegisterModule, UnregisterModule, Heartbeat,
 * ListModules, GetModuleInfo. Every bad input gets a clear error and changes nothing.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StatusCode } from '../../proto/gen/marchproxy/types.js';
import { createManualClock, type ManualClock } from '../../services/shared/clock.js';
import {
  createNlbHarness,
  HealthStatus,
  instance,
  listedIds,
  ModuleType,
  Protocol,
  register,
  rejectionOf,
  route,
  setWeight,
  type FakeModule,
  type Rpc,
} from './nlb-fixture.js';

const h = createNlbHarness();
let rpc: Rpc;
let fake: FakeModule;
let clock: ManualClock;

beforeEach(async () => {
  clock = createManualClock();
  fake = await h.fakeModule();
  ({ rpc } = await h.startNlb({ clock }));
});
afterEach(() => h.closeAll());

describe('RegisterModule', () => {
  it('registers an instance with its initial routes, and re-registering the same one is idempotent', async () => {
    const first = await rpc('registerModule', {
      instance: instance('alb-1', fake.address, {
        trafficAddress: '127.0.0.1:9001',
        maxConnections: 50,
        metadata: { zone: 'a' },
      }),
      initialRoutes: [route({ routeId: 'alb-1-web', destinationPattern: 'shop.example.com', priority: 5 })],
      capabilities: { websocket: 'true' },
    });
    expect(first).toMatchObject({ success: true, message: 'registered alb-1 (ALB 1.0)' });
    expect(first.registrationId).toMatch(/^reg-[0-9a-f]{12}$/);
    expect(first.registeredAt?.getTime()).toBe(clock.now());

    // Registration declares the instance's routes: re-registering carries them again.
    const again = await rpc('registerModule', {
      instance: instance('alb-1', fake.address, { trafficAddress: '127.0.0.1:9001', maxConnections: 50 }),
      initialRoutes: [route({ routeId: 'alb-1-web', destinationPattern: 'shop.example.com', priority: 5 })],
    });
    expect(again.success).toBe(true);
    expect(again.registrationId).toBe(first.registrationId);

    const list = await rpc('listModules', {});
    expect(list.totalModules).toBe(1);
    expect(list.modules[0]).toMatchObject({
      instanceId: 'alb-1',
      moduleType: ModuleType.MODULE_TYPE_ALB,
      address: fake.address,
      trafficAddress: '127.0.0.1:9001',
      healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
      version: '1.0',
      trafficWeight: 100,
    });
    const table = await rpc('getRoutingTable', {});
    expect(table.entries.map((e) => [e.route!.routeId, e.targetInstanceId])).toEqual([
      ['alb-1-web', 'alb-1'],
    ]);
  });

  it('refuses bad instances with an INVALID_ARGUMENT envelope naming the field, and registers nothing', async () => {
    const cases: Array<[string, ReturnType<typeof instance> | undefined, RegExp]> = [
      [
        'bad id',
        instance('bad id!', fake.address),
        /instance\.instance_id "bad id!" must be 1-128 characters/,
      ],
      ['missing address', instance('alb-1', ''), /instance\.address is required/],
      [
        'address without port',
        instance('alb-1', 'localhost'),
        /instance\.address "localhost" is not host:port/,
      ],
      ['missing version', instance('alb-1', fake.address, { version: '' }), /instance\.version is required/],
      [
        'no module type',
        instance('alb-1', fake.address, { moduleType: ModuleType.MODULE_TYPE_UNSPECIFIED }),
        /instance\.module_type is required/,
      ],
      [
        'NLB as module type',
        instance('alb-1', fake.address, { moduleType: ModuleType.MODULE_TYPE_NLB }),
        /is not a module type/,
      ],
      [
        'negative max_connections',
        instance('alb-1', fake.address, { maxConnections: -1 }),
        /max_connections -1 is out of range/,
      ],
      ['no instance at all', undefined, /instance is required/],
    ];
    for (const [name, inst, message] of cases) {
      const r = await rpc('registerModule', { instance: inst });
      expect(r.success, name).toBe(false);
      expect(r.error?.code, name).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
      expect(r.message, name).toMatch(message);
      expect(r.registrationId, name).toBe('');
    }
    // A bad initial route refuses the whole registration.
    const r = await rpc('registerModule', {
      instance: instance('alb-1', fake.address),
      initialRoutes: [route({ destinationPattern: 'bad host!' })],
    });
    expect(r.success).toBe(false);
    expect(r.message).toMatch(/initial_routes\[0\]\.destination_pattern "bad host!"/);

    expect(await listedIds(rpc)).toEqual([]);
    expect((await rpc('getRoutingTable', {})).totalEntries).toBe(0);
    const dep = await rpc('updateDeployment', { moduleType: ModuleType.MODULE_TYPE_ALB, action: 1 });
    expect(dep.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
  });

  it('refuses a live id claimed by another controller or version (ALREADY_EXISTS) and keeps the first', async () => {
    const regId = await register(rpc, instance('alb-1', fake.address));
    const other = await rpc('registerModule', {
      instance: instance('alb-1', '127.0.0.1:1', { version: '1.0' }),
    });
    expect(other.success).toBe(false);
    expect(other.error?.code).toBe(StatusCode.STATUS_CODE_ALREADY_EXISTS);
    expect(other.message).toContain(`instance alb-1 is already registered as ALB 1.0 by ${fake.address}`);
    const newer = await rpc('registerModule', {
      instance: instance('alb-1', fake.address, { version: '2.0' }),
    });
    expect(newer.error?.code).toBe(StatusCode.STATUS_CODE_ALREADY_EXISTS);

    const info = await rpc('getModuleInfo', { instanceId: 'alb-1' });
    expect(info.instance).toMatchObject({ address: fake.address, version: '1.0' });
    expect(info.details.registration_id).toBe(regId);
  });
});

describe('UnregisterModule', () => {
  it('removes an instance and the routes it owned', async () => {
    const regId = await register(rpc, instance('alb-1', fake.address), [
      route({ routeId: 'mine', destinationPattern: 'a.example.com' }),
    ]);
    await register(rpc, instance('alb-2', fake.address));
    const r = await rpc('unregisterModule', { instanceId: 'alb-1', registrationId: regId, graceful: true });
    expect(r).toMatchObject({ success: true, message: 'alb-1 unregistered', activeConnectionsDrained: 0 });
    expect(await listedIds(rpc)).toEqual(['alb-2']);
    expect((await rpc('getRoutingTable', {})).totalEntries).toBe(0);
  });

  it('refuses unknown ids, stale registrations and out-of-range drain timeouts, removing nothing', async () => {
    await register(rpc, instance('alb-1', fake.address));
    const unknown = await rpc('unregisterModule', { instanceId: 'nope' });
    expect(unknown).toMatchObject({ success: false, error: { code: StatusCode.STATUS_CODE_NOT_FOUND } });
    expect(unknown.message).toContain('instance nope is not registered');

    const stale = await rpc('unregisterModule', { instanceId: 'alb-1', registrationId: 'reg-000000000000' });
    expect(stale.success).toBe(false);
    expect(stale.error?.details.kind).toBe('failed_precondition');
    expect(stale.message).toContain(
      'registration id reg-000000000000 is not the current registration of alb-1',
    );

    const drain = await rpc('unregisterModule', {
      instanceId: 'alb-1',
      graceful: true,
      drainTimeoutSeconds: 100_000,
    });
    expect(drain.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(drain.message).toContain('drain_timeout_seconds 100000 is out of range');

    expect(await listedIds(rpc)).toEqual(['alb-1']);
  });
});

describe('Heartbeat', () => {
  it('renews the lease, records stats and reported health; silence makes the instance UNHEALTHY', async () => {
    const regId = await register(rpc, instance('alb-1', fake.address));
    clock.advance(5_000);
    const hb = await rpc('heartbeat', {
      instanceId: 'alb-1',
      registrationId: regId,
      status: HealthStatus.HEALTH_STATUS_DEGRADED,
      currentStats: { activeConnections: 12, totalRequests: 100, cpuUsagePercent: 40 },
    });
    expect(hb).toMatchObject({
      acknowledged: true,
      message: 'ok',
      shouldReload: false,
      shouldScale: false,
      instructions: {},
    });
    expect(hb.serverTime?.getTime()).toBe(clock.now());
    const info = await rpc('getModuleInfo', { instanceId: 'alb-1' });
    expect(info.instance?.healthStatus).toBe(HealthStatus.HEALTH_STATUS_DEGRADED);
    expect(info.stats).toMatchObject({
      instanceId: 'alb-1',
      activeConnections: 12,
      totalRequests: 100,
      cpuUsagePercent: 40,
    });
    expect(info.details.last_heartbeat).toBe(new Date(clock.now()).toISOString());

    // Three missed 10 s heartbeats: UNHEALTHY (the sweep runs on the injected clock).
    clock.advance(31_000);
    expect((await rpc('listModules', {})).modules[0].healthStatus).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
    await rpc('heartbeat', {
      instanceId: 'alb-1',
      registrationId: regId,
      status: HealthStatus.HEALTH_STATUS_HEALTHY,
    });
    expect((await rpc('listModules', {})).modules[0].healthStatus).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
  });

  it('tells unknown and stale instances to re-register', async () => {
    const unknown = await rpc('heartbeat', { instanceId: 'ghost', registrationId: 'reg-1' });
    expect(unknown.acknowledged).toBe(false);
    expect(unknown.instructions).toEqual({ action: 'reregister' });
    expect(unknown.message).toContain('instance ghost is not registered');
    await register(rpc, instance('alb-1', fake.address));
    const stale = await rpc('heartbeat', { instanceId: 'alb-1', registrationId: 'reg-old' });
    expect(stale).toMatchObject({ acknowledged: false, instructions: { action: 'reregister' } });
    expect(await listedIds(rpc)).toEqual(['alb-1']);
  });

  it('refuses an empty id or an unknown status with INVALID_ARGUMENT and leaves the lease alone', async () => {
    const regId = await register(rpc, instance('alb-1', fake.address));
    const before = (await rpc('getModuleInfo', { instanceId: 'alb-1' })).details.last_heartbeat;
    clock.advance(2_000);
    const noId = await rejectionOf(rpc('heartbeat', { registrationId: regId }));
    expect(noId.code).toBe(status.INVALID_ARGUMENT);
    expect(noId.details).toBe('instance_id is required');
    const badStatus = await rejectionOf(
      rpc('heartbeat', { instanceId: 'alb-1', registrationId: regId, status: 42 as HealthStatus }),
    );
    expect(badStatus.code).toBe(status.INVALID_ARGUMENT);
    expect(badStatus.details).toBe('status 42 is not a known health status');
    const info = await rpc('getModuleInfo', { instanceId: 'alb-1' });
    expect(info.details.last_heartbeat).toBe(before);
    expect(info.instance?.healthStatus).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
  });
});

describe('ListModules', () => {
  beforeEach(async () => {
    for (const [id, type, version] of [
      ['alb-3', ModuleType.MODULE_TYPE_ALB, '1.0'],
      ['alb-1', ModuleType.MODULE_TYPE_ALB, '1.0'],
      ['alb-2', ModuleType.MODULE_TYPE_ALB, '2.0'],
      ['db-1', ModuleType.MODULE_TYPE_DBLB, '1.0'],
      ['ai-1', ModuleType.MODULE_TYPE_AILB, '1.0'],
    ] as const) {
      await register(
        rpc,
        instance(id, fake.address, { moduleType: type, version, protocols: [Protocol.PROTOCOL_HTTP] }),
      );
    }
    await rpc('heartbeat', { instanceId: 'ai-1', status: HealthStatus.HEALTH_STATUS_DEGRADED });
  });

  it('filters by type and status, sorts, and pages with totals', async () => {
    const albs = await rpc('listModules', {
      moduleTypeFilter: ModuleType.MODULE_TYPE_ALB,
      query: { sortBy: 'instance_id' },
    });
    expect(albs.modules.map((m) => m.instanceId)).toEqual(['alb-1', 'alb-2', 'alb-3']);
    expect(albs.totalModules).toBe(3);
    expect(albs.modules.map((m) => m.trafficWeight)).toEqual([100, 0, 100]);

    const degraded = await rpc('listModules', { statusFilter: HealthStatus.HEALTH_STATUS_DEGRADED });
    expect(degraded.modules.map((m) => m.instanceId)).toEqual(['ai-1']);

    const page2 = await rpc('listModules', {
      query: { sortBy: 'instance_id', sortDesc: true, pagination: { page: 2, pageSize: 2 } },
    });
    expect(page2.modules.map((m) => m.instanceId)).toEqual(['alb-2', 'alb-1']);
    expect(page2.totalModules).toBe(5);
    expect(page2.pagination).toEqual({ page: 2, pageSize: 2, totalItems: 5, totalPages: 3 });

    const v2 = await rpc('listModules', {
      query: { filters: [{ field: 'version', operator: 'eq', value: '2.0' }] },
    });
    expect(v2.modules.map((m) => m.instanceId)).toEqual(['alb-2']);
    const inTypes = await rpc('listModules', {
      query: {
        filters: [{ field: 'module_type', operator: 'in', value: 'DBLB,AILB' }],
        sortBy: 'instance_id',
      },
    });
    expect(inTypes.modules.map((m) => m.instanceId)).toEqual(['ai-1', 'db-1']);
  });

  it('refuses unknown fields, operators, page sizes and filter enums with INVALID_ARGUMENT', async () => {
    const field = await rejectionOf(
      rpc('listModules', { query: { filters: [{ field: 'colour', value: 'blue' }] } }),
    );
    expect(field.code).toBe(status.INVALID_ARGUMENT);
    expect(field.details).toContain(
      'query filter field "colour" is not a known field; use one of instance_id, module_type',
    );
    const op = await rejectionOf(
      rpc('listModules', { query: { filters: [{ field: 'version', operator: 'like', value: '1' }] } }),
    );
    expect(op.details).toContain('query filter operator "like" is not supported');
    const size = await rejectionOf(rpc('listModules', { query: { pagination: { pageSize: 5000 } } }));
    expect(size.details).toContain('query pagination.page_size 5000 must be 1 to 1000');
    const sort = await rejectionOf(rpc('listModules', { query: { sortBy: 'instanceid' } }));
    expect(sort.details).toMatch(/query sort_by "instanceid" is not a known field.*instance_id/);
    const nlbType = await rejectionOf(rpc('listModules', { moduleTypeFilter: ModuleType.MODULE_TYPE_NLB }));
    expect(nlbType.details).toBe(
      'module_type_filter MODULE_TYPE_NLB is not a module type: use ALB, DBLB, AILB or RTMP',
    );
    const badStatus = await rejectionOf(rpc('listModules', { statusFilter: 77 as HealthStatus }));
    expect(badStatus.code).toBe(status.INVALID_ARGUMENT);
    expect((await rpc('listModules', {})).totalModules).toBe(5);
  });
});

describe('GetModuleInfo', () => {
  it('returns the instance, its routes, stats and its type deployment', async () => {
    await register(rpc, instance('alb-1', fake.address), [
      route({ routeId: 'r1', destinationPattern: 'a.example.com', pathPattern: '/api/*', priority: 3 }),
    ]);
    await register(rpc, instance('alb-2', fake.address, { version: '2.0' }));
    await setWeight(rpc, '2.0', 20);
    await rpc('heartbeat', { instanceId: 'alb-1', currentStats: { totalRequests: 7, p99LatencyMs: 12.5 } });

    const info = await rpc('getModuleInfo', { instanceId: 'alb-1' });
    expect(info.instance).toMatchObject({ instanceId: 'alb-1', version: '1.0', trafficWeight: 80 });
    expect(info.routes).toEqual([
      expect.objectContaining({
        routeId: 'r1',
        destinationPattern: 'a.example.com',
        pathPattern: '/api/*',
        priority: 3,
      }),
    ]);
    expect(info.stats).toMatchObject({ totalRequests: 7, p99LatencyMs: 12.5 });
    expect(info.deploymentConfig).toMatchObject({
      blueVersion: '1.0',
      greenVersion: '2.0',
      blueWeight: 80,
      greenWeight: 20,
      activeVersion: '1.0',
    });
    expect(info.details).toMatchObject({ draining: 'false', rollout_phase: 'STABLE' });
    expect(info.details.version_weights.split(',').sort()).toEqual(['1.0=80', '2.0=20']);
  });

  it('answers NOT_FOUND for an unknown instance, naming it', async () => {
    const e = await rejectionOf(rpc('getModuleInfo', { instanceId: 'alb-404' }));
    expect(e.code).toBe(status.NOT_FOUND);
    expect(e.details).toBe('instance alb-404 is not registered; list instances with mpctl modules list');
    const empty = await rejectionOf(rpc('getModuleInfo', {}));
    expect(empty.code).toBe(status.NOT_FOUND);
    expect(empty.details).toContain('(empty id)');
  });
});
