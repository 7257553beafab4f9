/**
 * Health, status and config RPCs over real gRPC on loopback: CheckHealth (fanning out to fake
 * module controllers' HealthCheck), GetNLBStatus, UpdateNLBConfig and GetNLBConfig.
 */
import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StatusCode } from '../../proto/gen/marchproxy/types.js';
import { createMemoryStatePort } from '../../services/nlb/store.js';
import { createManualClock, type ManualClock } from '../../services/shared/clock.js';
import { VERSION } from '../../services/shared/version.js';
import {
  createNlbHarness,
  freePort,
  HealthStatus,
  instance,
  ModuleType,
  rawCall,
  register,
  rejectionOf,
  route,
  type FakeModule,
  type Rpc,
  type TestNlb,
} from './nlb-fixture.js';

const h = createNlbHarness();
afterEach(() => h.closeAll());

const SECTIONS = [
  'listeners',
  'heartbeat',
  'scaling',
  'rollout',
  'routing',
  'metrics',
  'auth',
  'limits',
  'server',
];
/** A truncated protobuf: field 1 as a 5-byte string with no bytes after it. */
const TRUNCATED = Buffer.from([0x0a, 0x05]);
const yaml = (configType: string, text: string) => ({
  config: { configType, configData: Buffer.from(text) },
});

async function configOf(rpc: Rpc, section: string): Promise<unknown> {
  const r = await rpc('getNlbConfig', { configType: section });
  return JSON.parse(Buffer.from(r.configs[0].configData).toString('utf8'));
}

describe('CheckHealth', () => {
  let nlb: TestNlb;
  let fake: FakeModule;

  beforeEach(async () => {
    fake = await h.fakeModule();
    nlb = await h.startNlb();
    await register(nlb.rpc, instance('alb-1', fake.address));
    await register(nlb.rpc, instance('db-1', fake.address, { moduleType: ModuleType.MODULE_TYPE_DBLB }));
  });

  it('passes its own checks and, with check_modules, asks every module', async () => {
    const self = await nlb.rpc('checkHealth', { deepCheck: true });
    expect(self).toMatchObject({
      status: HealthStatus.HEALTH_STATUS_HEALTHY,
      message: 'all checks passed',
      moduleHealth: {},
    });
    expect(self.checks).toMatchObject({
      state_store: 'ok (memory)',
      state_store_write: 'ok',
      registry: '2/2 instances healthy',
    });
    expect(self.checks.lease_sweeper).toMatch(/^ok/);
    expect(fake.calls.healthCheck).toEqual([]);

    const all = await nlb.rpc('checkHealth', { checkModules: true });
    expect(all.status).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    expect(all.moduleHealth).toEqual({
      'alb-1': HealthStatus.HEALTH_STATUS_HEALTHY,
      'db-1': HealthStatus.HEALTH_STATUS_HEALTHY,
    });
    expect(all.checks.modules).toBe('2/2 modules healthy');
    expect(fake.calls.healthCheck.map((c) => c.instanceId).sort()).toEqual(['alb-1', 'db-1']);
  });

  it('is DEGRADED when one module answers UNHEALTHY, UNHEALTHY when none is healthy, and changes no instance', async () => {
    fake.behaviour.health = (id) =>
      id === 'db-1'
        ? { status: HealthStatus.HEALTH_STATUS_UNHEALTHY, message: 'postgres backend not serving' }
        : { status: HealthStatus.HEALTH_STATUS_HEALTHY };
    const one = await nlb.rpc('checkHealth', { checkModules: true });
    expect(one.status).toBe(HealthStatus.HEALTH_STATUS_DEGRADED);
    expect(one.moduleHealth['db-1']).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
    expect(one.checks).toMatchObject({
      'module:db-1': 'postgres backend not serving',
      modules: '1/2 modules healthy',
    });
    expect(one.message).toContain('module:db-1: postgres backend not serving');

    fake.behaviour.health = () => ({ status: HealthStatus.HEALTH_STATUS_UNHEALTHY, message: 'down' });
    expect((await nlb.rpc('checkHealth', { checkModules: true })).status).toBe(
      HealthStatus.HEALTH_STATUS_UNHEALTHY,
    );
    // A health check reports; it does not take instances out of the registry's routing set.
    const listed = await nlb.rpc('listModules', {});
    expect(listed.modules.map((m) => m.healthStatus)).toEqual([
      HealthStatus.HEALTH_STATUS_HEALTHY,
      HealthStatus.HEALTH_STATUS_HEALTHY,
    ]);
  });

  it('names a module controller that does not answer', async () => {
    const port = await freePort();
    await register(
      nlb.rpc,
      instance('ai-1', `127.0.0.1:${port}`, { moduleType: ModuleType.MODULE_TYPE_AILB }),
    );
    const r = await nlb.rpc('checkHealth', { checkModules: true });
    expect(r.status).toBe(HealthStatus.HEALTH_STATUS_DEGRADED);
    expect(r.moduleHealth['ai-1']).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
    expect(r.checks['module:ai-1']).toContain(`no answer from 127.0.0.1:${port}`);
  });

  it('rejects a malformed request and changes nothing', async () => {
    const e = await rejectionOf(rawCall(nlb.client, 'CheckHealth', TRUNCATED));
    expect(e.code).toBe(status.INTERNAL);
    expect(e.details).toMatch(/deserializ/i);
    expect(fake.calls.healthCheck).toEqual([]);
    expect((await nlb.rpc('listModules', {})).totalModules).toBe(2);
  });
});

