/**
 * ModuleService over real gRPC, instance lifecycle: GetStatus, GetInstances, Scale, Drain,
 * Reload and Shutdown against a real ALB controller (inprocess instances) registered with a
 * real NLB. Every bad request gets a clear error and changes nothing (state re-read afterwards).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createModuleHarness,
  HealthStatus,
  listedIds,
  managedIds,
  ModuleType,
  rejectionOf,
  StatusCode,
  waitFor,
  type ModuleRpc,
  type NlbRpc,
  type TestModule,
} from './module-fixture.js';

const h = createModuleHarness();
let nlb: NlbRpc;
let mod: TestModule;
let rpc: ModuleRpc;
let dataDir: string;

/** What a bad request must leave untouched: desired count, bounds, instances, NLB view. */
async function snapshot() {
  const st = await rpc('getStatus', {});
  const d = st.details;
  return {
    desired: d.desired_instances,
    min: d.min_instances,
    max: d.max_instances,
    running: d.running_instances,
    instances: await managedIds(rpc),
    listed: await listedIds(nlb),
  };
}

beforeEach(async () => {
  const n = await h.startNlb();
  nlb = n.rpc;
  dataDir = h.tempDir();
  mod = await h.startModule({ nlb: n.target, instances: 2, dataDir });
  rpc = mod.rpc;
  await waitFor('both instances registered', async () => (await listedIds(nlb)).length === 2);
});

afterEach(() => h.closeAll());

