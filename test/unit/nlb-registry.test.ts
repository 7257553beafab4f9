import { describe, expect, it } from 'vitest';
import { DEFAULT_LEASE_TIMINGS, Registry, type RegistryEvent } from '../../services/nlb/domain/registry.js';
import { emptyStats, type Health, type InstanceSpec } from '../../services/nlb/domain/types.js';
import { domainError, instance, spec } from './nlb-fixtures.js';

const T0 = 1_000_000;

function newRegistry() {
  let n = 0;
  return new Registry({ ...DEFAULT_LEASE_TIMINGS }, () => `reg-${++n}`);
}

/** Registry with alb-1 registered HEALTHY at T0. */
function withOne(over: Partial<InstanceSpec> = {}) {
  const reg = newRegistry();
  const { record } = reg.register(spec(over), 'HEALTHY', T0);
  return { reg, record };
}

const kinds = (events: RegistryEvent[]) =>
  events.map((e) =>
    e.type === 'health'
      ? `health:${e.from}->${e.to}`
      : e.type === 'removed'
        ? `removed:${e.reason}`
        : e.type === 'registered'
          ? `registered:${e.replaced}`
          : e.type,
  );

describe('Registry.register', () => {
  it('registers a new instance with a fresh registration id and a lease starting now', () => {
    const reg = newRegistry();
    const { record, events } = reg.register(spec(), 'STARTING', T0);
    expect(record).toMatchObject({
      instanceId: 'alb-1',
      registrationId: 'reg-1',
      registeredAtMs: T0,
      lastHeartbeatAtMs: T0,
      health: 'STARTING',
      reportedHealth: 'STARTING',
      draining: false,
      drainDeadlineMs: null,
      stats: null,
      connections: 0,
      pendingInstructions: {},
    });
    expect(kinds(events)).toEqual(['registered:false']);
    expect(reg.size).toBe(1);
    expect(reg.get('alb-1')).toBe(record);
  });

  it('is idempotent for the same controller address, type and version: same registration id, fields refreshed', () => {
    const { reg, record } = withOne();
    reg.addConnections('alb-1', 3);
    const again = reg.register(
      spec({ trafficAddress: '127.0.0.1:9999', maxConnections: 50, metadata: { zone: 'b' } }),
      'HEALTHY',
      T0 + 5_000,
    );
    expect(again.record.registrationId).toBe(record.registrationId);
    expect(again.record).toMatchObject({
      trafficAddress: '127.0.0.1:9999',
      maxConnections: 50,
      metadata: { zone: 'b' },
      lastHeartbeatAtMs: T0 + 5_000,
      registeredAtMs: T0,
      connections: 3,
    });
    expect(kinds(again.events)).toEqual(['refreshed']);
    expect(reg.size).toBe(1);
  });

  it('reports a health change when a re-registration changes the health', () => {
    const { reg } = withOne();
    const again = reg.register(spec(), 'STARTING', T0 + 1);
    expect(kinds(again.events)).toEqual(['refreshed', 'health:HEALTHY->STARTING']);
  });

  it.each([
    ['a different controller address', { address: '127.0.0.1:60000' }],
    ['a different version', { version: '2.0' }],
    ['a different module type', { moduleType: 'DBLB' as const }],
  ])('refuses %s for a live id with ALREADY_EXISTS and changes nothing', (_label, over) => {
    const { reg, record } = withOne();
    const before = structuredClone(record);
    const e = domainError(() => reg.register(spec(over), 'HEALTHY', T0 + 1_000));
    expect(e.kind).toBe('already_exists');
    expect(e.message).toContain('instance alb-1 is already registered as ALB 1.0 by 127.0.0.1:50051');
    expect(e.details).toEqual({ instance_id: 'alb-1' });
    expect(reg.get('alb-1')).toEqual(before);
  });

  it('refuses a different owner while the lease is live even if the instance reports itself UNHEALTHY', () => {
    const { reg } = withOne();
    reg.heartbeat('alb-1', 'reg-1', 'UNHEALTHY', null, T0 + 10_000);
    expect(reg.get('alb-1')!.health).toBe('UNHEALTHY');
    const e = domainError(() => reg.register(spec({ address: '10.9.9.9:50051' }), 'HEALTHY', T0 + 11_000));
    expect(e.kind).toBe('already_exists');
    expect(reg.get('alb-1')!.address).toBe('127.0.0.1:50051');
  });

  it('lets a different owner take the id once the lease has expired, with a new registration id', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 2);
    reg.sweep(T0 + 30_000);
    expect(reg.get('alb-1')!.health).toBe('UNHEALTHY');
    const { record, events } = reg.register(
      spec({ address: '10.9.9.9:50051', version: '2.0' }),
      'HEALTHY',
      T0 + 31_000,
    );
    expect(record.registrationId).toBe('reg-2');
    expect(record).toMatchObject({
      address: '10.9.9.9:50051',
      version: '2.0',
      health: 'HEALTHY',
      registeredAtMs: T0 + 31_000,
    });
    expect(record.connections).toBe(2);
    expect(kinds(events)).toEqual(['registered:true']);
  });

  it('lets a different owner take the id once the lease has expired by time, before any sweep ran', () => {
    const { reg } = withOne();
    const { record } = reg.register(spec({ address: '10.9.9.9:50051' }), 'HEALTHY', T0 + 30_000);
    expect(record.registrationId).toBe('reg-2');
    expect(record.address).toBe('10.9.9.9:50051');
  });

  it('lets a different owner take the id of a draining instance', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 1);
    reg.unregister('alb-1', 'reg-1', true, 0, T0 + 1);
    const { record } = reg.register(spec({ version: '2.0' }), 'HEALTHY', T0 + 2);
    expect(record).toMatchObject({
      version: '2.0',
      draining: false,
      health: 'HEALTHY',
      registrationId: 'reg-2',
    });
  });

  it('a re-registration by the same owner ends a drain and drops the queued drain instruction', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 1);
    reg.queueInstruction('alb-1', 'reload', 'config');
    reg.unregister('alb-1', 'reg-1', true, 0, T0 + 1);
    const { record } = reg.register(spec(), 'HEALTHY', T0 + 2);
    expect(record).toMatchObject({
      draining: false,
      drainDeadlineMs: null,
      health: 'HEALTHY',
      registrationId: 'reg-1',
    });
    const hb = reg.heartbeat('alb-1', 'reg-1', 'HEALTHY', null, T0 + 3);
    expect(hb.outcome.instructions).toEqual({ reload: 'config' });
    expect(Registry.routable(reg.get('alb-1')!)).toBe(true);
  });
});