describe('GetNLBStatus', () => {
  it('reports version, counts by type, deployments and (optionally) the instances', async () => {
    const fake = await h.fakeModule();
    const { rpc } = await h.startNlb();
    await register(rpc, instance('alb-1', fake.address));
    await register(rpc, instance('alb-2', fake.address));
    await register(
      rpc,
      instance('db-1', fake.address, { moduleType: ModuleType.MODULE_TYPE_DBLB, version: '3.1' }),
    );
    await rpc('updateRouting', { routes: [route({ routeId: 'web', moduleType: 'ALB' })] });
    await rpc('heartbeat', { instanceId: 'alb-1' });

    const s = await rpc('getNlbStatus', {});
    expect(s).toMatchObject({
      status: HealthStatus.HEALTH_STATUS_HEALTHY,
      version: VERSION,
      registeredModules: 3,
      modulesByType: { ALB: 2, DBLB: 1 },
      modules: [],
    });
    expect(s.startedAt).toBeInstanceOf(Date);
    expect(s.details).toMatchObject({
      healthy_instances: '3',
      routes: '1',
      heartbeats_total: '1',
      heartbeat_interval_seconds: '10',
      'deployment.ALB': 'STABLE 1.0=100',
      'deployment.DBLB': 'STABLE 3.1=100',
    });
    const withModules = await rpc('getNlbStatus', { includeModules: true });
    expect(withModules.modules.map((m) => m.instanceId)).toEqual(['alb-1', 'alb-2', 'db-1']);
  });

  it('rejects a malformed request', async () => {
    const { client, rpc } = await h.startNlb();
    const e = await rejectionOf(rawCall(client, 'GetNLBStatus', TRUNCATED));
    expect(e.code).toBe(status.INTERNAL);
    expect((await rpc('getNlbStatus', {})).registeredModules).toBe(0);
  });
});

