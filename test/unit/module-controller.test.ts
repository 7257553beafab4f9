import { describe, expect, it } from 'vitest';
import { createManualClock, type ManualClock } from '../../services/shared/clock.js';
import { DomainError, type ErrorKind } from '../../services/shared/errors.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';
import type { RouteSpec } from '../../services/nlb/domain/types.js';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import {
  createControllerMemoryStore,
  type ScalingBounds,
} from '../../services/modules/runtime/controller-state.js';
import {
  DEFAULT_SCALING,
  MAX_RATE_LIMITS,
  MAX_ROUTES,
  ModuleController,
} from '../../services/modules/runtime/controller.js';
import type { InstanceSnapshot } from '../../services/modules/runtime/instance.js';
import type {
  InstanceHandle,
  InstanceLaunch,
  InstanceProvider,
} from '../../services/modules/runtime/providers/provider.js';
import type { RateLimitSpec } from '../../services/modules/runtime/token-bucket.js';

const ADDRESS = '127.0.0.1:50051';

interface FakeInstance {
  launch: InstanceLaunch;
  handle: InstanceHandle;
  applied: InstanceSnapshot[];
  stops: Array<{ graceful: boolean; timeoutMs: number }>;
  /** Ends the instance on its own (a crash), as the provider would report it. */
  crash(reason: string): void;
}

/** An InstanceProvider that records starts and stops and lets the test crash instances. */
function fakeProvider(clock: ManualClock) {
  const started: FakeInstance[] = [];
  const failures: Error[] = [];
  const provider: InstanceProvider = {
    kind: 'inprocess',
    start(launch) {
      const failure = failures.shift();
      if (failure) return Promise.reject(failure);
      let listener: ((reason: string) => void) | null = null;
      let stopped = false;
      const fake: FakeInstance = {
        launch,
        applied: [],
        stops: [],
        crash(reason) {
          if (!stopped && listener) listener(reason);
          stopped = true;
        },
        handle: {
          id: launch.id,
          trafficAddress: `127.0.0.1:${9000 + started.length}`,
          pid: null,
          startedAtMs: clock.now(),
          status: () => Promise.resolve({ status: 'HEALTHY', lease: 'registered', heartbeats: 0 }),
          stats: () => Promise.reject(new Error('not used')),
          apply(snapshot) {
            fake.applied.push(snapshot);
            return Promise.resolve();
          },
          drain: () => Promise.resolve(0),
          stop(graceful, timeoutMs) {
            stopped = true;
            fake.stops.push({ graceful, timeoutMs });
            return Promise.resolve();
          },
          onUnexpectedExit(l) {
            listener = l;
          },
        },
      };
      started.push(fake);
      return Promise.resolve(fake.handle);
    },
  };
  const live = () => started.filter((f) => f.stops.length === 0);
  return { provider, started, failures, live };
}

function setup(initialInstances = 2) {
  const clock = createManualClock(0);
  const logger = memoryLogger();
  const store = createControllerMemoryStore();
  const fake = fakeProvider(clock);
  const controller = new ModuleController({
    plugin: albPlugin,
    version: '1.0',
    clock,
    rng: createRng('controller-test'),
    logger,
    provider: fake.provider,
    store,
    host: '127.0.0.1',
    heartbeatIntervalMs: 1000,
    initialInstances,
    defaultDrainTimeoutMs: 5000,
  });
  return { clock, logger, store, fake, controller };
}

const route = (over: Partial<RouteSpec> = {}): RouteSpec => ({
  routeId: 'web',
  protocol: 'HTTP',
  sourcePattern: '',
  destinationPattern: 'example.com',
  sourcePort: 0,
  destinationPort: 0,
  headers: {},
  pathPattern: '',
  priority: 0,
  metadata: {},
  ...over,
});

const rateLimit = (over: Partial<RateLimitSpec> = {}): RateLimitSpec => ({
  limitId: 'per-client',
  target: '',
  requestsPerSecond: 10,
  requestsPerMinute: 0,
  requestsPerHour: 0,
  burstSize: 5,
  enabled: true,
  metadata: {},
  ...over,
});

const bounds = (over: Partial<ScalingBounds> = {}): ScalingBounds => ({ ...DEFAULT_SCALING, ...over });