describe('Registry.heartbeat', () => {
  it('renews the lease and records stats', () => {
    const { reg } = withOne();
    const stats = { ...emptyStats(), activeConnections: 7, cpuUsagePercent: 42 };
    const { outcome, events } = reg.heartbeat('alb-1', 'reg-1', 'HEALTHY', stats, T0 + 10_000);
    expect(outcome.acknowledged).toBe(true);
    expect(events).toEqual([]);
    expect(reg.get('alb-1')!.lastHeartbeatAtMs).toBe(T0 + 10_000);
    expect(reg.get('alb-1')!.stats).toEqual(stats);
  });

  it('accepts an empty registration id', () => {
    const { reg } = withOne();
    expect(reg.heartbeat('alb-1', '', null, null, T0 + 1).outcome.acknowledged).toBe(true);
  });

  it('answers an unknown instance with a reregister instruction', () => {
    const reg = newRegistry();
    const { outcome, events } = reg.heartbeat('ghost', 'reg-9', 'HEALTHY', null, T0);
    expect(outcome).toEqual({
      acknowledged: false,
      reason: 'instance ghost is not registered (the NLB may have restarted); register again',
      instructions: { action: 'reregister' },
    });
    expect(events).toEqual([]);
    expect(reg.size).toBe(0);
  });

  it('answers a stale registration id with a reregister instruction and does not renew the lease', () => {
    const { reg } = withOne();
    const { outcome } = reg.heartbeat('alb-1', 'reg-old', 'HEALTHY', null, T0 + 20_000);
    expect(outcome.acknowledged).toBe(false);
    expect(outcome.instructions).toEqual({ action: 'reregister' });
    expect(reg.get('alb-1')!.lastHeartbeatAtMs).toBe(T0);
  });

  it.each<[Health, Health | null, Health, string[]]>([
    ['STARTING', 'HEALTHY', 'HEALTHY', ['health:STARTING->HEALTHY']],
    ['HEALTHY', 'DEGRADED', 'DEGRADED', ['health:HEALTHY->DEGRADED']],
    ['HEALTHY', 'UNHEALTHY', 'UNHEALTHY', ['health:HEALTHY->UNHEALTHY']],
    ['HEALTHY', 'HEALTHY', 'HEALTHY', []],
    ['HEALTHY', null, 'HEALTHY', []],
    // STOPPED is not something an instance may report; it is ignored.
    ['HEALTHY', 'STOPPED', 'HEALTHY', []],
    ['STARTING', null, 'STARTING', []],
  ])('from %s, a heartbeat reporting %s leads to %s', (initial, reported, expected, events) => {
    const reg = newRegistry();
    reg.register(spec(), initial, T0);
    const r = reg.heartbeat('alb-1', 'reg-1', reported, null, T0 + 1);
    expect(r.outcome.acknowledged && r.outcome.instance.health).toBe(expected);
    expect(kinds(r.events)).toEqual(events);
  });

  it('brings an instance whose lease lapsed back to its reported health on the next heartbeat', () => {
    const { reg } = withOne();
    reg.sweep(T0 + 30_000);
    expect(reg.get('alb-1')!.health).toBe('UNHEALTHY');
    const { events } = reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 31_000);
    expect(kinds(events)).toEqual(['health:UNHEALTHY->HEALTHY']);
    expect(reg.get('alb-1')!.health).toBe('HEALTHY');
  });

  it('returns queued instructions once, then an empty set', () => {
    const { reg } = withOne();
    reg.queueInstruction('alb-1', 'reload', 'config');
    reg.queueInstruction('alb-1', 'log_level', 'debug');
    expect(reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 1).outcome.instructions).toEqual({
      reload: 'config',
      log_level: 'debug',
    });
    expect(reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 2).outcome.instructions).toEqual({});
  });

  it("keeps its own copy of the stats: later heartbeats update it, the caller's object is not kept", () => {
    const { reg } = withOne();
    const first = { ...emptyStats(), totalRequests: 10, cpuUsagePercent: 12.5, custom: { queue_depth: '3' } };
    reg.heartbeat('alb-1', 'reg-1', null, first, T0 + 1);
    const kept = reg.get('alb-1')!.stats!;
    expect(kept).not.toBe(first);
    first.totalRequests = 999; // the caller reusing its object changes nothing here
    first.custom.queue_depth = '99';
    expect(kept).toMatchObject({ totalRequests: 10, custom: { queue_depth: '3' } });

    const second = { ...emptyStats(), totalRequests: 20, cpuUsagePercent: 70, custom: { queue_depth: '4' } };
    reg.heartbeat('alb-1', 'reg-1', null, second, T0 + 2);
    expect(reg.get('alb-1')!.stats).toEqual(second);
    // A heartbeat without stats keeps the last ones.
    reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 3);
    expect(reg.get('alb-1')!.stats).toEqual(second);
  });

  it('updates custom stats, dropping keys no longer reported', () => {
    const { reg } = withOne();
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), custom: { a: '1', b: '2' } }, T0 + 1);
    const before = reg.get('alb-1')!.stats!.custom;
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), custom: { a: '1', b: '2' } }, T0 + 2);
    expect(reg.get('alb-1')!.stats!.custom).toBe(before); // same keys: updated in place
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), custom: { a: '7', b: '8' } }, T0 + 2);
    expect(reg.get('alb-1')!.stats!.custom).toEqual({ a: '7', b: '8' });
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), custom: { a: '1' } }, T0 + 3);
    expect(reg.get('alb-1')!.stats!.custom).toEqual({ a: '1' });
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), custom: { a: '1', c: '5' } }, T0 + 4);
    expect(reg.get('alb-1')!.stats!.custom).toEqual({ a: '1', c: '5' });
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), custom: {} }, T0 + 5);
    expect(reg.get('alb-1')!.stats!.custom).toEqual({});
  });

  it('an empty answer is not the queue: instructions queued after it go out with the next heartbeat', () => {
    const { reg } = withOne();
    const empty = reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 1).outcome.instructions;
    expect(empty).toEqual({});
    reg.queueInstruction('alb-1', 'reload', 'true');
    expect(empty).toEqual({});
    expect(reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 2).outcome.instructions).toEqual({
      reload: 'true',
    });
    expect(reg.heartbeat('alb-1', 'reg-1', null, null, T0 + 3).outcome.instructions).toEqual({});
  });

  it('refuses to queue an instruction for an unknown instance', () => {
    const e = domainError(() => newRegistry().queueInstruction('ghost', 'a', 'b'));
    expect(e.kind).toBe('not_found');
    expect(e.message).toBe('instance ghost is not registered');
  });

  it('keeps a draining instance STOPPING and repeats the drain instruction on every heartbeat', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 1);
    reg.unregister('alb-1', 'reg-1', true, 0, T0);
    for (const t of [1, 2]) {
      const { outcome, events } = reg.heartbeat('alb-1', 'reg-1', 'HEALTHY', null, T0 + t);
      expect(outcome.acknowledged && outcome.instance.health).toBe('STOPPING');
      expect(outcome.instructions).toEqual({ drain: 'true' });
      expect(events).toEqual([]);
    }
  });
});