describe('UpdateNLBConfig and GetNLBConfig', () => {
  let rpc: Rpc;
  let clock: ManualClock;

  beforeEach(async () => {
    clock = createManualClock();
    ({ rpc } = await h.startNlb({ clock }));
  });

  it('GetNLBConfig returns every section as JSON with its checksum, or one section by name', async () => {
    const all = await rpc('getNlbConfig', {});
    expect(all.configs.map((c) => c.configType)).toEqual(SECTIONS);
    for (const c of all.configs) {
      expect(c.checksum).toBe(createHash('sha256').update(c.configData).digest('hex'));
    }
    expect(await configOf(rpc, 'HEARTBEAT')).toEqual({
      intervalSeconds: 10,
      missedHeartbeats: 3,
      evictAfterSeconds: 300,
      drainTimeoutSeconds: 30,
    });
    const bad = await rejectionOf(rpc('getNlbConfig', { configType: 'nope' }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toBe(`unknown config_type "nope"; use one of ${SECTIONS.join(', ')}`);
  });

  it('applies the heartbeat section live: GetNLBConfig shows it and leases follow it', async () => {
    const fake = await h.fakeModule();
    const dry = await rpc('updateNlbConfig', {
      ...yaml('heartbeat', 'intervalSeconds: 2\nmissedHeartbeats: 2\nevictAfterSeconds: 60'),
      validateOnly: true,
    });
    expect(dry).toMatchObject({
      success: true,
      validationPassed: true,
      message: 'section heartbeat is valid; nothing applied (validate_only)',
    });
    expect(await configOf(rpc, 'heartbeat')).toMatchObject({ intervalSeconds: 10 });

    const r = await rpc(
      'updateNlbConfig',
      yaml('heartbeat', 'intervalSeconds: 2\nmissedHeartbeats: 2\nevictAfterSeconds: 60'),
    );
    expect(r).toMatchObject({
      success: true,
      validationPassed: true,
      requiresRestart: false,
      message: 'section heartbeat applied',
      validationErrors: [],
    });
    expect(await configOf(rpc, 'heartbeat')).toEqual({
      intervalSeconds: 2,
      missedHeartbeats: 2,
      evictAfterSeconds: 60,
      drainTimeoutSeconds: 30,
    });
    expect((await rpc('getNlbStatus', {})).details.heartbeat_interval_seconds).toBe('2');

    await register(rpc, instance('alb-1', fake.address));
    clock.advance(3_000);
    expect((await rpc('listModules', {})).modules[0].healthStatus).toBe(HealthStatus.HEALTH_STATUS_HEALTHY);
    clock.advance(2_000); // 5 s > 2 missed × 2 s
    expect((await rpc('listModules', {})).modules[0].healthStatus).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
  });

  it('saves a server section (JSON, with checksum) and says it needs a restart', async () => {
    const body = Buffer.from(JSON.stringify({ maxMessageBytes: 1048576 }));
    const r = await rpc('updateNlbConfig', {
      config: {
        configType: 'server',
        configData: body,
        checksum: createHash('sha256').update(body).digest('hex'),
      },
    });
    expect(r).toMatchObject({
      success: true,
      requiresRestart: true,
      message: 'section server saved; restart the NLB to apply it',
    });
    expect(await configOf(rpc, 'server')).toMatchObject({ maxMessageBytes: 1048576 });
  });

  it('refuses malformed YAML, unknown sections and fields, bad values and checksums, and changes nothing', async () => {
    const before = await rpc('getNlbConfig', {});
    const cases: Array<[ReturnType<typeof yaml> | { config?: undefined }, RegExp, string[]?]> = [
      [yaml('heartbeat', 'intervalSeconds: [1, 2'), /^config_data is neither JSON nor YAML: /],
      [
        yaml('heartbeats', 'intervalSeconds: 1'),
        /^unknown config_type "heartbeats"; use one of listeners, heartbeat, .*did you mean "?heartbeat"?/,
      ],
      [
        yaml('heartbeat', 'interval: 1'),
        /^invalid config section heartbeat: heartbeat: unknown field "interval"$/,
      ],
      [
        yaml('heartbeat', 'intervalSeconds: 0\nmissedHeartbeats: 2.5'),
        /^invalid config section heartbeat: 2 problems: heartbeat\.intervalSeconds: .*; heartbeat\.missedHeartbeats: /,
        ['heartbeat.intervalSeconds', 'heartbeat.missedHeartbeats'],
      ],
      [yaml('rollout', 'steps: [50, 25]'), /steps must increase and end at 100/],
      [
        yaml('scaling', 'defaults: {minInstances: 5, maxInstances: 2}'),
        /minInstances must not exceed maxInstances/,
      ],
      [{ config: undefined }, /^config\.config_type is required: one of listeners, heartbeat/],
    ];
    for (const [req, message, fields] of cases) {
      const r = await rpc('updateNlbConfig', req);
      expect(r.success, String(message)).toBe(false);
      expect(r.validationPassed).toBe(false);
      expect(r.requiresRestart).toBe(false);
      expect(r.error?.code).toBe(StatusCode.STATUS_CODE_INVALID_ARGUMENT);
      expect(r.message).toMatch(message);
      for (const f of fields ?? []) expect(r.validationErrors.some((e) => e.startsWith(f))).toBe(true);
    }
    const sum = await rpc('updateNlbConfig', {
      config: { configType: 'heartbeat', configData: Buffer.from('intervalSeconds: 1'), checksum: 'abc' },
    });
    expect(sum.message).toMatch(/^checksum abc does not match the sha256 of config_data/);

    expect(await rpc('getNlbConfig', {})).toMatchObject({ configs: before.configs });
  });

  it('reports a failed save as UNAVAILABLE, keeps the old config, and CheckHealth/GetNLBStatus turn DEGRADED', async () => {
    const state = createMemoryStatePort();
    const { rpc: failing } = await h.startNlb({ state });
    state.fail = new Error('disk full');
    const r = await failing('updateNlbConfig', yaml('heartbeat', 'intervalSeconds: 3'));
    expect(r).toMatchObject({ success: false, error: { code: StatusCode.STATUS_CODE_UNAVAILABLE } });
    expect(r.message).toBe('could not save NLB state: disk full; the change was not applied');
    expect(await configOf(failing, 'heartbeat')).toMatchObject({ intervalSeconds: 10 });
    expect((await failing('getNlbStatus', {})).status).toBe(HealthStatus.HEALTH_STATUS_DEGRADED);
    const health = await failing('checkHealth', {});
    expect(health.status).toBe(HealthStatus.HEALTH_STATUS_DEGRADED);
    expect(health.checks.state_store).toBe('last save failed: disk full');
  });
});