/** Awaits `p`, which must reject with a DomainError of `kind`; returns its message. */
async function domainError(p: Promise<unknown>, kind: ErrorKind): Promise<string> {
  const e = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DomainError);
  expect((e as DomainError).kind).toBe(kind);
  return (e as DomainError).message;
}

/** Calls `f`, which must throw a DomainError of `kind`; returns its message. */
function domainErrorSync(f: () => unknown, kind: ErrorKind): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    expect((e as DomainError).kind).toBe(kind);
    return (e as DomainError).message;
  }
  throw new Error('expected a throw');
}

describe('ModuleController', () => {
  it('start() reconciles to the initial instance count with the current snapshot', async () => {
    const { controller, fake, store } = setup(3);
    expect(store.load()).toBeUndefined();
    await controller.start(ADDRESS);
    expect(fake.started).toHaveLength(3);
    expect(controller.instances.size).toBe(3);
    expect(controller.desired).toBe(3);
    const ids = fake.started.map((f) => f.launch.id);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^alb-1\.0-\d+-[0-9a-f]{4}$/);
    expect(fake.started[0].launch).toMatchObject({
      version: '1.0',
      controllerAddress: ADDRESS,
      host: '127.0.0.1',
      heartbeatIntervalMs: 1000,
      snapshot: { routes: [], rateLimits: [], config: { backends: [] }, maxConnections: 0 },
    });
  });

  it('starts from the stored state instead of initialInstances', async () => {
    const first = setup(2);
    await first.controller.scale(4, undefined, true);
    const clock = createManualClock(0);
    const fake = fakeProvider(clock);
    const controller = new ModuleController({
      plugin: albPlugin,
      version: '1.0',
      clock,
      rng: createRng(2),
      logger: memoryLogger(),
      provider: fake.provider,
      store: first.store,
      host: '127.0.0.1',
      heartbeatIntervalMs: 1000,
      initialInstances: 1,
    });
    await controller.start(ADDRESS);
    expect(controller.desired).toBe(4);
    expect(fake.started).toHaveLength(4);
  });

  it('scales up, then down retiring the newest instances first (gracefully)', async () => {
    const { controller, fake, clock, store } = setup(2);
    await controller.start(ADDRESS);
    clock.advance(1000);
    expect(await controller.scale(4, undefined, true)).toEqual({ current: 4, desired: 4 });
    expect(fake.started).toHaveLength(4);
    expect(store.load()?.desired).toBe(4);

    clock.advance(1000);
    expect(await controller.scale(2, undefined, true)).toEqual({ current: 2, desired: 2 });
    const [a, b, c, d] = fake.started;
    expect([a, b].map((f) => f.stops)).toEqual([[], []]);
    expect([c, d].map((f) => f.stops)).toEqual([
      [{ graceful: true, timeoutMs: 5000 }],
      [{ graceful: true, timeoutMs: 5000 }],
    ]);
    expect([...controller.instances.keys()]).toEqual([a.launch.id, b.launch.id]);
  });

  it('scale(0) keeps the desired count but clamps it into new bounds', async () => {
    const { controller } = setup(2);
    await controller.start(ADDRESS);
    expect(await controller.scale(0, bounds({ minInstances: 3, maxInstances: 5 }), true)).toEqual({
      current: 3,
      desired: 3,
    });
    expect(controller.scaling).toMatchObject({ minInstances: 3, maxInstances: 5 });
  });

  it('refuses bounds with min > max, and a desired count outside the bounds, changing nothing', async () => {
    const { controller, fake, store } = setup(2);
    await controller.start(ADDRESS);

    const m1 = await domainError(
      controller.scale(3, bounds({ minInstances: 5, maxInstances: 2 }), true),
      'invalid_argument',
    );
    expect(m1).toContain('config.min_instances 5 exceeds config.max_instances 2');
    const m2 = await domainError(controller.scale(17, undefined, true), 'invalid_argument');
    expect(m2).toContain('desired_instances 17 is outside the bounds 0-16');
    const m3 = await domainError(
      controller.scale(1, bounds({ minInstances: 2, maxInstances: 4 }), true),
      'invalid_argument',
    );
    expect(m3).toContain('desired_instances 1 is outside the bounds 2-4');
    const m4 = await domainError(controller.scale(-1, undefined, true), 'invalid_argument');
    expect(m4).toContain('desired_instances -1 must be 0 (keep) or more');

    expect(controller.desired).toBe(2);
    expect(controller.scaling).toEqual(DEFAULT_SCALING);
    expect(store.load()).toBeUndefined();
    expect(fake.started).toHaveLength(2);
  });

  it('leaves state unchanged when the store cannot save', async () => {
    const { controller, fake, store } = setup(2);
    await controller.start(ADDRESS);
    await controller.updateRoutes([route()], false);
    await controller.setRateLimit(rateLimit());
    const applied = fake.started.map((f) => f.applied.length);
    store.fail = new Error('disk full');

    await expect(controller.scale(5, undefined, true)).rejects.toThrow('disk full');
    expect(controller.desired).toBe(2);
    expect(fake.started).toHaveLength(2);

    await expect(controller.updateRoutes([route({ routeId: 'api' })], false)).rejects.toThrow('disk full');
    expect(controller.routes.map((r) => r.routeId)).toEqual(['web']);

    await expect(controller.setRateLimit(rateLimit({ limitId: 'other' }))).rejects.toThrow('disk full');
    expect(controller.rateLimits.map((l) => l.limitId)).toEqual(['per-client']);

    await expect(controller.deleteRoute('web')).rejects.toThrow('disk full');
    await expect(controller.removeRateLimit('per-client')).rejects.toThrow('disk full');
    expect(controller.routes).toHaveLength(1);
    expect(controller.rateLimits).toHaveLength(1);
    // Nothing was pushed to the instances either.
    expect(fake.started.map((f) => f.applied.length)).toEqual(applied);

    store.fail = undefined;
    await controller.scale(3, undefined, true);
    expect(controller.desired).toBe(3);
  });

  it('replaces an instance that exits unexpectedly after the backoff', async () => {
    const { controller, fake, clock, logger } = setup(2);
    await controller.start(ADDRESS);
    fake.started[0].crash('exit code 137');
    expect(controller.instances.size).toBe(1);
    expect(controller.desired).toBe(2);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('exit code 137'))).toBe(true);

    await clock.advanceAsync(199);
    expect(fake.started).toHaveLength(2);
    await clock.advanceAsync(1);
    expect(fake.started).toHaveLength(3);
    expect(controller.instances.size).toBe(2);
    expect(controller.instances.has(fake.started[0].launch.id)).toBe(false);
  });

  it('backs off longer when instances keep crashing', async () => {
    const { controller, fake, clock } = setup(1);
    await controller.start(ADDRESS);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const crashedAt = clock.now();
      const before = fake.started.length;
      fake.started[before - 1].crash(`crash ${i}`);
      for (let step = 0; step < 1000 && fake.started.length === before; step++) await clock.advanceAsync(50);
      expect(fake.started.length).toBe(before + 1);
      delays.push(clock.now() - crashedAt);
    }
    expect(delays).toEqual([200, 400, 800, 1600, 3200]);

    // After a quiet minute, old crashes are forgiven one by one.
    await clock.advanceAsync(5 * 60_000);
    const before = fake.started.length;
    const crashedAt = clock.now();
    fake.started[before - 1].crash('again');
    for (let step = 0; step < 1000 && fake.started.length === before; step++) await clock.advanceAsync(50);
    expect(clock.now() - crashedAt).toBe(200);
  });

  it('retries when the provider cannot start an instance', async () => {
    const { controller, fake, clock } = setup(2);
    fake.failures.push(new Error('spawn ENOENT'));
    await controller.start(ADDRESS);
    // The two start together: one fails, the other is not held back by it.
    expect(controller.instances.size).toBe(1);
    expect(controller.lastError).toMatch(
      /^started 1 of 2 instance\(s\); 1 failed: alb-1\.0-\d+-[0-9a-f]{4}: spawn ENOENT; retrying with backoff$/,
    );
    await clock.advanceAsync(200);
    expect(controller.instances.size).toBe(2);
    expect(controller.lastError).toBeNull();
  });

  it('updateRoutes validates route ids, protocols and duplicates', async () => {
    const { controller } = setup(0);
    await controller.start(ADDRESS);
    const missing = await domainError(
      controller.updateRoutes([route({ routeId: '' })], false),
      'invalid_argument',
    );
    expect(missing).toContain('routes[0].route_id is required');
    const proto = await domainError(
      controller.updateRoutes([route({ protocol: 'MYSQL' })], false),
      'invalid_argument',
    );
    expect(proto).toContain(
      'routes[0].protocol MYSQL is not served by ALB (use HTTP, HTTPS, HTTP2, WEBSOCKET, GRPC)',
    );
    const dup = await domainError(controller.updateRoutes([route(), route()], false), 'invalid_argument');
    expect(dup).toContain('routes[1].route_id web appears twice');
    const pattern = await domainError(
      controller.updateRoutes([route({ pathPattern: 'no-slash' })], false),
      'invalid_argument',
    );
    expect(pattern).toContain('routes[0].path_pattern "no-slash" must start with /');
    expect(controller.routes).toEqual([]);
  });

  it('updateRoutes merges by id, or replaces all, and pushes to every instance', async () => {
    const { controller, fake } = setup(2);
    await controller.start(ADDRESS);
    const r1 = await controller.updateRoutes([route({ routeId: 'a' }), route({ routeId: 'b' })], false);
    expect(r1).toEqual({ updated: 2, failures: [] });

    await controller.updateRoutes([route({ routeId: 'a', destinationPattern: 'a.example.com' })], false);
    expect(controller.routes.map((r) => [r.routeId, r.destinationPattern])).toEqual([
      ['b', 'example.com'],
      ['a', 'a.example.com'],
    ]);

    await controller.updateRoutes([route({ routeId: 'c' })], true);
    expect(controller.routes.map((r) => r.routeId)).toEqual(['c']);
    for (const f of fake.started) {
      expect(f.applied).toHaveLength(3);
      expect(f.applied[2].routes.map((r) => r.routeId)).toEqual(['c']);
    }
  });

  it('setRateLimit validates windows and ranges, and defaults the target to "*"', async () => {
    const { controller, fake } = setup(1);
    await controller.start(ADDRESS);
    const none = await domainError(
      controller.setRateLimit(rateLimit({ requestsPerSecond: 0, burstSize: 0 })),
      'invalid_argument',
    );
    expect(none).toContain('limit sets no window');
    const negative = await domainError(
      controller.setRateLimit(rateLimit({ requestsPerSecond: -1 })),
      'invalid_argument',
    );
    expect(negative).toContain('limit.requests_per_second -1 is out of range');
    const burst = await domainError(
      controller.setRateLimit(rateLimit({ burstSize: 1.5 })),
      'invalid_argument',
    );
    expect(burst).toContain('limit.burst_size 1.5 is out of range');
    const id = await domainError(controller.setRateLimit(rateLimit({ limitId: '' })), 'invalid_argument');
    expect(id).toContain('limit.limit_id is required');
    expect(controller.rateLimits).toEqual([]);

    expect(await controller.setRateLimit(rateLimit())).toEqual([]);
    expect(controller.rateLimits).toEqual([{ ...rateLimit(), target: '*' }]);
    await controller.setRateLimit(rateLimit({ requestsPerSecond: 20, target: '10.0.0.1' }));
    expect(controller.rateLimits.map((l) => [l.limitId, l.requestsPerSecond, l.target])).toEqual([
      ['per-client', 20, '10.0.0.1'],
    ]);
    expect(fake.started[0].applied.at(-1)?.rateLimits).toHaveLength(1);
  });

  it('rate limits and routes past the per-module limits are resource_exhausted, counted, and change nothing', async () => {
    const { controller } = setup(0);
    await controller.start(ADDRESS);
    for (let i = 0; i < MAX_RATE_LIMITS; i++) await controller.setRateLimit(rateLimit({ limitId: `l${i}` }));
    const full = await domainError(
      controller.setRateLimit(rateLimit({ limitId: 'one-more' })),
      'resource_exhausted',
    );
    expect(full).toContain(`at most ${MAX_RATE_LIMITS} rate limits per module`);
    expect(controller.rateLimits).toHaveLength(MAX_RATE_LIMITS);
    expect(controller.rateLimits.some((l) => l.limitId === 'one-more')).toBe(false);
    // Replacing an existing entry at the cap is not an addition.
    await controller.setRateLimit(rateLimit({ limitId: 'l0', requestsPerSecond: 99 }));
    expect(controller.rateLimits.find((l) => l.limitId === 'l0')?.requestsPerSecond).toBe(99);

    const many = Array.from({ length: MAX_ROUTES + 1 }, (_, i) => route({ routeId: `r${i}` }));
    const tooMany = await domainError(controller.updateRoutes(many, true), 'resource_exhausted');
    expect(tooMany).toContain(`at most ${MAX_ROUTES} per module`);
    expect(controller.routes).toEqual([]);
    expect(Object.fromEntries(controller.limitHits)).toEqual({ rate_limits: 1, routes: 1 });
  });

  it('removeRateLimit and deleteRoute of unknown ids are not_found; known ones are removed', async () => {
    const { controller } = setup(0);
    await controller.start(ADDRESS);
    expect(await domainError(controller.removeRateLimit('nope'), 'not_found')).toContain(
      'rate limit nope does not exist (limits: none)',
    );
    expect(await domainError(controller.deleteRoute('nope'), 'not_found')).toContain(
      'route nope does not exist (routes: none)',
    );
    await controller.updateRoutes([route({ routeId: 'a' })], false);
    await controller.setRateLimit(rateLimit());
    expect(await domainError(controller.deleteRoute('b'), 'not_found')).toContain('(routes: a)');
    await controller.deleteRoute('a');
    await controller.removeRateLimit('per-client');
    expect(controller.routes).toEqual([]);
    expect(controller.rateLimits).toEqual([]);
  });

  it('validateConfig names the config path of every problem', () => {
    const { controller } = setup(0);
    const bad = controller.validateConfig({
      backends: [{ name: 'b1', address: 'not-an-address' }],
      extra: 1,
    });
    expect(bad.ok).toBe(false);
    const problems = bad.ok ? [] : bad.problems;
    expect(problems).toContain('config.backends.0.address: use host:port');
    expect(problems).toContain('config: unknown field(s) extra');
    expect(problems).toHaveLength(2);

    expect(controller.validateConfig({ backends: [{ name: 'b1', address: '10.0.0.1:8080' }] })).toMatchObject(
      {
        ok: true,
        config: { backends: [{ name: 'b1', address: '10.0.0.1:8080', weight: 1, pool: 'default' }] },
      },
    );
  });

  it('shutdownInstance stops one instance for good and refuses to go below min_instances', async () => {
    const { controller, fake, clock } = setup(3);
    await controller.start(ADDRESS);
    await controller.scale(0, bounds({ minInstances: 2 }), true);
    const [a, b] = fake.started;

    await controller.shutdownInstance(a.launch.id, true, 1500);
    expect(a.stops).toEqual([{ graceful: true, timeoutMs: 1500 }]);
    expect(controller.desired).toBe(2);
    expect(controller.instances.has(a.launch.id)).toBe(false);
    await clock.advanceAsync(60_000);
    expect(fake.started).toHaveLength(3);

    const msg = await domainError(controller.shutdownInstance(b.launch.id, false, 0), 'failed_precondition');
    expect(msg).toContain('would go below min_instances 2');
    expect(b.stops).toEqual([]);
    expect(controller.desired).toBe(2);

    expect(await domainError(controller.shutdownInstance('alb-x', true, 0), 'not_found')).toContain(
      'instance alb-x is not managed',
    );
  });

  it('stop() stops every instance and no longer replaces crashed ones', async () => {
    const { controller, fake, clock } = setup(3);
    await controller.start(ADDRESS);
    fake.started[0].crash('oom');
    await controller.stop(false, 100);
    expect(controller.isStopped).toBe(true);
    expect(controller.instances.size).toBe(0);
    expect(fake.started.slice(1).map((f) => f.stops)).toEqual([
      [{ graceful: false, timeoutMs: 100 }],
      [{ graceful: false, timeoutMs: 100 }],
    ]);
    await clock.advanceAsync(60_000);
    expect(fake.started).toHaveLength(3);
    await controller.reconcile();
    expect(fake.started).toHaveLength(3);
  });

  it('instance() names the managed instances when asked for an unknown one', async () => {
    const { controller, fake } = setup(1);
    await controller.start(ADDRESS);
    const msg = domainErrorSync(() => controller.instance('ghost'), 'not_found');
    expect(msg).toContain(`(it has: ${fake.started[0].launch.id})`);
    expect(domainErrorSync(() => controller.checkType('DBLB'), 'invalid_argument')).toBe(
      'this controller serves ALB, not DBLB',
    );
  });
});