describe('Registry.sweep (leases)', () => {
  it.each<[number, Health | 'gone', string[]]>([
    [29_999, 'HEALTHY', []],
    [30_000, 'UNHEALTHY', ['health:HEALTHY->UNHEALTHY']],
    [299_999, 'UNHEALTHY', ['health:HEALTHY->UNHEALTHY']],
    [300_000, 'gone', ['removed:evicted']],
  ])('%i ms after the last heartbeat the instance is %s', (silentMs, expected, events) => {
    const { reg } = withOne();
    expect(kinds(reg.sweep(T0 + silentMs))).toEqual(events);
    expect(reg.get('alb-1')?.health ?? 'gone').toBe(expected);
  });

  it('marks UNHEALTHY once, with a reason naming the silence, then evicts', () => {
    const { reg } = withOne();
    const [ev] = reg.sweep(T0 + 31_000);
    expect(ev).toMatchObject({
      type: 'health',
      from: 'HEALTHY',
      to: 'UNHEALTHY',
      reason: 'no heartbeat for 31 s (3 missed)',
    });
    expect(reg.sweep(T0 + 60_000)).toEqual([]);
    expect(kinds(reg.sweep(T0 + 300_000))).toEqual(['removed:evicted']);
    expect(reg.size).toBe(0);
  });

  it('keeps an instance that heartbeats HEALTHY indefinitely', () => {
    const { reg } = withOne();
    for (let t = 10_000; t <= 600_000; t += 10_000) {
      reg.heartbeat('alb-1', 'reg-1', 'HEALTHY', null, T0 + t);
      expect(reg.sweep(T0 + t + 5_000)).toEqual([]);
    }
    expect(reg.get('alb-1')!.health).toBe('HEALTHY');
  });

  it('follows live timing changes', () => {
    const { reg } = withOne();
    reg.setTimings({ ...DEFAULT_LEASE_TIMINGS, heartbeatIntervalMs: 1_000, evictAfterMs: 10_000 });
    expect(reg.getTimings().heartbeatIntervalMs).toBe(1_000);
    expect(kinds(reg.sweep(T0 + 3_000))).toEqual(['health:HEALTHY->UNHEALTHY']);
    expect(kinds(reg.sweep(T0 + 10_000))).toEqual(['removed:evicted']);
  });
});

