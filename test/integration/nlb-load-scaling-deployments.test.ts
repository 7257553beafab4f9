/**
 * Load, scaling and deployment RPCs over real gRPC on loopback: RebalanceLoad,
 * GetLoadDistribution, TriggerScaling (reaching a fake controller's Scale) and UpdateDeployment.
 */
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RolloutPhase, StatusCode } from '../../proto/gen/marchproxy/types.js';
import { createManualClock, type ManualClock } from '../../services/shared/clock.js';
import {
  createNlbHarness,
  freePort,
  DeploymentAction,
  instance,
  ModuleType,
  Protocol,
  register,
  rejectionOf,
  route,
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
  await register(rpc, instance('alb-a', fake.address, { maxConnections: 100 }));
  await register(rpc, instance('alb-b', fake.address));
});
afterEach(() => h.closeAll());

const heartbeat = (id: string, stats: Record<string, unknown>) =>
  rpc('heartbeat', { instanceId: id, currentStats: stats });
const ALB = ModuleType.MODULE_TYPE_ALB;

describe('RebalanceLoad', () => {
  beforeEach(async () => {
    await rpc('updateRouting', { routes: [route({ routeId: 'web', moduleType: 'ALB' })] });
  });
  const targets = async (n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++)
      out.push(
        (
          await rpc('routeRequest', {
            route: { protocol: Protocol.PROTOCOL_HTTP, destinationPattern: 'x.example.com' },
          })
        ).targetInstanceId,
      );
    return out;
  };

  it('least-conn: counts the load instances report, so new traffic goes to the lighter one', async () => {
    await heartbeat('alb-a', { activeConnections: 30 });
    await heartbeat('alb-b', { activeConnections: 10 });
    expect(await targets(3)).toEqual(['alb-a', 'alb-a', 'alb-a']); // the NLB routed nothing yet: a tie, lowest id
    const r = await rpc('rebalanceLoad', { strategy: 'least-conn' });
    expect(r).toMatchObject({
      success: true,
      message: 'rebalanced 2 instances with least-conn (balance score was 50)',
      previousDistribution: { 'alb-a': 30, 'alb-b': 10 },
      newDistribution: { 'alb-a': 20, 'alb-b': 20 },
    });
    expect(await targets(3)).toEqual(['alb-b', 'alb-b', 'alb-b']);
  });

  it('round-robin alternates; a balanced pool is left alone unless forced', async () => {
    await heartbeat('alb-a', { activeConnections: 10 });
    await heartbeat('alb-b', { activeConnections: 10 });
    const idle = await rpc('rebalanceLoad', {});
    expect(idle).toMatchObject({
      success: true,
      message: 'load is already balanced (score 100); pass force to recompute anyway',
    });
    const rr = await rpc('rebalanceLoad', { strategy: 'round-robin', targetInstances: ['alb-a', 'alb-b'] });
    expect(rr.message).toBe('rebalanced 2 instances with round-robin (balance score was 100)');
    expect(await targets(4)).toEqual(['alb-a', 'alb-b', 'alb-a', 'alb-b']);
  });

  it('refuses an unknown strategy or target instance and keeps the current selection', async () => {
    await heartbeat('alb-a', { activeConnections: 30 });
    const bad = await rpc('rebalanceLoad', { strategy: 'random', force: true });
    expect(bad).toMatchObject({
      success: false,
      error: { code: StatusCode.STATUS_CODE_INVALID_ARGUMENT },
      previousDistribution: {},
      newDistribution: {},
    });
    expect(bad.message).toBe('strategy "random" is not supported; use least-conn or round-robin');
    const ghost = await rpc('rebalanceLoad', { force: true, targetInstances: ['alb-a', 'ghost'] });
    expect(ghost).toMatchObject({
      success: false,
      error: { code: StatusCode.STATUS_CODE_NOT_FOUND },
      message: 'target_instances not registered: ghost',
    });
    expect(await targets(3)).toEqual(['alb-a', 'alb-a', 'alb-a']); // no offsets were set, no round-robin
  });
});

