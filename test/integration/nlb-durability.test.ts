/**
 * Durability and re-registration with the NLB as a real process (`mpctl serve nlb`): SIGKILL
 * after config, route and weight changes, restart on the same data dir, everything is back;
 * heartbeating instances re-register within one interval of a restart.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RolloutPhase } from '../../proto/gen/marchproxy/types.js';
import {
  createNlbHarness,
  DeploymentAction,
  heartbeatLoop,
  instance,
  listedIds,
  ModuleType,
  Protocol,
  register,
  route,
  rpcOf,
  setWeight,
  waitFor,
  type Rpc,
} from './nlb-fixture.js';

const h = createNlbHarness();
afterEach(() => h.closeAll());

const HEARTBEAT = { intervalSeconds: 2, missedHeartbeats: 4, evictAfterSeconds: 120, drainTimeoutSeconds: 5 };
const WEB = route({
  routeId: 'web',
  destinationPattern: 'shop.example.com',
  pathPattern: '/api/*',
  priority: 50,
  headers: { 'x-canary': '1' },
  moduleType: 'ALB',
});
const statusOf = async (rpc: Rpc) =>
  (
    await rpc('updateDeployment', {
      moduleType: ModuleType.MODULE_TYPE_ALB,
      action: DeploymentAction.DEPLOYMENT_ACTION_STATUS,
    })
  ).deployment;
const heartbeatConfig = async (rpc: Rpc) =>
  JSON.parse(
    Buffer.from((await rpc('getNlbConfig', { configType: 'heartbeat' })).configs[0].configData).toString(),
  );

describe('the NLB process', () => {
  it('finds config, operator routes and weights again after SIGKILL and a restart on the same data dir', async () => {
    const dataDir = h.tempDir();
    const first = await h.spawnNlb({ dataDir });
    const rpc = rpcOf(h.client(first.target));
    const cfg = await rpc('updateNlbConfig', {
      config: { configType: 'heartbeat', configData: Buffer.from(JSON.stringify(HEARTBEAT)) },
    });
    expect(cfg.success).toBe(true);
    expect((await rpc('updateRouting', { routes: [WEB] })).success).toBe(true);
    await register(rpc, instance('alb-1', '127.0.0.1:50051', { version: '1.0' }));
    await register(rpc, instance('alb-2', '127.0.0.1:50061', { version: '2.0' }));
    await setWeight(rpc, '2.0', 30);
    const before = { table: await rpc('getRoutingTable', {}), deployment: await statusOf(rpc) };
    expect(before.deployment).toMatchObject({
      versionWeights: { '1.0': 70, '2.0': 30 },
      targetVersion: '2.0',
    });

    await first.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await h.spawnNlb({ dataDir });
    const again = rpcOf(h.client(second.target));
    expect(await heartbeatConfig(again)).toEqual(HEARTBEAT);
    expect((await again('getNlbStatus', {})).details.heartbeat_interval_seconds).toBe('2');
    const table = await again('getRoutingTable', {});
    expect(table.entries).toHaveLength(1);
    expect(table.entries[0]).toEqual({ ...before.table.entries[0], lastUsed: undefined });
    expect(table.entries[0].route).toMatchObject({
      routeId: 'web',
      protocol: Protocol.PROTOCOL_HTTP,
      headers: { 'x-canary': '1' },
      priority: 50,
    });
    expect(await statusOf(again)).toEqual(before.deployment);
    // The registry is soft state: empty until instances register again, then weights apply.
    expect(await listedIds(again)).toEqual([]);
    await register(again, instance('alb-1', '127.0.0.1:50051', { version: '1.0' }));
    await register(again, instance('alb-2', '127.0.0.1:50061', { version: '2.0' }));
    const listed = await again('listModules', { query: { sortBy: 'instance_id' } });
    expect(listed.modules.map((m) => m.trafficWeight)).toEqual([70, 30]);
    expect((await statusOf(again))?.phase).toBe(RolloutPhase.ROLLOUT_PHASE_STABLE);
  }, 90_000);

  it('applies --heartbeat-interval at a restart unless the heartbeat section was set through the API', async () => {
    const dataDir = h.tempDir();
    const intervalOf = async (rpc: Rpc) => (await rpc('getNlbStatus', {})).details.heartbeat_interval_seconds;
    const a = await h.startNlb({ dataDir, heartbeatIntervalSeconds: 1 });
    await register(a.rpc, instance('alb-1', '127.0.0.1:50051')); // writes the state file
    await a.handle.stop();
    const b = await h.startNlb({ dataDir, heartbeatIntervalSeconds: 5 });
    expect(await intervalOf(b.rpc)).toBe('5');
    expect(await statusOf(b.rpc)).toMatchObject({ versionWeights: { '1.0': 100 } });
    expect(
      (
        await b.rpc('updateNlbConfig', {
          config: { configType: 'heartbeat', configData: Buffer.from('intervalSeconds: 2') },
        })
      ).success,
    ).toBe(true);
    await b.handle.stop();
    const c = await h.startNlb({ dataDir, heartbeatIntervalSeconds: 7 });
    expect(await intervalOf(c.rpc)).toBe('2'); // a section set through the API is durable and wins
    expect(await heartbeatConfig(c.rpc)).toMatchObject({ intervalSeconds: 2 });
  });

  it('refuses to start on a corrupt state file, naming it', async () => {
    const dataDir = h.tempDir();
    const file = join(dataDir, 'nlb-state.json');
    writeFileSync(file, '{"version": 1, "state": {"config": "oops"');
    const failed = await h.spawnNlb({ dataDir }).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(failed).toContain('before it was ready');
    expect(failed).toContain(file);
    expect(readFileSync(file, 'utf8')).toBe('{"version": 1, "state": {"config": "oops"'); // left for the operator
  }, 60_000);

  it('rebuilds its registry within one heartbeat interval of a restart on the same port', async () => {
    const dataDir = h.tempDir();
    const interval = 1;
    const first = await h.spawnNlb({ dataDir, heartbeatIntervalSeconds: interval });
    // What a module would do: reconnect quickly, so a heartbeat reaches the new process at once.
    const client = h.client(first.target, {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 250,
    });
    const rpc = rpcOf(client);
    const fleet = ['alb-1', 'alb-2', 'alb-3'].map((id, i) => instance(id, `127.0.0.1:${50051 + i}`));
    fleet.push(
      instance('db-1', '127.0.0.1:50052', { moduleType: ModuleType.MODULE_TYPE_DBLB, version: '2.4' }),
    );
    const ids = fleet.map((i) => i.instanceId!).sort();
    const loop = heartbeatLoop(rpc, fleet, interval * 1000);
    try {
      // Never registered explicitly: the first heartbeats are told to register.
      await waitFor(
        'the fleet to register',
        async () => JSON.stringify(await listedIds(rpc)) === JSON.stringify(ids),
        10_000,
      );
      // While they heartbeat, /metrics shows them by type, version and health.
      const acked = /^mp_nlb_heartbeats_total\{acknowledged="true",module_type="ALB"\} [1-9]\d*$/m;
      const metrics = await waitFor('acknowledged heartbeats in /metrics', async () => {
        const text = await (await fetch(`${first.adminUrl}/metrics`)).text();
        return acked.test(text) && text;
      });
      expect(metrics).toContain('mp_nlb_instances{module_type="ALB",version="1.0",health="HEALTHY"} 3');
      expect(metrics).toContain('mp_nlb_instances{module_type="DBLB",version="2.4",health="HEALTHY"} 1');
      expect(metrics).toMatch(/^mp_nlb_heartbeats_total\{acknowledged="false",module_type="unknown"\} 4$/m);

      await first.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);
      const before = loop.counts.reregistrations;
      const second = await h.spawnNlb({
        dataDir,
        heartbeatIntervalSeconds: interval,
        grpcPort: first.grpcPort,
      });
      const readyAt = Date.now();
      await waitFor(
        'the fleet to re-register',
        async () => JSON.stringify(await listedIds(rpc)) === JSON.stringify(ids),
        10_000,
        20,
      );
      const tookMs = Date.now() - readyAt;
      expect(tookMs, `re-registered ${tookMs} ms after the restart`).toBeLessThanOrEqual(
        interval * 1000 + 1000,
      ); // one interval, plus slack for reconnecting
      expect(loop.counts.reregistrations - before).toBeGreaterThanOrEqual(fleet.length);
      expect(second.grpcPort).toBe(first.grpcPort);
    } finally {
      await loop.stop();
    }
  }, 90_000);
});