describe('Registry.unregister (drain)', () => {
  it('removes at once when not graceful, reporting the open connections', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 4);
    const { openConnections, events } = reg.unregister('alb-1', 'reg-1', false, 0, T0);
    expect(openConnections).toBe(4);
    expect(kinds(events)).toEqual(['removed:unregistered']);
    expect(reg.size).toBe(0);
  });

  it('reports the higher of routed and self-reported connections', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 1);
    reg.heartbeat('alb-1', 'reg-1', null, { ...emptyStats(), activeConnections: 9 }, T0 + 1);
    expect(reg.unregister('alb-1', 'reg-1', true, 10, T0 + 2).openConnections).toBe(9);
  });

  it('removes a graceful unregistration with no connections at once as drained', () => {
    const { reg } = withOne();
    expect(kinds(reg.unregister('alb-1', 'reg-1', true, 10, T0).events)).toEqual(['removed:drained']);
    expect(reg.size).toBe(0);
  });

  it('drains: STOPPING, not routable, removed when the last connection closes', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 2);
    const { events } = reg.unregister('alb-1', 'reg-1', true, 10, T0);
    expect(kinds(events)).toEqual(['draining', 'health:HEALTHY->STOPPING']);
    const r = reg.get('alb-1')!;
    expect(r).toMatchObject({ draining: true, health: 'STOPPING', drainDeadlineMs: T0 + 10 });
    expect(Registry.routable(r)).toBe(false);
    // A second graceful call changes nothing.
    expect(reg.unregister('alb-1', 'reg-1', true, 99, T0 + 1).events).toEqual([]);
    expect(r.drainDeadlineMs).toBe(T0 + 10);
    reg.addConnections('alb-1', -1);
    expect(reg.sweep(T0 + 5)).toEqual([]);
    reg.addConnections('alb-1', -1);
    expect(kinds(reg.sweep(T0 + 6))).toEqual(['removed:drained']);
  });

  it.each([
    ['the given timeout', 5_000, T0 + 5_000],
    ['the default 30 s when 0 is given', 0, T0 + 30_000],
  ])('gives up after %s', (_label, timeoutMs, deadline) => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 3);
    reg.unregister('alb-1', 'reg-1', true, timeoutMs, T0);
    expect(reg.get('alb-1')!.drainDeadlineMs).toBe(deadline);
    expect(reg.sweep(deadline - 1)).toEqual([]);
    expect(kinds(reg.sweep(deadline))).toEqual(['removed:drain-timeout']);
    expect(reg.size).toBe(0);
  });

  it('is not evicted for silence while draining (the drain deadline governs)', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 1);
    reg.unregister('alb-1', 'reg-1', true, 600_000, T0);
    expect(reg.sweep(T0 + 400_000)).toEqual([]);
    expect(reg.get('alb-1')!.health).toBe('STOPPING');
  });

  it.each([
    ['an unknown instance', 'ghost', 'reg-1', 'not_found', 'instance ghost is not registered'],
    [
      'a stale registration id',
      'alb-1',
      'reg-old',
      'failed_precondition',
      'registration id reg-old is not the current registration of alb-1',
    ],
  ])('refuses %s', (_label, id, regId, kind, message) => {
    const { reg } = withOne();
    const e = domainError(() => reg.unregister(id, regId, false, 0, T0));
    expect(e.kind).toBe(kind);
    expect(e.message).toContain(message);
    expect(reg.size).toBe(1);
  });
});

