/**
 * The pieces of the data-plane workers that need no processes: a worker's replica routing over
 * a snapshot (same RoutingService; counts of its own plus the others'; reports), and the
 * batching of observer calls with their replay in the primary.
 */
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../services/shared/clock.js';
import { createRng } from '../../services/shared/rng.js';
import type { ConnectionLabels, DataplaneObserver } from '../../services/nlb/dataplane/listener.js';
import { WorkerLink } from '../../services/nlb/dataplane/worker-link.js';
import type { RoutingSnapshot, WorkerReport } from '../../services/nlb/dataplane/worker-protocol.js';
import { closeOut, replayObserver, ReportingObserver } from '../../services/nlb/dataplane/worker-report.js';
import type { InstanceRecord, RouteSpec } from '../../services/nlb/domain/types.js';
import { instance, route } from './nlb-fixtures.js';

const routeSpec = (over: Partial<RouteSpec> = {}): RouteSpec =>
  route({ routeId: 'r-http', protocol: 'HTTP', ...over });

const record = (id: string, over: Partial<InstanceRecord> = {}): InstanceRecord =>
  instance({
    instanceId: id,
    address: '127.0.0.1:9000',
    trafficAddress: `127.0.0.1:${10_000 + id.charCodeAt(0)}`,
    registrationId: `reg-${id}`,
    ...over,
  });

const snapshot = (
  version: number,
  instances: InstanceRecord[],
  over: Partial<RoutingSnapshot> = {},
): RoutingSnapshot => ({
  version,
  registryRevision: version,
  routesRevision: version,
  instances,
  routes: [{ route: routeSpec(), owner: '', moduleType: 'ALB', incarnation: 1 }],
  weights: { ALB: { '1.0': 100 } },
  strategy: 'least-conn',
  offsets: [],
  routing: { canHandleTimeoutMs: 1000, canHandleCacheTtlMs: 30_000 },
  ...over,
});

function newLink(canHandleCalls: string[] = []) {
  return new WorkerLink({
    clock: createManualClock(),
    rng: createRng(1),
    canHandle: (address) => {
      canHandleCalls.push(address);
      return Promise.resolve({ canHandle: true, priority: 0, reason: '' });
    },
  });
}

const emptyReport = (): WorkerReport => ({
  counts: [],
  connectMs: [],
  bytes: [],
  routing: [],
  touched: [],
  conns: [],
  connects: [],
  listeners: [],
  clients: [],
});

describe('WorkerLink (a worker’s replica of the routing state)', () => {
  it('routes over the snapshot with RoutingService: match, CanHandle (cached), selection', async () => {
    const calls: string[] = [];
    const link = newLink(calls);
    link.applySnapshot(snapshot(1, [record('a')]));
    expect(link.version).toBe(1);
    const d = await link.route(routeSpec({ routeId: '' }), {}, false, {});
    expect(d).toMatchObject({ routed: true, routeId: 'r-http', moduleType: 'ALB' });
    expect(d.instance?.instanceId).toBe('a');
    await link.route(routeSpec({ routeId: '' }), {}, false, {});
    expect(calls).toEqual(['127.0.0.1:9000']);
    // No route for PostgreSQL: not found, counted for the primary.
    const miss = await link.route(routeSpec({ routeId: '', protocol: 'POSTGRES' }), {}, false, {});
    expect(miss).toMatchObject({ routed: false, failure: 'not_found' });
    const r = emptyReport();
    link.take(r);
    expect(r.routing.sort()).toEqual([
      ['no_route', '', '', 1],
      ['routed', 'ALB', '1.0', 2],
    ]);
    expect(r.touched).toEqual(['r-http']);
  });

  it('a new snapshot version with new primary revisions asks CanHandle again; exclusions apply', async () => {
    const calls: string[] = [];
    const link = newLink(calls);
    link.applySnapshot(snapshot(1, [record('a'), record('b', { address: '127.0.0.1:9001' })]));
    const d = await link.route(routeSpec({ routeId: '' }), {}, true, {
      exclude: (x) => x.instanceId === 'a',
    });
    expect(d.instance?.instanceId).toBe('b');
    link.applySnapshot(
      snapshot(2, [record('a', { health: 'UNHEALTHY' }), record('b', { address: '127.0.0.1:9001' })]),
    );
    expect((await link.route(routeSpec({ routeId: '' }), {}, true, {})).instance?.instanceId).toBe('b');
    // Excluded and unhealthy instances' controllers are not asked; version 2's revisions are new keys.
    expect(calls).toEqual(['127.0.0.1:9001', '127.0.0.1:9001']);
  });

  it('least connections sees its own connections and the other processes’ (loads)', async () => {
    const link = newLink();
    link.applySnapshot(snapshot(1, [record('a'), record('b')]));
    const pick = async () => (await link.route(routeSpec({ routeId: '' }), {}, true, {})).instance!;
    // Other workers hold 3 connections on a: b until b has 3 of this worker's own.
    link.applyLoads([['a', 3]], true);
    const mine = [];
    for (let i = 0; i < 3; i++) {
      const inst = await pick();
      expect(inst.instanceId).toBe('b');
      mine.push(link.opened(inst, 'r-http'));
    }
    // 3 / 3: ties go to the lower id.
    expect((await pick()).instanceId).toBe('a');
    // The others closed theirs: a again.
    link.applyLoads([['a', 0]], false);
    for (const t of mine) link.closed(t);
    link.applyLoads([['b', 5]], false);
    expect((await pick()).instanceId).toBe('a');
    // A snapshot keeps both the others' and the own counts.
    const t = link.opened(await pick(), 'r-http');
    link.applySnapshot(snapshot(2, [record('a'), record('b')]));
    expect((await pick()).instanceId).toBe('a');
    link.closed(t);

    const r = emptyReport();
    link.take(r);
    // Opened and closed in the same batch net out; only what is still open is reported.
    expect(r.conns).toEqual([]);
    link.opened(record('a'), 'r-http');
    link.take(r);
    expect(r.conns).toEqual([['a', 'reg-a', 'r-http', 1, 1]]);
  });

  it('ejections expire; connect outcomes are reported in order with runs of successes collapsed', () => {
    const link = newLink();
    link.applySnapshot(snapshot(1, [record('a')]));
    link.eject('a', 60_000);
    expect(link.ejected('a')).toBe(true);
    link.eject('a', -1);
    expect(link.ejected('a')).toBe(false);
    const a = record('a');
    link.connectSucceeded(a);
    link.connectSucceeded(a);
    link.connectFailed(a, 'ECONNREFUSED');
    link.connectSucceeded(a);
    link.connectSucceeded(a);
    const r = emptyReport();
    link.take(r);
    expect(r.connects).toEqual([
      ['a', 'ALB', true, ''],
      ['a', 'ALB', false, 'ECONNREFUSED'],
      ['a', 'ALB', true, ''],
    ]);
  });
});

