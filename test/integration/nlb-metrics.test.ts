/**
 * Metrics RPCs over real gRPC on loopback: ReportMetrics, GetNLBMetrics, GetModuleMetrics and
 * StreamNLBMetrics. Queries run on a manual clock (deterministic buckets and sweeps); streams
 * run on the system clock.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StreamNLBMetricsResponse } from '../../proto/gen/marchproxy/nlb.js';
import type { MetricDataPoint } from '../../proto/gen/marchproxy/types.js';
import { createManualClock, type ManualClock } from '../../services/shared/clock.js';
import { serverStreamCall } from '../../services/shared/grpc/client.js';
import {
  createNlbHarness,
  instance,
  ModuleType,
  register,
  rejectionOf,
  waitFor,
  type FakeModule,
  type Rpc,
  type TestNlb,
} from './nlb-fixture.js';

const h = createNlbHarness();
afterEach(() => h.closeAll());

const valueOf = (points: MetricDataPoint[] | undefined, name: string) =>
  points?.filter((p) => p.name === name).map((p) => p.value);

describe('metric queries', () => {
  let rpc: Rpc;
  let clock: ManualClock;
  let fake: FakeModule;

  beforeEach(async () => {
    clock = createManualClock();
    fake = await h.fakeModule();
    ({ rpc } = await h.startNlb({ clock }));
    await register(rpc, instance('alb-1', fake.address));
    await register(rpc, instance('alb-2', fake.address));
    await register(rpc, instance('alb-3', fake.address, { version: '2.0' }));
  });

  it('ReportMetrics stores points that GetModuleMetrics returns with the instance labels', async () => {
    const at = new Date(clock.now());
    const r = await rpc('reportMetrics', {
      instanceId: 'alb-1',
      metrics: {
        instanceId: 'alb-1',
        metrics: [
          { name: 'queue_depth', value: 7, labels: { pool: 'a' }, timestamp: at },
          { name: 'upstream_errors', value: 2 },
        ],
      },
    });
    expect(r).toMatchObject({ acknowledged: true, message: '2 data point(s) stored' });
    const got = await rpc('getModuleMetrics', { instanceId: 'alb-1', metricNames: ['queue_depth'] });
    expect(got.metrics).toMatchObject({ instanceId: 'alb-1', moduleType: ModuleType.MODULE_TYPE_ALB });
    expect(got.metrics?.metrics).toEqual([
      {
        name: 'queue_depth',
        value: 7,
        labels: { pool: 'a', instance: 'alb-1', module_type: 'ALB', version: '1.0' },
        timestamp: at,
      },
    ]);
    const other = await rpc('getModuleMetrics', { instanceId: 'alb-2', metricNames: ['queue_depth'] });
    expect(other.metrics?.metrics).toEqual([]);
  });

  it('ReportMetrics refuses a bad batch whole, naming each bad point, and stores nothing', async () => {
    const bad = await rejectionOf(
      rpc('reportMetrics', {
        instanceId: 'alb-1',
        metrics: {
          metrics: [
            { name: 'good_one', value: 1 },
            { name: 'bad name', value: 2 },
            { name: 'nan_value', value: Number.NaN },
          ],
        },
      }),
    );
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toBe(
      'invalid metrics report: 2 problems: metrics[1].name "bad name" must match [a-zA-Z_:][a-zA-Z0-9_:]*; metrics[2].value must be a finite number',
    );
    const unknown = await rejectionOf(
      rpc('reportMetrics', { instanceId: 'ghost', metrics: { metrics: [{ name: 'good_one', value: 1 }] } }),
    );
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(unknown.details).toContain('instance ghost is not registered');
    const mismatch = await rejectionOf(
      rpc('reportMetrics', {
        instanceId: 'alb-1',
        metrics: { instanceId: 'alb-2', metrics: [{ name: 'good_one', value: 1 }] },
      }),
    );
    expect(mismatch.details).toBe('metrics.instance_id alb-2 differs from instance_id alb-1');
    const noId = await rejectionOf(rpc('reportMetrics', {}));
    expect(noId.details).toBe('instance_id is required');

    for (const id of ['alb-1', 'alb-2']) {
      expect(
        (await rpc('getModuleMetrics', { instanceId: id, metricNames: ['good_one'] })).metrics?.metrics,
      ).toEqual([]);
    }
  });

  it('GetModuleMetrics derives rates from heartbeats and honours the time range; bad ranges and ids are refused', async () => {
    await rpc('heartbeat', {
      instanceId: 'alb-1',
      currentStats: { totalRequests: 100, failedRequests: 0, activeConnections: 4 },
    });
    clock.advance(10_000);
    await rpc('heartbeat', {
      instanceId: 'alb-1',
      currentStats: { totalRequests: 300, failedRequests: 10, activeConnections: 6 },
    });
    const m = await rpc('getModuleMetrics', {
      instanceId: 'alb-1',
      metricNames: ['requests_per_second', 'error_rate', 'connections'],
    });
    const points = m.metrics!.metrics;
    expect(valueOf(points, 'requests_per_second')).toEqual([20]);
    expect(valueOf(points, 'error_rate')).toEqual([0.05]);
    expect(valueOf(points, 'connections')).toEqual([4, 6]);

    const recent = await rpc('getModuleMetrics', {
      instanceId: 'alb-1',
      metricNames: ['connections'],
      startTime: new Date(clock.now() - 1),
    });
    expect(valueOf(recent.metrics?.metrics, 'connections')).toEqual([6]);

    const range = await rejectionOf(
      rpc('getModuleMetrics', {
        instanceId: 'alb-1',
        startTime: new Date(clock.now()),
        endTime: new Date(clock.now() - 1000),
      }),
    );
    expect(range.code).toBe(status.INVALID_ARGUMENT);
    expect(range.details).toBe('start_time is after end_time');
    const unknown = await rejectionOf(rpc('getModuleMetrics', { instanceId: 'alb-9' }));
    expect(unknown.code).toBe(status.NOT_FOUND);
  });

  it('GetNLBMetrics returns the NLB series, per type@version aggregates or per-instance series', async () => {
    await rpc('heartbeat', {
      instanceId: 'alb-1',
      currentStats: { activeConnections: 10, cpuUsagePercent: 20 },
    });
    await rpc('heartbeat', {
      instanceId: 'alb-2',
      currentStats: { activeConnections: 30, cpuUsagePercent: 40 },
    });
    clock.advance(5_000); // one sweep records the aggregates
    const names = [
      'nlb_registered_instances',
      'nlb_healthy_instances',
      'nlb_heartbeats_total',
      'instances',
      'weight',
      'connections',
      'cpu_percent',
    ];
    const agg = await rpc('getNlbMetrics', { metricNames: names, aggregate: true });
    expect(valueOf(agg.metrics, 'nlb_registered_instances')).toEqual([3]);
    expect(valueOf(agg.metrics, 'nlb_healthy_instances')).toEqual([3]);
    expect(valueOf(agg.metrics, 'nlb_heartbeats_total')).toEqual([2]);
    expect(Object.keys(agg.moduleMetrics).sort()).toEqual(['ALB@1.0', 'ALB@2.0']);
    const v1 = agg.moduleMetrics['ALB@1.0'];
    expect(v1).toMatchObject({ instanceId: '', moduleType: ModuleType.MODULE_TYPE_ALB });
    expect(valueOf(v1.metrics, 'instances')).toEqual([2]);
    expect(valueOf(v1.metrics, 'weight')).toEqual([100]);
    expect(valueOf(v1.metrics, 'connections')).toEqual([40]);
    expect(valueOf(v1.metrics, 'cpu_percent')).toEqual([30]);
    expect(valueOf(agg.moduleMetrics['ALB@2.0'].metrics, 'weight')).toEqual([0]);

    const per = await rpc('getNlbMetrics', { metricNames: ['connections'] });
    expect(Object.keys(per.moduleMetrics).sort()).toEqual(['alb-1', 'alb-2']);
    expect(per.moduleMetrics['alb-2']).toMatchObject({ instanceId: 'alb-2' });
    expect(valueOf(per.moduleMetrics['alb-2'].metrics, 'connections')).toEqual([30]);

    const future = await rpc('getNlbMetrics', {
      startTime: new Date(clock.now() + 60_000),
      endTime: new Date(clock.now() + 120_000),
    });
    expect(future.metrics).toEqual([]);
    expect(future.moduleMetrics).toEqual({});
  });

  it('GetNLBMetrics refuses a start after the end', async () => {
    const e = await rejectionOf(
      rpc('getNlbMetrics', { startTime: new Date(clock.now()), endTime: new Date(clock.now() - 1) }),
    );
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toBe('start_time is after end_time');
  });
});

describe('StreamNLBMetrics', () => {
  let nlb: TestNlb;

  beforeEach(async () => {
    const fake = await h.fakeModule();
    nlb = await h.startNlb({ heartbeatIntervalSeconds: 1 }); // sweeps (and aggregates) every 500 ms
    await register(nlb.rpc, instance('alb-1', fake.address));
    await waitFor(
      'the first aggregates',
      async () =>
        (await nlb.rpc('getNlbMetrics', { metricNames: ['instances'], aggregate: true })).moduleMetrics[
          'ALB@1.0'
        ],
    );
  });

  /** Reads `n` messages, then cancels; resolves with them (bounded by the test timeout). */
  async function take(
    rpcClient: TestNlb['client'],
    n: number,
    req: { intervalSeconds: number; metricNames?: string[]; includeModules?: boolean },
  ) {
    const ac = new AbortController();
    const got: StreamNLBMetricsResponse[] = [];
    for await (const msg of serverStreamCall(
      rpcClient,
      'streamNlbMetrics',
      { metricNames: [], includeModules: false, ...req },
      { signal: ac.signal },
    )) {
      got.push(msg);
      if (got.length === n) ac.abort();
    }
    return got;
  }

  const cancelledStreams = async () => {
    const text = await (await fetch(`${nlb.adminUrl}/metrics`)).text();
    return Number(
      /^mp_nlb_rpcs_total\{method="StreamNLBMetrics",code="CANCELLED"\} (\d+)$/m.exec(text)?.[1] ?? 0,
    );
  };

  it('delivers a snapshot every interval and ends cleanly when the client cancels', async () => {
    const msgs = await take(nlb.client, 2, { intervalSeconds: 1, includeModules: true });
    expect(msgs).toHaveLength(2);
    expect(msgs[1].timestamp!.getTime()).toBeGreaterThan(msgs[0].timestamp!.getTime());
    for (const m of msgs) {
      expect(valueOf(m.metrics, 'nlb_registered_instances')).toEqual([1]);
      expect(valueOf(m.moduleMetrics['ALB@1.0']?.metrics, 'instances')).toEqual([1]);
    }
    // The server side ended too: the handler finished as CANCELLED.
    await waitFor('the server to see the cancel', async () => (await cancelledStreams()) === 1, 5_000);

    const only = await take(nlb.client, 1, { intervalSeconds: 1, metricNames: ['nlb_routes'] });
    expect(only[0].metrics.map((p) => p.name)).toEqual(['nlb_routes']);
    expect(only[0].moduleMetrics).toEqual({});
  });

  it('keeps feeding a reading subscriber while another never reads', async () => {
    // A large snapshot (many type@version series) and a 1-byte flow-control window: the second
    // subscriber's stream is blocked from its first message on.
    const fake = await h.fakeModule();
    for (let i = 0; i < 40; i++)
      await register(nlb.rpc, instance(`wide-${i}`, fake.address, { version: `${i}.0-${'x'.repeat(56)}` }));
    await waitFor(
      'aggregates of every version',
      async () =>
        Object.keys(
          (await nlb.rpc('getNlbMetrics', { metricNames: ['instances'], aggregate: true })).moduleMetrics,
        ).length === 41,
    );
    const stuck = h.client(nlb.target, {
      'grpc-node.flow_control_window': 1,
      'grpc.use_local_subchannel_pool': 1,
    });
    const ac = new AbortController();
    const never = serverStreamCall(
      stuck,
      'streamNlbMetrics',
      { intervalSeconds: 1, metricNames: [], includeModules: true },
      { signal: ac.signal },
    );
    const first = never.next(); // opens the call; nothing reads past it
    try {
      const reader = h.client(nlb.target, { 'grpc.use_local_subchannel_pool': 1 });
      const msgs = await take(reader, 3, { intervalSeconds: 1, includeModules: true });
      expect(msgs).toHaveLength(3);
      expect(Object.keys(msgs[2].moduleMetrics)).toHaveLength(41);
    } finally {
      ac.abort();
      await first.catch(() => undefined);
    }
    await waitFor('both streams to end on the server', async () => (await cancelledStreams()) === 2, 5_000);
  });

  it('refuses an out-of-range interval with INVALID_ARGUMENT', async () => {
    for (const intervalSeconds of [-1, 3601]) {
      const e = await rejectionOf(take(nlb.client, 1, { intervalSeconds }));
      expect(e.code).toBe(status.INVALID_ARGUMENT);
      expect(e.details).toBe(
        `invalid stream request: interval_seconds ${intervalSeconds} is out of range: use 1 to 3600 (0 = default)`,
      );
    }
  });

  it('refuses subscribers beyond metrics.maxStreamSubscribers with RESOURCE_EXHAUSTED', async () => {
    const cfg = await nlb.rpc('updateNlbConfig', {
      config: { configType: 'metrics', configData: Buffer.from('maxStreamSubscribers: 1') },
    });
    expect(cfg.success).toBe(true);
    const ac = new AbortController();
    const first = serverStreamCall(
      nlb.client,
      'streamNlbMetrics',
      { intervalSeconds: 1, metricNames: [], includeModules: false },
      { signal: ac.signal },
    );
    try {
      await first.next();
      const e = await rejectionOf(take(nlb.client, 1, { intervalSeconds: 1 }));
      expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(e.details).toContain('too many metric streams (1)');
    } finally {
      ac.abort();
      await first.return(undefined);
    }
    // The slot is free again once the first stream ended.
    await waitFor('the slot to be released', async () => (await cancelledStreams()) === 1, 5_000);
    expect(await take(nlb.client, 1, { intervalSeconds: 1 })).toHaveLength(1);
  });
});