describe('Registry.routable and connections', () => {
  it.each([
    ['HEALTHY', {}, true],
    ['DEGRADED', { health: 'DEGRADED' as Health }, false],
    ['STARTING', { health: 'STARTING' as Health }, false],
    ['UNHEALTHY', { health: 'UNHEALTHY' as Health }, false],
    ['draining', { draining: true }, false],
    ['under max_connections', { maxConnections: 10, connections: 9 }, true],
    ['at max_connections', { maxConnections: 10, connections: 10 }, false],
    ['no limit (0)', { maxConnections: 0, connections: 1_000_000 }, true],
  ])('%s → %s', (_label, over, expected) => {
    expect(Registry.routable(instance(over))).toBe(expected);
  });

  it('never lets the connection count go below zero, and ignores unknown instances', () => {
    const { reg } = withOne();
    reg.addConnections('alb-1', 2);
    reg.addConnections('alb-1', -5);
    expect(reg.get('alb-1')!.connections).toBe(0);
    reg.addConnections('ghost', 1);
    expect(reg.size).toBe(1);
  });

  it('lists instances in registration order', () => {
    const reg = newRegistry();
    for (const id of ['c', 'a', 'b']) reg.register(spec({ instanceId: id }), 'HEALTHY', T0);
    expect(reg.all().map((r) => r.instanceId)).toEqual(['c', 'a', 'b']);
  });

  it('keeps an id-ordered view (code-point order) through registrations, replacements and removals', () => {
    const reg = newRegistry();
    const ids = () => reg.sortedById().map((r) => r.instanceId);
    for (const id of ['m', 'b', 'Z', 'x', 'b-2', 'a', 'é'])
      reg.register(spec({ instanceId: id }), 'HEALTHY', T0);
    expect(ids()).toEqual(['Z', 'a', 'b', 'b-2', 'm', 'x', 'é']);
    // An idempotent re-registration changes nothing; a new owner after the lease lapsed replaces.
    reg.register(spec({ instanceId: 'm' }), 'HEALTHY', T0 + 1);
    const replaced = reg.register(spec({ instanceId: 'x', address: '10.0.0.9:1' }), 'HEALTHY', T0 + 40_000);
    expect(ids()).toEqual(['Z', 'a', 'b', 'b-2', 'm', 'x', 'é']);
    expect(reg.sortedById()[5]).toBe(replaced.record);
    reg.unregister('b', '', false, 0, T0 + 40_000);
    expect(ids()).toEqual(['Z', 'a', 'b-2', 'm', 'x', 'é']);
    // Graceful with connections: stays until drained, then the sweep removes it from both views.
    reg.addConnections('a', 1);
    reg.unregister('a', '', true, 1_000, T0 + 40_000);
    expect(ids()).toContain('a');
    reg.addConnections('a', -1);
    reg.sweep(T0 + 40_001);
    expect(ids()).not.toContain('a');
    // Eviction of everything that went silent (all but x, which registered at T0 + 40 s).
    reg.sweep(T0 + 300_000 + 1);
    expect(ids()).toEqual(['x']);
    expect(reg.all().map((r) => r.instanceId)).toEqual(['x']);
  });

  it("keeps only the spec's own fields on the record", () => {
    const reg = newRegistry();
    const extra = { ...spec(), note: 'not a spec field' } as InstanceSpec;
    const { record } = reg.register(extra, 'HEALTHY', T0);
    expect(record).not.toHaveProperty('note');
    reg.register(extra, 'HEALTHY', T0 + 1); // refresh
    expect(record).not.toHaveProperty('note');
    expect(Object.keys(record).sort()).toEqual(Object.keys(instance()).sort());
  });
});
