import { describe, expect, it } from 'vitest';
import { Nlb, type NlbEvent } from '../../services/nlb/nlb.js';
import { checkHealth, loadDistribution, rebalance, triggerScaling } from '../../services/nlb/nlb-ops.js';
import { RoutingService } from '../../services/nlb/nlb-routing.js';
import type { ModulePort, ScaleResult } from '../../services/nlb/ports.js';
import { createMemoryStatePort } from '../../services/nlb/store.js';
import { parseSection, type SectionName } from '../../services/nlb/domain/nlb-config.js';
import type { QuerySpec } from '../../services/nlb/domain/query.js';
import { OPERATOR } from '../../services/nlb/domain/routes.js';
import {
  emptyStats,
  type Health,
  type InstanceSpec,
  type ModuleTypeName,
  type RouteSpec,
} from '../../services/nlb/domain/types.js';
import { createManualClock } from '../../services/shared/clock.js';
import { silentLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';
import { domainError, domainErrorAsync, route, spec } from './nlb-fixtures.js';

const ALB_V1 = '127.0.0.1:50051';
const ALB_V2 = '127.0.0.1:50061';
const AILB = '127.0.0.1:50053';
const SEC = 1_000;

/** A ModulePort that answers from tables and counts calls. */
function fakeModules() {
  const calls = {
    canHandle: [] as string[],
    healthCheck: [] as string[],
    scale: [] as Array<{ address: string; desiredInstances: number; instanceId: string }>,
  };
  /** Controller addresses whose CanHandle says no. */
  const refuse = new Set<string>();
  /** Instance ids whose HealthCheck reports UNHEALTHY. */
  const unhealthy = new Set<string>();
  /** Controller addresses that do not answer at all. */
  const down = new Set<string>();
  let scaleAnswer: Partial<ScaleResult> = { success: true, message: 'ok' };
  const port: ModulePort = {
    canHandle(address) {
      calls.canHandle.push(address);
      if (down.has(address)) return Promise.reject(new Error('connection refused'));
      return Promise.resolve(
        refuse.has(address)
          ? { canHandle: false, priority: 0, reason: 'not my traffic' }
          : { canHandle: true, priority: 1, reason: 'ok' },
      );
    },
    healthCheck(address, instanceId) {
      calls.healthCheck.push(instanceId);
      if (down.has(address)) return Promise.reject(new Error('deadline exceeded'));
      const status: Health = unhealthy.has(instanceId) ? 'UNHEALTHY' : 'HEALTHY';
      return Promise.resolve({ status, message: status === 'HEALTHY' ? '' : 'backend pool empty' });
    },
    scale(address, request) {
      calls.scale.push({
        address,
        desiredInstances: request.desiredInstances,
        instanceId: request.instanceId,
      });
      return Promise.resolve({
        success: true,
        message: 'ok',
        currentInstances: 2,
        desiredInstances: request.desiredInstances,
        ...scaleAnswer,
      });
    },
  };
  return {
    port,
    calls,
    refuse,
    unhealthy,
    down,
    answerScale: (a: Partial<ScaleResult>) => (scaleAnswer = a),
  };
}

function setup() {
  const clock = createManualClock();
  const state = createMemoryStatePort();
  const modules = fakeModules();
  const nlb = new Nlb({
    clock,
    rng: createRng('nlb-core'),
    logger: silentLogger(),
    state,
    modules: modules.port,
    version: '0.0.0-test',
  });
  const events: NlbEvent[] = [];
  nlb.on((e) => events.push(e));
  return { clock, state, modules, nlb, events, routing: new RoutingService(nlb) };
}

type Setup = ReturnType<typeof setup>;

const q = (over: Partial<QuerySpec> = {}): QuerySpec => ({
  filters: [],
  sortBy: '',
  sortDesc: false,
  page: 0,
  pageSize: 0,
  ...over,
});
const alb = (id: string, over: Partial<InstanceSpec> = {}) =>
  spec({ instanceId: id, address: ALB_V1, ...over });
const ailb = (id: string) => spec({ instanceId: id, moduleType: 'AILB', address: AILB, protocols: ['HTTP'] });
const deploy = (over: Partial<Parameters<Nlb['updateDeployment']>[2]> = {}) => ({
  version: '',
  weight: 0,
  promotionRate: 0,
  immediate: false,
  validateOnly: false,
  reason: '',
  requestedBy: '',
  ...over,
});
const operatorRoute = (id: string, moduleType: ModuleTypeName, over: Partial<RouteSpec> = {}) =>
  route({ routeId: id, protocol: 'HTTP', metadata: { module_type: moduleType }, ...over });

/** Adds operator routes (checked like UpdateRouting does). */
function addOperatorRoutes(s: Setup, routes: RouteSpec[], replaceAll = false): void {
  const checked = s.nlb.checkRoutes(routes, OPERATOR);
  expect(checked.problems).toEqual([]);
  s.nlb.applyRoutes(checked.routes, checked.moduleTypes, OPERATOR, replaceAll);
}

/** Heartbeats every registered instance as HEALTHY. */
function heartbeatAll(s: Setup): void {
  for (const r of s.nlb.registry.all()) s.nlb.heartbeat(r.instanceId, r.registrationId, 'HEALTHY', null);
}

describe('Nlb registry', () => {
  it('registers instances and lists them (sorted, filtered by type and status)', () => {
    const s = setup();
    const a2 = s.nlb.register(alb('alb-2'), [], 'HEALTHY');
    s.nlb.register(alb('alb-1'), [], 'STARTING');
    s.nlb.register(ailb('ai-1'), [], 'HEALTHY');
    expect(a2.registrationId).toMatch(/^reg-[0-9a-f]{12}$/);
    const all = s.nlb.listModules(null, null, q());
    expect(all.items.map((r) => r.instanceId)).toEqual(['ai-1', 'alb-1', 'alb-2']);
    expect(all.total).toBe(3);
    expect(s.nlb.listModules('ALB', null, q()).items.map((r) => r.instanceId)).toEqual(['alb-1', 'alb-2']);
    expect(s.nlb.listModules(null, 'STARTING', q()).items.map((r) => r.instanceId)).toEqual(['alb-1']);
    expect(
      s.nlb.listModules(null, null, q({ filters: [{ field: 'module_type', operator: 'eq', value: 'ailb' }] }))
        .total,
    ).toBe(1);
    // The first version of each type got 100 % and was saved.
    expect(s.nlb.deployment('ALB').weights).toEqual({ '1.0': 100 });
    expect(s.nlb.deployment('AILB').weights).toEqual({ '1.0': 100 });
    expect(s.state.saved).toBe(2);
    expect(s.nlb.counters.registrations).toBe(3);
  });

  it('refuses an invalid registration, naming every problem, and registers nothing', () => {
    const s = setup();
    const e = domainError(() =>
      s.nlb.register(alb('bad id', { address: 'nowhere' }), [route({ pathPattern: 'x' })], 'HEALTHY'),
    );
    expect(e.kind).toBe('invalid_argument');
    expect(e.message).toMatch(/^invalid registration: 3 problems: /);
    expect(s.nlb.registry.size).toBe(0);
    expect(s.nlb.routes.size).toBe(0);
  });

  it('keeps heartbeating instances HEALTHY; 3 missed intervals ⇒ UNHEALTHY; 5 minutes ⇒ evicted with its routes', () => {
    const s = setup();
    s.nlb.register(
      alb('alb-1'),
      [route({ routeId: 'alb-1-web', destinationPattern: 'a.example.com' })],
      'HEALTHY',
    );
    s.nlb.register(alb('alb-2'), [], 'HEALTHY');
    expect(s.nlb.routes.get('alb-1-web')!.owner).toBe('alb-1');
    for (let i = 0; i < 6; i++) {
      s.clock.advance(10 * SEC);
      heartbeatAll(s);
      s.nlb.tick();
    }
    expect(s.nlb.registry.all().map((r) => r.health)).toEqual(['HEALTHY', 'HEALTHY']);
    // alb-1 goes silent; alb-2 keeps heartbeating.
    const silentSince = s.clock.now();
    const step = (ms: number) => {
      s.clock.advance(ms);
      s.nlb.heartbeat('alb-2', '', 'HEALTHY', null);
      s.nlb.tick();
    };
    step(29 * SEC);
    expect(s.nlb.instance('alb-1').health).toBe('HEALTHY');
    step(1 * SEC);
    expect(s.nlb.instance('alb-1').health).toBe('UNHEALTHY');
    expect(s.nlb.listModules(null, 'UNHEALTHY', q()).items.map((r) => r.instanceId)).toEqual(['alb-1']);
    for (let t = 30 * SEC; t < 290 * SEC; t += 10 * SEC) step(10 * SEC);
    expect(s.clock.now() - silentSince).toBe(290 * SEC);
    expect(s.nlb.registry.get('alb-1')).toBeDefined();
    step(10 * SEC);
    expect(s.nlb.registry.get('alb-1')).toBeUndefined();
    expect(s.nlb.routes.get('alb-1-web')).toBeUndefined();
    expect(s.nlb.routes.size).toBe(0);
    expect(s.nlb.instance('alb-2').health).toBe('HEALTHY');
    const removed = s.events.filter((e) => e.type === 'registry' && e.event.type === 'removed');
    expect(removed.map((e) => e.type === 'registry' && e.event.type === 'removed' && e.event.reason)).toEqual(
      ['evicted'],
    );
    // The evicted instance is told to re-register.
    expect(s.nlb.heartbeat('alb-1', '', 'HEALTHY', null)).toMatchObject({
      acknowledged: false,
      instructions: { action: 'reregister' },
    });
  });

  it('runs the sweep on the injected clock once started', () => {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.nlb.start();
    s.clock.advance(30 * SEC);
    expect(s.nlb.instance('alb-1').health).toBe('UNHEALTHY');
    expect(s.nlb.lastSweepMs).toBe(s.clock.now());
    s.nlb.stop();
    expect(s.clock.pendingTimers()).toBe(0);
  });

  it('still registers a new version when the state cannot be saved, and remembers the failure', () => {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.state.fail = new Error('disk full');
    s.nlb.register(alb('alb-v2', { address: ALB_V2, version: '2.0' }), [], 'HEALTHY');
    expect(s.nlb.registry.size).toBe(2);
    expect(s.nlb.deployment('ALB').weights).toEqual({ '1.0': 100, '2.0': 0 });
    expect(s.nlb.lastSaveError).toBe('disk full');
  });
});

describe('Nlb durable changes when the state cannot be saved', () => {
  /** An NLB with two ALB versions, an operator route and a canary at 10 %, then a failing store. */
  function failing() {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.nlb.register(alb('alb-v2', { address: ALB_V2, version: '2.0' }), [], 'HEALTHY');
    addOperatorRoutes(s, [
      operatorRoute('web', 'ALB', { destinationPattern: '*.example.com', priority: 10 }),
    ]);
    s.nlb.updateDeployment('ALB', 'SET_WEIGHT', deploy({ version: '2.0', weight: 10 }));
    // An open connection through the operator route: an undone change must keep it counted.
    s.nlb.routes.countConnection('web', s.nlb.routes.get('web')!.incarnation, 1);
    const snapshot = () => ({
      config: structuredClone(s.nlb.config),
      routes: structuredClone(s.nlb.routes.all()).sort((a, b) =>
        a.route.routeId.localeCompare(b.route.routeId),
      ),
      deployments: structuredClone(s.nlb.deployments.all()),
      timings: { ...s.nlb.registry.getTimings() },
      strategy: s.nlb.selection.strategy,
    });
    const before = snapshot();
    const saved = s.state.saved;
    s.state.fail = new Error('disk full');
    const expectUnchanged = (e: { kind: string; message: string }) => {
      expect(e.kind).toBe('unavailable');
      expect(e.message).toBe('could not save NLB state: disk full; the change was not applied');
      expect(snapshot()).toEqual(before);
      expect(s.state.saved).toBe(saved);
      expect(s.nlb.lastSaveError).toBe('disk full');
    };
    return { s, expectUnchanged };
  }

  it.each<[string, unknown]>([
    ['heartbeat', { intervalSeconds: 2, evictAfterSeconds: 60 }],
    ['routing', { strategy: 'round-robin' }],
    ['rollout', { steps: [10, 100] }],
  ])('updateConfig(%s) throws unavailable and changes nothing', (section, body) => {
    const { s, expectUnchanged } = failing();
    expectUnchanged(domainError(() => s.nlb.updateConfig(section, body, false)));
    // With the store back, the same change applies.
    s.state.fail = undefined;
    s.nlb.updateConfig(section, body, false);
    expect(s.nlb.lastSaveError).toBeNull();
    expect(s.nlb.config[section as SectionName]).toEqual(parseSection(section as SectionName, body).value);
  });

  it.each<[string, boolean]>([
    ['adding', false],
    ['replacing all', true],
  ])('applyRoutes (%s operator routes) throws unavailable and changes nothing', (_label, replaceAll) => {
    const { s, expectUnchanged } = failing();
    const checked = s.nlb.checkRoutes([operatorRoute('api', 'ALB', { pathPattern: '/api/*' })], OPERATOR);
    expectUnchanged(
      domainError(() => s.nlb.applyRoutes(checked.routes, checked.moduleTypes, OPERATOR, replaceAll)),
    );
    expect(s.nlb.routes.get('api')).toBeUndefined();
    expect(s.nlb.routes.get('web')).toBeDefined();
  });

  it.each<[string, Parameters<Nlb['updateDeployment']>[1], ReturnType<typeof deploy>]>([
    ['SET_WEIGHT', 'SET_WEIGHT', deploy({ version: '2.0', weight: 50 })],
    ['PROMOTE', 'PROMOTE', deploy({ version: '2.0' })],
    ['PROMOTE immediate', 'PROMOTE', deploy({ version: '2.0', immediate: true })],
    ['ROLLBACK', 'ROLLBACK', deploy({})],
  ])('updateDeployment(%s) throws unavailable and changes nothing', (_label, action, args) => {
    const { s, expectUnchanged } = failing();
    const revision = s.nlb.registryRevision;
    expectUnchanged(domainError(() => s.nlb.updateDeployment('ALB', action, args)));
    expect(s.nlb.registryRevision).toBe(revision);
  });

  it('PAUSE and RESUME throw unavailable and change nothing', () => {
    const { s } = failing();
    s.state.fail = undefined;
    s.nlb.updateDeployment('ALB', 'PROMOTE', deploy({ version: '2.0' }));
    s.state.fail = new Error('disk full');
    const progressing = structuredClone(s.nlb.deployment('ALB'));
    expect(domainError(() => s.nlb.updateDeployment('ALB', 'PAUSE', deploy({}))).kind).toBe('unavailable');
    expect(s.nlb.deployment('ALB')).toEqual(progressing);
    s.state.fail = undefined;
    s.nlb.updateDeployment('ALB', 'PAUSE', deploy({}));
    s.state.fail = new Error('disk full');
    const paused = structuredClone(s.nlb.deployment('ALB'));
    expect(domainError(() => s.nlb.updateDeployment('ALB', 'RESUME', deploy({}))).kind).toBe('unavailable');
    expect(s.nlb.deployment('ALB')).toEqual(paused);
    expect(paused.phase).toBe('PAUSED');
  });

  it('validate-only deployment changes do not touch the store', () => {
    const { s } = failing();
    const out = s.nlb.updateDeployment(
      'ALB',
      'SET_WEIGHT',
      deploy({ version: '2.0', weight: 50, validateOnly: true }),
    );
    expect(out.deployment.weights).toEqual({ '1.0': 50, '2.0': 50 });
    expect(s.nlb.deployment('ALB').weights).toEqual({ '1.0': 90, '2.0': 10 });
  });
});

describe('RoutingService.route', () => {
  /** ALB 1.0 (two instances), AILB (one instance); routes: web → ALB at 10, api → AILB at 20. */
  function routed() {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.nlb.register(alb('alb-2'), [], 'HEALTHY');
    s.nlb.register(ailb('ai-1'), [], 'HEALTHY');
    addOperatorRoutes(s, [
      operatorRoute('web', 'ALB', { destinationPattern: '*.example.com', priority: 10 }),
      operatorRoute('api', 'AILB', {
        destinationPattern: '*.example.com',
        pathPattern: '/v1/*',
        priority: 20,
      }),
    ]);
    return s;
  }
  const request = (path: string) =>
    route({ routeId: '', protocol: 'HTTP', destinationPattern: 'shop.example.com', pathPattern: path });

  it('picks the highest-priority matching route', async () => {
    const s = routed();
    const api = await s.routing.route(request('/v1/chat/completions'), {}, false);
    expect(api).toMatchObject({ routed: true, moduleType: 'AILB', priority: 20, address: '127.0.0.1:9001' });
    expect(api.instance!.instanceId).toBe('ai-1');
    expect(api.message).toBe('route api → AILB 1.0 instance ai-1');
    const web = await s.routing.route(request('/index.html'), {}, false);
    expect(web).toMatchObject({ routed: true, moduleType: 'ALB', priority: 10 });
    expect(['alb-1', 'alb-2']).toContain(web.instance!.instanceId);
    expect(s.nlb.counters.routed).toBe(2);
  });

  it('falls through to the next route when the module says it cannot handle it', async () => {
    const s = routed();
    s.modules.refuse.add(AILB);
    const r = await s.routing.route(request('/v1/chat'), {}, false);
    expect(r).toMatchObject({ routed: true, moduleType: 'ALB', priority: 10 });
  });

  it('excludes the instances of a controller whose CanHandle says no', async () => {
    const s = routed();
    s.nlb.register(alb('alb-x', { address: '127.0.0.1:50071' }), [], 'HEALTHY');
    s.modules.refuse.add(ALB_V1);
    const picked = new Set<string>();
    for (let i = 0; i < 20; i++)
      picked.add((await s.routing.route(request('/'), {}, false)).instance!.instanceId);
    expect([...picked]).toEqual(['alb-x']);
  });

  it('reports unavailable with the refusals when no instance can take it', async () => {
    const s = routed();
    s.modules.refuse.add(ALB_V1);
    const r = await s.routing.route(request('/'), {}, false);
    expect(r).toMatchObject({ routed: false, failure: 'unavailable', priority: 10 });
    expect(r.message).toContain(`no healthy instance can take it: ALB (${ALB_V1}: not my traffic)`);
    expect(s.nlb.counters.routingFailures).toBe(1);
  });

  it('treats a CanHandle that does not answer as "yes"', async () => {
    const s = routed();
    s.modules.down.add(ALB_V1);
    expect((await s.routing.route(request('/'), {}, false)).routed).toBe(true);
  });

  it('reports not_found when no route matches', async () => {
    const s = routed();
    const r = await s.routing.route(route({ protocol: 'MYSQL', destinationPort: 3306 }), {}, false);
    expect(r).toMatchObject({ routed: false, failure: 'not_found' });
    expect(r.message).toBe('no route matches MYSQL port 3306; add one with mpctl routes apply');
    expect(s.nlb.counters.routingFailures).toBe(1);
  });

  it('skips UNHEALTHY and draining instances', async () => {
    const s = routed();
    s.nlb.heartbeat('alb-1', '', 'UNHEALTHY', null);
    s.nlb.registry.addConnections('alb-2', 1);
    s.nlb.unregister('alb-2', '', true, 60);
    const r = await s.routing.route(request('/'), {}, false);
    expect(r).toMatchObject({ routed: false, failure: 'unavailable' });
  });

  it('caches CanHandle per controller; a registry change or the TTL invalidates it', async () => {
    const s = routed();
    for (let i = 0; i < 5; i++) await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toEqual([ALB_V1]);
    expect(s.routing.canHandleCalls).toBe(1);
    // A heartbeat that changes nothing keeps the cache.
    heartbeatAll(s);
    await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toHaveLength(1);
    // A different request shape is a different cache entry.
    await s.routing.route(request('/v1/x'), {}, false);
    expect(s.modules.calls.canHandle).toEqual([ALB_V1, AILB]);
    // A registry change invalidates: a health change (the routing table is untouched)…
    const routesRevision = s.nlb.routes.revision;
    s.nlb.heartbeat('alb-2', '', 'DEGRADED', null);
    expect(s.nlb.routes.revision).toBe(routesRevision);
    await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toEqual([ALB_V1, AILB, ALB_V1]);
    // …and a registration.
    s.nlb.register(alb('alb-3'), [], 'HEALTHY');
    await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toEqual([ALB_V1, AILB, ALB_V1, ALB_V1]);
    // So does a routing change.
    addOperatorRoutes(s, [operatorRoute('extra', 'ALB', { destinationPattern: 'other.test' })]);
    await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toHaveLength(5);
    // And the TTL (30 s by default).
    s.clock.advance(29 * SEC);
    await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toHaveLength(5);
    s.clock.advance(1 * SEC);
    await s.routing.route(request('/'), {}, false);
    expect(s.modules.calls.canHandle).toHaveLength(6);
    expect(s.routing.canHandleCalls).toBe(6);
  });

  it('dry run routes without counting or touching the route', async () => {
    const s = routed();
    s.clock.advance(5 * SEC);
    const r = await s.routing.route(request('/'), {}, true);
    expect(r.routed).toBe(true);
    expect(r.message).toMatch(/ \(dry run\)$/);
    expect(s.nlb.counters.routed).toBe(0);
    expect(s.nlb.routes.get('web')!.lastUsedMs).toBe(0);
    expect(s.events.filter((e) => e.type === 'routing')).toEqual([]);
    await s.routing.route(request('/'), {}, false);
    expect(s.nlb.counters.routed).toBe(1);
    expect(s.nlb.routes.get('web')!.lastUsedMs).toBe(s.clock.now());
  });

  it('follows deployment weights between versions', async () => {
    const s = routed();
    s.nlb.register(alb('alb-v2', { address: ALB_V2, version: '2.0' }), [], 'HEALTHY');
    s.nlb.updateDeployment('ALB', 'SET_WEIGHT', deploy({ version: '2.0', weight: 100 }));
    for (let i = 0; i < 10; i++) {
      expect((await s.routing.route(request('/'), {}, true)).instance!.version).toBe('2.0');
    }
  });

  it('refuses an invalid request', async () => {
    const s = routed();
    const e = await domainErrorAsync(() => s.routing.route(route({ destinationPort: 70_000 }), {}, false));
    expect(e.kind).toBe('invalid_argument');
    expect(e.message).toBe(
      'invalid route request: route.destination_port 70000 is out of range: use 0 (any) to 65535',
    );
  });
});

describe('RoutingService.validate', () => {
  function withWeb() {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.nlb.register(ailb('ai-1'), [], 'HEALTHY');
    addOperatorRoutes(s, [
      operatorRoute('web', 'ALB', { destinationPattern: '*.example.com', priority: 10 }),
    ]);
    return s;
  }

  it('reports a conflict: same shape and priority to a different module type', async () => {
    const s = withWeb();
    const v = await s.routing.validate(
      operatorRoute('new', 'AILB', { destinationPattern: '*.EXAMPLE.com', priority: 10 }),
    );
    expect(v).toMatchObject({ valid: false, hasHandler: false, capable: [] });
    expect(v.errors).toEqual([
      'conflicts with route web: same match and priority 10, but it goes to ALB; change the priority or the match',
    ]);
  });

  it.each<[string, ModuleTypeName, number]>([
    ['a different priority', 'AILB', 11],
    ['the same module type', 'ALB', 10],
  ])('reports an overlap, not a conflict, for %s', async (_label, moduleType, priority) => {
    const s = withWeb();
    const v = await s.routing.validate(
      operatorRoute('new', moduleType, { destinationPattern: '*.example.com', priority }),
    );
    expect(v.valid).toBe(true);
    expect(v.errors).toEqual([]);
    expect(v.details.overlaps_web).toBe('same match, priority 10 → ALB');
    expect(v.details.module_type).toBe(moduleType);
  });

  it('lists the healthy instances that could handle it, and the refusals', async () => {
    const s = withWeb();
    s.nlb.register(alb('alb-2'), [], 'HEALTHY');
    const v = await s.routing.validate(operatorRoute('new', 'ALB', { pathPattern: '/x' }));
    expect(v).toMatchObject({ valid: true, hasHandler: true, capable: ['alb-1', 'alb-2'] });
    s.modules.refuse.add(ALB_V1);
    s.nlb.register(alb('alb-3'), [], 'HEALTHY'); // invalidates the cache
    const refused = await s.routing.validate(operatorRoute('new', 'ALB', { pathPattern: '/x' }));
    expect(refused).toMatchObject({ valid: true, hasHandler: false, capable: [] });
    expect(refused.details.refused).toBe(`${ALB_V1}: not my traffic`);
  });

  it('says the route replaces one with the same id, and refuses a route with no module type', async () => {
    const s = withWeb();
    const same = await s.routing.validate(
      operatorRoute('web', 'AILB', { destinationPattern: '*.example.com', priority: 10 }),
    );
    expect(same.valid).toBe(true);
    expect(same.details.replaces).toBe('web');
    const none = await s.routing.validate(route({ routeId: 'x' }));
    expect(none.valid).toBe(false);
    expect(none.errors).toEqual([
      'route: say which module type serves it with metadata.module_type or a protocol',
    ]);
  });
});

describe('operations', () => {
  /** alb-1 and alb-2 under one ALB controller, with heartbeat stats. */
  function loaded() {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.nlb.register(alb('alb-2'), [], 'HEALTHY');
    s.nlb.heartbeat('alb-1', '', 'HEALTHY', {
      ...emptyStats(),
      activeConnections: 30,
      cpuUsagePercent: 20,
      memoryUsageMb: 64,
    });
    s.nlb.heartbeat('alb-2', '', 'HEALTHY', {
      ...emptyStats(),
      activeConnections: 10,
      cpuUsagePercent: 50,
      memoryUsageMb: 32,
    });
    return s;
  }

  it('loadDistribution reports each instance and the balance score', () => {
    const s = loaded();
    const d = loadDistribution(s.nlb, 'ALB');
    expect(d.distribution['alb-1']).toMatchObject({
      activeConnections: 30,
      cpuUsagePercent: 20,
      memoryUsageMb: 64,
      loadScore: 20,
    });
    expect(d.distribution['alb-2']).toMatchObject({
      activeConnections: 10,
      cpuUsagePercent: 50,
      loadScore: 50,
    });
    // connections 30 and 10: CV 0.5 → 50.
    expect(d.balanceScore).toBe(50);
    expect(loadDistribution(s.nlb, 'DBLB')).toMatchObject({ distribution: {}, balanceScore: 100 });
  });

  it('rebalance sets the strategy, load offsets and the evened-out projection', () => {
    const s = loaded();
    s.nlb.registry.addConnections('alb-1', 5);
    const r = rebalance(s.nlb, false, [], 'round-robin');
    expect(r.changed).toBe(true);
    expect(r.score).toBe(50);
    expect([...r.previous]).toEqual([
      ['alb-1', 30],
      ['alb-2', 10],
    ]);
    expect([...r.next]).toEqual([
      ['alb-1', 20],
      ['alb-2', 20],
    ]);
    expect(s.nlb.selection.strategy).toBe('round-robin');
    expect(s.nlb.selection.offsets.get('alb-1')).toBe(25);
    expect(s.nlb.selection.offsets.get('alb-2')).toBe(10);
  });

  it('rebalance leaves a balanced pool alone unless forced, and refuses bad input', () => {
    const s = setup();
    s.nlb.register(alb('alb-1'), [], 'HEALTHY');
    s.nlb.register(alb('alb-2'), [], 'HEALTHY');
    const r = rebalance(s.nlb, false, ['alb-1', 'alb-2'], '');
    expect(r).toMatchObject({ changed: false, score: 100 });
    expect(r.message).toBe('load is already balanced (score 100); pass force to recompute anyway');
    expect(s.nlb.selection.revision).toBe(0);
    expect(rebalance(s.nlb, true, [], '').changed).toBe(true);
    // Recomputed offsets bump the revision the data-plane workers' snapshots follow.
    expect(s.nlb.selection.revision).toBe(1);
    const bad = domainError(() => rebalance(s.nlb, true, [], 'random'));
    expect(bad.kind).toBe('invalid_argument');
    expect(bad.message).toBe('strategy "random" is not supported; use least-conn or round-robin');
    const missing = domainError(() => rebalance(s.nlb, true, ['alb-1', 'ghost'], ''));
    expect(missing.kind).toBe('not_found');
    expect(missing.message).toBe('target_instances not registered: ghost');
  });

  it('checkHealth is HEALTHY with every check passing', async () => {
    const s = loaded();
    const h = await checkHealth(s.nlb, false, true);
    expect(h.status).toBe('HEALTHY');
    expect(h.message).toBe('all checks passed');
    expect(h.checks).toMatchObject({
      registry: '2/2 instances healthy',
      modules: '2/2 modules healthy',
      state_store: 'ok (memory)',
    });
    expect(h.moduleHealth).toEqual({ 'alb-1': 'HEALTHY', 'alb-2': 'HEALTHY' });
  });

  it('checkHealth(checkModules) is DEGRADED when one module is unhealthy, UNHEALTHY when all are', async () => {
    const s = loaded();
    s.modules.unhealthy.add('alb-2');
    const h = await checkHealth(s.nlb, false, true);
    expect(h.status).toBe('DEGRADED');
    expect(h.moduleHealth).toEqual({ 'alb-1': 'HEALTHY', 'alb-2': 'UNHEALTHY' });
    expect(h.checks['module:alb-2']).toBe('backend pool empty');
    expect(h.checks.modules).toBe('1/2 modules healthy');
    expect(h.message).toContain('module:alb-2: backend pool empty; modules: 1/2 modules healthy');
    expect(s.modules.calls.healthCheck.sort()).toEqual(['alb-1', 'alb-2']);
    s.modules.down.add(ALB_V1);
    const all = await checkHealth(s.nlb, false, true);
    expect(all.status).toBe('UNHEALTHY');
    expect(all.checks['module:alb-1']).toBe(`no answer from ${ALB_V1}: deadline exceeded`);
  });

  it('checkHealth without checkModules does not call the modules', async () => {
    const s = loaded();
    s.modules.unhealthy.add('alb-2');
    const h = await checkHealth(s.nlb, false, false);
    expect(h.status).toBe('HEALTHY');
    expect(s.modules.calls.healthCheck).toEqual([]);
  });

  it('checkHealth is DEGRADED after a failed save and UNHEALTHY when the sweeper stalls', async () => {
    const s = loaded();
    s.state.fail = new Error('disk full');
    expect(() => s.nlb.updateConfig('routing', { strategy: 'round-robin' }, false)).toThrow('disk full');
    const h = await checkHealth(s.nlb, true, false);
    expect(h.status).toBe('DEGRADED');
    expect(h.checks.state_store).toBe('last save failed: disk full');
    expect(h.checks.state_store_write).toMatch(/^failed: could not save NLB state: disk full/);
    s.clock.advance(60 * SEC);
    const stalled = await checkHealth(s.nlb, false, false);
    expect(stalled.status).toBe('UNHEALTHY');
    expect(stalled.checks.lease_sweeper).toBe('stalled: last sweep 60 s ago');
  });

  it.each<[string, string, number, number]>([
    ['scale-up', 'scale-up', 0, 3],
    ['scale-down', 'scale-down', 0, 1],
    ['scale-to 5', 'scale-to', 5, 5],
    ['a target with no action', '', 4, 4],
    ['scale-down to a target', 'scale-down', 1, 1],
  ])(
    'triggerScaling %s asks the controller for the right count',
    async (_label, action, targetInstances, desired) => {
      const s = loaded();
      const r = await triggerScaling(s.nlb, {
        instanceId: 'alb-1',
        moduleType: null,
        action,
        targetInstances,
      });
      expect(s.modules.calls.scale).toEqual([
        { address: ALB_V1, desiredInstances: desired, instanceId: 'alb-1' },
      ]);
      expect(r.target).toBe(desired);
      expect(r.message).toBe(`ALB 1.0 controller ${ALB_V1}: ok`);
      const ev = s.events.find((e) => e.type === 'scaling');
      expect(ev).toMatchObject({
        type: 'scaling',
        moduleType: 'ALB',
        version: '1.0',
        from: 2,
        to: desired,
        ok: true,
      });
    },
  );

  it("triggerScaling by module type scales the active version's only controller", async () => {
    const s = loaded();
    s.nlb.register(alb('alb-v2', { address: ALB_V2, version: '2.0' }), [], 'HEALTHY');
    await triggerScaling(s.nlb, {
      instanceId: '',
      moduleType: 'ALB',
      action: 'scale-up',
      targetInstances: 0,
    });
    expect(s.modules.calls.scale).toEqual([{ address: ALB_V1, desiredInstances: 3, instanceId: '' }]);
  });

  it.each<[string, Parameters<typeof triggerScaling>[1], string, string]>([
    [
      'an unknown action',
      { instanceId: 'alb-1', moduleType: null, action: 'sideways', targetInstances: 0 },
      'invalid_argument',
      'invalid scaling request: scaling_action "sideways" is not supported; use scale-up, scale-down or auto',
    ],
    [
      'a negative target',
      { instanceId: 'alb-1', moduleType: null, action: 'scale-to', targetInstances: -1 },
      'invalid_argument',
      'invalid scaling request: target_instances -1 is out of range: use 0 to 10000',
    ],
    [
      'a target too large',
      { instanceId: 'alb-1', moduleType: null, action: 'scale-to', targetInstances: 10_001 },
      'invalid_argument',
      'target_instances 10001 is out of range',
    ],
    [
      'nothing to scale',
      { instanceId: '', moduleType: null, action: 'scale-up', targetInstances: 0 },
      'invalid_argument',
      'name what to scale: instance_id (its controller) or module_type',
    ],
    [
      'min above max',
      {
        instanceId: 'alb-1',
        moduleType: null,
        action: 'scale-up',
        targetInstances: 0,
        config: {
          minInstances: 5,
          maxInstances: 2,
          targetCpuPercent: 70,
          targetMemoryPercent: 80,
          targetConnections: 100,
          cooldownSeconds: 0,
          autoScalingEnabled: false,
        },
      },
      'invalid_argument',
      'config.min_instances 5 exceeds config.max_instances 2',
    ],
    [
      'an unknown instance',
      { instanceId: 'ghost', moduleType: null, action: 'scale-up', targetInstances: 0 },
      'not_found',
      'instance ghost is not registered',
    ],
    [
      'a type with no instances',
      { instanceId: '', moduleType: 'RTMP', action: 'scale-up', targetInstances: 0 },
      'not_found',
      'no RTMP instance is registered, so there is no controller to scale',
    ],
    [
      'auto without an autoscaler',
      { instanceId: 'alb-1', moduleType: null, action: 'auto', targetInstances: 0 },
      'failed_precondition',
      'the autoscaler is not running on this NLB',
    ],
  ])('triggerScaling refuses %s and calls nothing', async (_label, req, kind, message) => {
    const s = loaded();
    const e = await domainErrorAsync(() => triggerScaling(s.nlb, req));
    expect(e.kind).toBe(kind);
    expect(e.message).toContain(message);
    expect(s.modules.calls.scale).toEqual([]);
  });

  it('triggerScaling refuses a type with several controllers of the active version', async () => {
    const s = loaded();
    s.nlb.register(alb('alb-x', { address: '127.0.0.1:50071' }), [], 'HEALTHY');
    const e = await domainErrorAsync(() =>
      triggerScaling(s.nlb, { instanceId: '', moduleType: 'ALB', action: 'scale-up', targetInstances: 0 }),
    );
    expect(e.kind).toBe('failed_precondition');
    expect(e.message).toBe(`ALB has 2 controllers (${ALB_V1}, 127.0.0.1:50071); name one with instance_id`);
    expect(s.modules.calls.scale).toEqual([]);
  });

  it('triggerScaling reports a controller that refuses', async () => {
    const s = loaded();
    s.modules.answerScale({ success: false, message: 'at max_instances' });
    const e = await domainErrorAsync(() =>
      triggerScaling(s.nlb, {
        instanceId: 'alb-1',
        moduleType: null,
        action: 'scale-up',
        targetInstances: 0,
      }),
    );
    expect(e.kind).toBe('failed_precondition');
    expect(e.message).toBe(`ALB 1.0 controller ${ALB_V1} refused to scale: at max_instances`);
    expect(s.events.find((x) => x.type === 'scaling')).toMatchObject({ ok: false, to: 3 });
  });

  it('triggerScaling auto delegates to the autoscaler', async () => {
    const s = loaded();
    const seen: Array<ModuleTypeName | null> = [];
    const r = await triggerScaling(
      s.nlb,
      { instanceId: 'alb-1', moduleType: null, action: 'auto', targetInstances: 0 },
      (t) => {
        seen.push(t);
        return Promise.resolve({ message: 'evaluated', current: 2, target: 4 });
      },
    );
    expect(seen).toEqual(['ALB']);
    expect(r).toEqual({ action: 'auto', current: 2, target: 4, message: 'evaluated' });
    expect(s.modules.calls.scale).toEqual([]);
  });
});