describe('GetLoadDistribution', () => {
  it('reports each instance’s load and the balance score per type and version', async () => {
    await register(rpc, instance('db-1', fake.address, { moduleType: ModuleType.MODULE_TYPE_DBLB }));
    await heartbeat('alb-a', {
      activeConnections: 30,
      cpuUsagePercent: 45,
      memoryUsageMb: 512,
      avgLatencyMs: 12,
      totalRequests: 100,
      customStats: { queue_depth: '4' },
    });
    await heartbeat('alb-b', { activeConnections: 10, cpuUsagePercent: 5, totalRequests: 50 });
    clock.advance(10_000);
    await heartbeat('alb-a', {
      activeConnections: 30,
      cpuUsagePercent: 45,
      memoryUsageMb: 512,
      avgLatencyMs: 12,
      totalRequests: 300,
      customStats: { queue_depth: '4' },
    });
    await heartbeat('alb-b', { activeConnections: 10, cpuUsagePercent: 5, totalRequests: 50 });

    const albs = await rpc('getLoadDistribution', { moduleTypeFilter: ALB });
    expect(albs.balanceScore).toBe(50);
    expect(albs.measuredAt?.getTime()).toBe(clock.now());
    expect(albs.distribution['alb-a']).toEqual({
      instanceId: 'alb-a',
      activeConnections: 30,
      cpuUsagePercent: 45,
      memoryUsageMb: 512,
      requestsPerSecond: 20,
      avgLatencyMs: 12,
      queueDepth: 4,
      loadScore: 45, // max(cpu 45 %, 30 of 100 connections)
    });
    expect(albs.distribution['alb-b']).toMatchObject({
      activeConnections: 10,
      requestsPerSecond: 0,
      loadScore: 5,
    });
    const all = await rpc('getLoadDistribution', {});
    expect(Object.keys(all.distribution).sort()).toEqual(['alb-a', 'alb-b', 'db-1']);
    expect(all.balanceScore).toBeCloseTo(66.67, 2); // ALB@1.0 at 50 (2 instances), DBLB@1.0 at 100 (1 instance)
  });

  it('refuses a filter that is not a module type', async () => {
    const nlbType = await rejectionOf(
      rpc('getLoadDistribution', { moduleTypeFilter: ModuleType.MODULE_TYPE_NLB }),
    );
    expect(nlbType.code).toBe(status.INVALID_ARGUMENT);
    expect(nlbType.details).toBe(
      'module_type_filter MODULE_TYPE_NLB is not a module type: use ALB, DBLB, AILB or RTMP',
    );
    const unknown = await rejectionOf(rpc('getLoadDistribution', { moduleTypeFilter: 99 as ModuleType }));
    expect(unknown.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe('TriggerScaling', () => {
  it('reaches the controller’s Scale with the desired count and the policy', async () => {
    fake.behaviour.scale = (req) => ({
      success: true,
      message: `2 → ${req.desiredInstances}`,
      currentInstances: 2,
      desiredInstances: req.desiredInstances,
    });
    const to = await rpc('triggerScaling', {
      instanceId: 'alb-a',
      targetInstances: 5,
      config: { minInstances: 1, maxInstances: 8, targetCpuPercent: 60 },
    });
    expect(to).toMatchObject({
      success: true,
      scalingAction: 'scale-to',
      currentInstances: 2,
      targetInstances: 5,
      message: `ALB 1.0 controller ${fake.address}: 2 → 5`,
    });
    expect(fake.calls.scale[0]).toMatchObject({
      instanceId: 'alb-a',
      desiredInstances: 5,
      immediate: true,
      config: { minInstances: 1, maxInstances: 8, targetCpuPercent: 60 },
    });

    const up = await rpc('triggerScaling', { moduleType: ALB, scalingAction: 'scale-up' });
    expect(up).toMatchObject({ success: true, scalingAction: 'scale-up', targetInstances: 3 });
    const down = await rpc('triggerScaling', { moduleType: ALB, scalingAction: 'scale-down' });
    expect(down).toMatchObject({ success: true, targetInstances: 1 });
    expect(fake.calls.scale.map((c) => c.desiredInstances)).toEqual([5, 3, 1]);
  });

  it('reports a controller that refuses or does not answer inside the envelope', async () => {
    fake.behaviour.scale = () => ({ success: false, message: 'already at max_instances 2' });
    const refused = await rpc('triggerScaling', { instanceId: 'alb-a', scalingAction: 'scale-up' });
    expect(refused).toMatchObject({ success: false, scalingAction: '' });
    expect(refused.error?.details.kind).toBe('failed_precondition');
    expect(refused.message).toBe(
      `ALB 1.0 controller ${fake.address} refused to scale: already at max_instances 2`,
    );

    const port = await freePort();
    await register(rpc, instance('ai-1', `127.0.0.1:${port}`, { moduleType: ModuleType.MODULE_TYPE_AILB }));
    const gone = await rpc('triggerScaling', { instanceId: 'ai-1', scalingAction: 'scale-up' });
    expect(gone).toMatchObject({ success: false, error: { code: StatusCode.STATUS_CODE_UNAVAILABLE } });
    expect(gone.message).toContain(`AILB 1.0 controller 127.0.0.1:${port} did not answer`);
  });

  it('refuses bad requests before calling any controller', async () => {
    const cases: Array<[Parameters<Rpc>[1], RegExp, StatusCode]> = [
      [
        { instanceId: 'alb-a', config: { minInstances: 5, maxInstances: 2 } },
        /config\.min_instances 5 exceeds config\.max_instances 2/,
        StatusCode.STATUS_CODE_INVALID_ARGUMENT,
      ],
      [
        { instanceId: 'alb-a', scalingAction: 'sideways' },
        /scaling_action "sideways" is not supported; use scale-up, scale-down or auto/,
        StatusCode.STATUS_CODE_INVALID_ARGUMENT,
      ],
      [
        { instanceId: 'alb-a', targetInstances: -1 },
        /target_instances -1 is out of range: use 0 to 10000/,
        StatusCode.STATUS_CODE_INVALID_ARGUMENT,
      ],
      [
        { scalingAction: 'scale-up' },
        /name what to scale: instance_id \(its controller\) or module_type/,
        StatusCode.STATUS_CODE_INVALID_ARGUMENT,
      ],
      [
        { instanceId: 'ghost', scalingAction: 'scale-up' },
        /instance ghost is not registered/,
        StatusCode.STATUS_CODE_NOT_FOUND,
      ],
      [
        { moduleType: ModuleType.MODULE_TYPE_RTMP, scalingAction: 'scale-up' },
        /no RTMP instance is registered/,
        StatusCode.STATUS_CODE_NOT_FOUND,
      ],
    ];
    for (const [req, message, code] of cases) {
      const r = await rpc('triggerScaling', req as never);
      expect(r.success, String(message)).toBe(false);
      expect(r.error?.code, String(message)).toBe(code);
      expect(r.message).toMatch(message);
    }
    expect(fake.calls.scale).toEqual([]);
  });
});

describe('UpdateDeployment', () => {
  const deploy = (action: DeploymentAction, more: Record<string, unknown> = {}) =>
    rpc('updateDeployment', { moduleType: ALB, action, ...more });
  const statusOf = async () => (await deploy(DeploymentAction.DEPLOYMENT_ACTION_STATUS)).deployment!;

  beforeEach(async () => {
    // One controller per type and version, as in production.
    const v2 = await h.fakeModule();
    await register(rpc, instance('alb-v2', v2.address, { version: '2.0' }));
  });

  it('promotes in steps, pauses, resumes and rolls back to the stable version', async () => {
    expect(await statusOf()).toMatchObject({
      versionWeights: { '1.0': 100, '2.0': 0 },
      stableVersion: '1.0',
      phase: RolloutPhase.ROLLOUT_PHASE_STABLE,
    });

    const p = await deploy(DeploymentAction.DEPLOYMENT_ACTION_PROMOTE, {
      version: '2.0',
      requestedBy: 'it-test',
    });
    expect(p).toMatchObject({ success: true, message: 'ALB 2.0: rollout of 2.0 started at 5 % by it-test' });
    expect(p.deployment).toMatchObject({
      versionWeights: { '1.0': 95, '2.0': 5 },
      stableVersion: '1.0',
      targetVersion: '2.0',
      phase: RolloutPhase.ROLLOUT_PHASE_PROGRESSING,
      steps: [5, 25, 50, 100],
      stepIndex: 0,
      config: {
        blueVersion: '1.0',
        greenVersion: '2.0',
        blueWeight: 95,
        greenWeight: 5,
        canaryEnabled: true,
        canaryPercent: 5,
      },
    });
    const paused = await deploy(DeploymentAction.DEPLOYMENT_ACTION_PAUSE);
    expect(paused).toMatchObject({
      success: true,
      message: 'ALB rollout of 2.0 paused at 5 %',
      deployment: { phase: RolloutPhase.ROLLOUT_PHASE_PAUSED },
    });
    const resumed = await deploy(DeploymentAction.DEPLOYMENT_ACTION_RESUME, { version: '2.0' });
    expect(resumed.deployment?.phase).toBe(RolloutPhase.ROLLOUT_PHASE_PROGRESSING);
    const back = await deploy(DeploymentAction.DEPLOYMENT_ACTION_ROLLBACK, { reason: 'p99 too high' });
    expect(back).toMatchObject({ success: true, message: 'ALB rolled back from 2.0 to 1.0' });
    expect(back.deployment).toMatchObject({
      versionWeights: { '1.0': 100, '2.0': 0 },
      stableVersion: '1.0',
      targetVersion: '',
      phase: RolloutPhase.ROLLOUT_PHASE_ROLLED_BACK,
      reason: 'p99 too high',
    });
    expect(await statusOf()).toEqual(back.deployment);
  });

  it('promotes at once with immediate, or by promotion_rate; validate_only changes nothing', async () => {
    const rate = await deploy(DeploymentAction.DEPLOYMENT_ACTION_PROMOTE, {
      version: '2.0',
      promotionRate: 30,
      validateOnly: true,
    });
    expect(rate.deployment).toMatchObject({
      steps: [30, 60, 90, 100],
      versionWeights: { '2.0': 30, '1.0': 70 },
    });
    expect((await statusOf()).phase).toBe(RolloutPhase.ROLLOUT_PHASE_STABLE);
    const now = await deploy(DeploymentAction.DEPLOYMENT_ACTION_PROMOTE, { version: '2.0', immediate: true });
    expect(now.deployment).toMatchObject({
      versionWeights: { '2.0': 100, '1.0': 0 },
      stableVersion: '2.0',
      phase: RolloutPhase.ROLLOUT_PHASE_PROMOTED,
    });
    expect(
      (await rpc('listModules', { query: { sortBy: 'instance_id' } })).modules.map((m) => [
        m.instanceId,
        m.trafficWeight,
      ]),
    ).toEqual([
      ['alb-a', 0],
      ['alb-b', 0],
      ['alb-v2', 100],
    ]);
  });

  it('refuses bad weights, unknown versions and impossible transitions, leaving the deployment as it was', async () => {
    const before = await statusOf();
    const cases: Array<[DeploymentAction, Record<string, unknown>, RegExp, string]> = [
      [
        DeploymentAction.DEPLOYMENT_ACTION_SET_WEIGHT,
        { version: '2.0', weight: 101 },
        /weight 101 is out of range: use 0 to 100/,
        'invalid_argument',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_SET_WEIGHT,
        { version: '9.9', weight: 10 },
        /ALB version 9\.9 does not exist: no instance of it is registered \(known: 1\.0, 2\.0\)/,
        'not_found',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_SET_WEIGHT,
        { version: 'bad version', weight: 10 },
        /version "bad version" must be 1-64 characters/,
        'invalid_argument',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_PROMOTE,
        { version: '2.0', promotionRate: 150 },
        /promotion_rate 150 is out of range/,
        'invalid_argument',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_PROMOTE,
        { version: '1.0' },
        /1\.0 is already the stable version with 100 % of traffic/,
        'failed_precondition',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_PAUSE,
        {},
        /ALB has no progressing rollout to pause \(phase STABLE\)/,
        'failed_precondition',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_RESUME,
        {},
        /ALB has no paused rollout to resume/,
        'failed_precondition',
      ],
      [
        DeploymentAction.DEPLOYMENT_ACTION_UNSPECIFIED,
        {},
        /action is required: STATUS, SET_WEIGHT, PROMOTE, ROLLBACK, PAUSE or RESUME/,
        'invalid_argument',
      ],
    ];
    for (const [action, more, message, kind] of cases) {
      const r = await deploy(action, more);
      expect(r.success, String(message)).toBe(false);
      expect(r.message).toMatch(message);
      expect(r.error?.details.kind).toBe(kind);
      expect(r.deployment).toBeUndefined();
    }
    const noType = await rpc('updateDeployment', { action: DeploymentAction.DEPLOYMENT_ACTION_STATUS });
    expect(noType.message).toBe('module_type is required: ALB, DBLB, AILB or RTMP');
    const none = await rpc('updateDeployment', {
      moduleType: ModuleType.MODULE_TYPE_RTMP,
      action: DeploymentAction.DEPLOYMENT_ACTION_STATUS,
    });
    expect(none).toMatchObject({ success: false, error: { code: StatusCode.STATUS_CODE_NOT_FOUND } });
    expect(none.message).toBe('module type RTMP has no deployment: no instance of it has registered yet');
    expect(await statusOf()).toEqual(before);
  });
});