describe('GetStatus and GetInstances', () => {
  it('report the controller and each instance, and refuse unknown ids and types', async () => {
    const st = await rpc('getStatus', {});
    expect(st.status).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    expect(st.details).toMatchObject({
      module_type: 'ALB',
      version: '1.0',
      desired_instances: '2',
      running_instances: '2',
      address: mod.address,
    });

    const inst = await rpc('getInstances', { moduleType: ModuleType.MODULE_TYPE_ALB });
    expect(inst.totalInstances).toBe(2);
    const ids = inst.instances.map((i) => i.instanceId).sort();
    expect(ids).toEqual(await listedIds(nlb));
    for (const i of inst.instances) {
      expect(i.address).toBe(mod.address);
      expect(i.trafficAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(i.version).toBe('1.0');
      expect(i.metadata.pid).toBe(String(process.pid));
    }
    const one = await rpc('getStatus', { instanceId: ids[0] });
    expect(one.instance?.instanceId).toBe(ids[0]);
    expect(one.status).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    const healthy = await rpc('getInstances', { statusFilter: HealthStatus.HEALTH_STATUS_HEALTHY });
    expect(healthy.totalInstances).toBe(2);

    const before = await snapshot();
    const unknown = await rejectionOf(rpc('getStatus', { instanceId: 'alb-1.0-99-ffff' }));
    expect(unknown.code).toBe(grpcStatus.NOT_FOUND);
    expect(unknown.details).toContain('alb-1.0-99-ffff is not managed');
    const wrongType = await rejectionOf(rpc('getInstances', { moduleType: ModuleType.MODULE_TYPE_DBLB }));
    expect(wrongType.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(wrongType.details).toContain('serves ALB, not DBLB');
    const badFilter = await rejectionOf(rpc('getInstances', { statusFilter: 42 as HealthStatus }));
    expect(badFilter.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(await snapshot()).toEqual(before);
  });
});

describe('Scale', () => {
  it('changes the instance count (the NLB follows) and refuses bad bounds without changing anything', async () => {
    const up = await rpc('scale', { desiredInstances: 3, immediate: true });
    expect(up).toMatchObject({ success: true, currentInstances: 3, desiredInstances: 3 });
    await waitFor('3 instances at the NLB', async () => (await listedIds(nlb)).length === 3);

    const before = await snapshot();
    const minOverMax = await rpc('scale', {
      desiredInstances: 2,
      config: { minInstances: 5, maxInstances: 2, targetCpuPercent: 70 },
    });
    expect(minOverMax.success).toBe(false);
    expect(minOverMax.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(minOverMax.message).toContain('min_instances 5 exceeds config.max_instances 2');
    const overMax = await rpc('scale', { desiredInstances: 17 });
    expect(overMax.success).toBe(false);
    expect(overMax.message).toContain('outside the bounds 0-16');
    const negative = await rpc('scale', { desiredInstances: -1 });
    expect(negative.success).toBe(false);
    const unknown = await rpc('scale', { instanceId: 'nope', desiredInstances: 1 });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    expect(await snapshot()).toEqual(before);

    const down = await rpc('scale', { desiredInstances: 1, immediate: true });
    expect(down).toMatchObject({ success: true, desiredInstances: 1 });
    await waitFor('1 instance at the NLB', async () => (await listedIds(nlb)).length === 1);
    expect(await managedIds(rpc)).toEqual(await listedIds(nlb));
  });
});

describe('Drain', () => {
  it('drains one instance (the NLB stops routing to it) and refuses unknown ids and bad timeouts', async () => {
    const [first, second] = await managedIds(rpc);
    const before = await snapshot();
    const unknown = await rpc('drain', { instanceId: 'alb-9.9-1-0000', timeoutSeconds: 1 });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    const badTimeout = await rpc('drain', { instanceId: first, timeoutSeconds: -1 });
    expect(badTimeout.success).toBe(false);
    expect(badTimeout.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(badTimeout.message).toContain('timeout_seconds -1 is out of range');
    expect(await snapshot()).toEqual(before);
    const stillServing = await rpc('getInstances', {});
    expect(stillServing.instances.every((i) => !i.draining)).toBe(true);

    const r = await rpc('drain', { instanceId: first, timeoutSeconds: 2 });
    expect(r).toMatchObject({ success: true, instancesDrained: 1, connectionsRemaining: 0 });
    // Draining at the NLB (STOPPING, not routable) or already removed once it had no connections.
    await waitFor('the NLB to stop routing to the drained instance', async () => {
      const m = (await nlb('listModules', {})).modules.find((x) => x.instanceId === first);
      return !m || m.draining || m.healthStatus === HealthStatus.HEALTH_STATUS_STOPPING;
    });
    const inst = await rpc('getInstances', {});
    expect(inst.instances.find((i) => i.instanceId === first)?.draining).toBe(true);
    expect(inst.instances.find((i) => i.instanceId === second)?.draining).toBe(false);
    expect((await listedIds(nlb)).includes(second)).toBe(true);
  });
});

describe('Reload', () => {
  it('re-reads durable state and pushes it; an invalid stored config is refused and the running one kept', async () => {
    // Any change writes the state file; then edit it behind the controller's back.
    const seed = await rpc('setRateLimit', {
      limit: { limitId: 'seed', requestsPerSecond: 9, enabled: true },
    });
    expect(seed.success).toBe(true);
    const file = (await rpc('getStatus', {})).details.state;
    expect(file.startsWith(dataDir)).toBe(true);
    const stored = JSON.parse(readFileSync(file, 'utf8'));
    stored.state.rateLimits = [
      {
        limitId: 'from-disk',
        target: '*',
        requestsPerSecond: 5,
        requestsPerMinute: 0,
        requestsPerHour: 0,
        burstSize: 0,
        enabled: true,
        metadata: {},
      },
    ];
    writeFileSync(file, JSON.stringify(stored));
    const ok = await rpc('reload', { graceful: true });
    expect(ok.success).toBe(true);
    expect(ok.message).toContain('pushed to 2 instance(s)');
    expect((await rpc('getRateLimits', {})).limits.map((l) => l.limitId)).toEqual(['from-disk']);

    const before = await snapshot();
    const configBefore = await rpc('getConfig', {});
    const unknown = await rpc('reload', { instanceId: 'nope' });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    const badTimeout = await rpc('reload', { timeoutSeconds: 86_401 });
    expect(badTimeout.success).toBe(false);
    expect(badTimeout.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);

    stored.state.config = { backends: 'not a list' };
    stored.state.rateLimits = [];
    writeFileSync(file, JSON.stringify(stored));
    const bad = await rpc('reload', {});
    expect(bad.success).toBe(false);
    expect(bad.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(bad.message).toContain('stored config is invalid, kept the running one');
    expect(await snapshot()).toEqual(before);
    expect(await rpc('getConfig', {})).toEqual(configBefore);
    expect((await rpc('getRateLimits', {})).limits.map((l) => l.limitId)).toEqual(['from-disk']);
  });
});

describe('Shutdown', () => {
  it('stops one instance and lowers the desired count; refuses unknown ids and going below min_instances', async () => {
    const [first, second] = await managedIds(rpc);
    const before = await snapshot();
    const unknown = await rpc('shutdown', { instanceId: 'nope', graceful: true });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.code).toBe(StatusCode.STATUS_CODE_NOT_FOUND);
    const badTimeout = await rpc('shutdown', { instanceId: first, timeoutSeconds: -5 });
    expect(badTimeout.success).toBe(false);
    expect(badTimeout.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(await snapshot()).toEqual(before);

    const r = await rpc('shutdown', { instanceId: first, graceful: true, timeoutSeconds: 2 });
    expect(r.success).toBe(true);
    expect(r.message).toContain('desired count is now 1');
    expect(await managedIds(rpc)).toEqual([second]);
    await waitFor('the NLB to forget the stopped instance', async () => {
      const ids = await listedIds(nlb);
      return ids.length === 1 && ids[0] === second;
    });
    expect((await rpc('getStatus', {})).details.desired_instances).toBe('1');

    const bounds = await rpc('scale', { config: { minInstances: 1, maxInstances: 4, targetCpuPercent: 70 } });
    expect(bounds.success).toBe(true);
    const atMin = await snapshot();
    const belowMin = await rpc('shutdown', { instanceId: second, graceful: true });
    expect(belowMin.success).toBe(false);
    expect(belowMin.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
    expect(belowMin.message).toContain('would go below min_instances 1');
    expect(await snapshot()).toEqual(atMin);
  });

  it('of the whole controller stops every instance, which leave the NLB', async () => {
    const r = await rpc('shutdown', { graceful: true, timeoutSeconds: 2 });
    expect(r.success).toBe(true);
    expect(r.message).toContain('shutting down 2 instance(s)');
    let done = false;
    void mod.handle.done.then(() => (done = true));
    await waitFor('the controller to finish', () => done, 8_000);
    await waitFor('the NLB to list no instance', async () => (await listedIds(nlb)).length === 0);
  });
});
