/**
 * ModuleService over real gRPC, observation: HealthCheck (deep checks of backends), GetStats
 * (with reset_counters), GetMetrics and StreamMetrics, each with its bad requests refused.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamMetricsRequest } from '../../proto/gen/marchproxy/module.js';
import { serverStreamCall } from '../../services/shared/grpc/client.js';
import {
  createModuleHarness,
  freePort,
  HealthStatus,
  listedIds,
  managedIds,
  ModuleType,
  rejectionOf,
  touch,
  waitFor,
  type ModuleRpc,
  type TestModule,
} from './module-fixture.js';

const h = createModuleHarness();
let mod: TestModule;
let rpc: ModuleRpc;
let ids: string[];

const trafficAddress = async (id: string) =>
  (await rpc('getStatus', { instanceId: id })).instance!.trafficAddress;

beforeEach(async () => {
  const n = await h.startNlb();
  mod = await h.startModule({ nlb: n.target, instances: 2 });
  rpc = mod.rpc;
  await waitFor('both instances registered', async () => (await listedIds(n.rpc)).length === 2);
  ids = await managedIds(rpc);
});

afterEach(() => h.closeAll());

describe('health, stats and metrics', () => {
  it('HealthCheck deep reports a refusing backend as DEGRADED with the check message', async () => {
    const closed = await freePort();
    const cfg = { backends: [{ name: 'api', address: `127.0.0.1:${closed}` }] };
    expect(
      (await rpc('updateConfig', { config: { configData: Buffer.from(JSON.stringify(cfg)) } })).success,
    ).toBe(true);

    const shallow = await rpc('healthCheck', {});
    expect(shallow.status).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    expect(shallow.checks.config).toContain('1 backend(s) configured');
    const deep = await rpc('healthCheck', { deepCheck: true });
    expect(deep.status).toBe(HealthStatus.HEALTH_STATUS_DEGRADED);
    expect(deep.checks['backend:api']).toContain('ECONNREFUSED');
    expect(deep.message).toBe('1 check(s) failed');
    for (const id of ids) expect(deep.checks[`instance:${id}`]).toMatch(/^ok \(lease registered\)/);
    const one = await rpc('healthCheck', { instanceId: ids[1] });
    expect(Object.keys(one.checks)).toContain(`instance:${ids[1]}`);
    const unknown = await rejectionOf(rpc('healthCheck', { instanceId: 'nope' }));
    expect(unknown.code).toBe(grpcStatus.NOT_FOUND);
  });

  it('GetStats counts traffic and reset_counters zeroes it; GetMetrics serves samples', async () => {
    const address = await trafficAddress(ids[0]);
    await Promise.all([touch(address), touch(address), touch(address)]);
    const before = await waitFor('3 requests counted', async () => {
      const s = (await rpc('getStats', { instanceId: ids[0] })).stats!;
      return s.totalRequests >= 3 && s;
    });
    expect(before).toMatchObject({ instanceId: ids[0], totalConnections: 3, activeConnections: 0 });
    expect(before.bytesReceived).toBeGreaterThan(0);
    const module = (await rpc('getStats', {})).stats!;
    expect(module.totalRequests).toBe(3);

    const reset = (await rpc('getStats', { instanceId: ids[0], resetCounters: true })).stats!;
    expect(reset.totalRequests).toBe(3);
    const after = (await rpc('getStats', { instanceId: ids[0] })).stats!;
    expect(after).toMatchObject({ totalRequests: 0, totalConnections: 0, bytesReceived: 0 });
    expect(after.since!.getTime()).toBeGreaterThanOrEqual(before.since!.getTime());
    expect((await rejectionOf(rpc('getStats', { instanceId: 'nope' }))).code).toBe(grpcStatus.NOT_FOUND);

    await mod.handle.sampler.sample();
    const m = await rpc('getMetrics', { metricNames: ['instances', 'connections_total'] });
    expect(m.metrics?.moduleType).toBe(ModuleType.MODULE_TYPE_ALB);
    const instances = m.metrics!.metrics.filter((p) => p.name === 'instances');
    expect(instances.at(-1)?.value).toBe(2);
    expect(instances.at(-1)?.labels.version).toBe('1.0');
    const perInstance = await rpc('getMetrics', { instanceId: ids[1], metricNames: ['connections_total'] });
    expect(perInstance.metrics!.metrics.length).toBeGreaterThan(0);
    const backwards = await rejectionOf(
      rpc('getMetrics', { startTime: new Date(Date.now()), endTime: new Date(Date.now() - 60_000) }),
    );
    expect(backwards.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(backwards.details).toContain('start_time is after end_time');
    expect((await rejectionOf(rpc('getMetrics', { instanceId: 'nope' }))).code).toBe(grpcStatus.NOT_FOUND);
  });

  it('StreamMetrics sends a message per interval until cancelled, and refuses bad requests', async () => {
    const ac = new AbortController();
    const got: number[] = [];
    const started = Date.now();
    for await (const msg of serverStreamCall(
      mod.client,
      'streamMetrics',
      { instanceId: '', intervalSeconds: 1, metricNames: [] },
      { signal: ac.signal },
    )) {
      expect(msg.metrics?.moduleType).toBe(ModuleType.MODULE_TYPE_ALB);
      expect(msg.metrics!.metrics.map((p) => p.name)).toContain('totalConnections');
      got.push(Date.now() - started);
      if (got.length === 2) ac.abort();
    }
    expect(got.length).toBe(2);
    expect(got[1]).toBeGreaterThanOrEqual(800);

    const bad: Array<[Partial<StreamMetricsRequest>, grpcStatus]> = [
      [{ intervalSeconds: 3601 }, grpcStatus.INVALID_ARGUMENT],
      [{ intervalSeconds: -1 }, grpcStatus.INVALID_ARGUMENT],
      [{ instanceId: 'nope', intervalSeconds: 1 }, grpcStatus.NOT_FOUND],
    ];
    for (const [req, code] of bad) {
      const stream = serverStreamCall(mod.client, 'streamMetrics', StreamMetricsRequest.fromPartial(req), {
        timeoutMs: 5000,
      });
      const err = await rejectionOf(
        (async () => {
          for await (const _ of stream) break;
        })(),
      );
      expect(err.code).toBe(code);
    }
  });
});