describe('ReportingObserver and replayObserver', () => {
  const labels = (instance: string): ConnectionLabels => ({
    listener: 'web',
    protocol: 'HTTP',
    module_type: 'ALB',
    version: '1.0',
    instance,
  });

  function recorder() {
    const calls: string[] = [];
    const o: DataplaneObserver = {
      accepted: (l) => calls.push(`accepted ${l}`),
      rejected: (l, r) => calls.push(`rejected ${l} ${r}`),
      detectionFailed: (l, r) => calls.push(`detectionFailed ${l} ${r}`),
      routingFailed: (l, p, r) => calls.push(`routingFailed ${l} ${p} ${r}`),
      connectFailed: (x, r) => calls.push(`connectFailed ${x.instance} ${r}`),
      opened: (x, ms) =>
        calls.push(`opened ${x.listener}/${x.protocol}/${x.module_type}/${x.version}/${x.instance} ${ms}`),
      bytes: (x, i, out) => calls.push(`bytes ${x.instance} ${i} ${out}`),
      closed: (x, r) => calls.push(`closed ${x.instance} ${r}`),
      ejected: (t, id) => calls.push(`ejected ${t} ${id}`),
    };
    return { o, calls };
  }

  it('replays every call with its labels and values; opened before bytes and closed', () => {
    const batch = new ReportingObserver();
    expect(batch.empty).toBe(true);
    const a = labels('a');
    batch.accepted('web');
    batch.accepted('web');
    batch.rejected('web', 'max_connections');
    batch.detectionFailed('web', 'timeout');
    batch.routingFailed('web', 'HTTP', 'no_route');
    batch.connectFailed(labels('b'), 'ECONNREFUSED');
    batch.bytes(a, 10, 20);
    batch.closed(a, 'done');
    batch.opened(a, 1.5);
    batch.bytes(a, 1, 2);
    expect(batch.empty).toBe(false);
    const r = emptyReport();
    batch.take(r);
    expect(batch.empty).toBe(true);
    const { o, calls } = recorder();
    const open = new Map<string, number>();
    replayObserver(r, o, (k, d) => open.set(k, (open.get(k) ?? 0) + d));
    expect(calls).toEqual([
      'opened web/HTTP/ALB/1.0/a 1.5',
      'bytes a 11 22',
      'accepted web',
      'accepted web',
      'rejected web max_connections',
      'detectionFailed web timeout',
      'routingFailed web HTTP no_route',
      'connectFailed b ECONNREFUSED',
      'closed a done',
    ]);
    expect([...open.values()]).toEqual([0]);
  });

  it('closeOut closes what a dead worker left open', () => {
    const batch = new ReportingObserver();
    batch.opened(labels('a'), 1);
    batch.opened(labels('a'), 2);
    batch.opened(labels('b'), 3);
    const r = emptyReport();
    batch.take(r);
    const { o, calls } = recorder();
    const open = new Map<string, number>();
    replayObserver(r, o, (k, d) => open.set(k, (open.get(k) ?? 0) + d));
    calls.length = 0;
    closeOut(open, o);
    expect(calls.sort()).toEqual(['closed a aborted', 'closed a aborted', 'closed b aborted']);
    expect(open.size).toBe(0);
  });
});
