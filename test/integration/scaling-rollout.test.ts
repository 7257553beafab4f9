/**
 * Autoscaling and rollouts end to end: a real NLB (startNlb) and real ALB controllers with
 * `inprocess` instances whose heartbeat stats the tests rewrite (statsFilter), on real time with
 * short intervals and bounded polls.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StatsSnapshot } from '../../services/modules/runtime/stats.js';
import {
  createScalingHarness,
  DeploymentAction,
  listedCount,
  ModuleType,
  RolloutPhase,
  updateSection,
  waitFor,
  type NlbRpc,
  type TestController,
} from './scaling-rollout-fixture.js';

const h = createScalingHarness();
afterEach(() => h.closeAll());

/** The ALB deployment as UpdateDeployment STATUS reports it. */
async function albDeployment(rpc: NlbRpc) {
  const r = await rpc('updateDeployment', {
    moduleType: ModuleType.MODULE_TYPE_ALB,
    action: DeploymentAction.DEPLOYMENT_ACTION_STATUS,
  });
  return r.deployment!;
}

/**
 * Request counters that grow with real time: `rps` requests per second per instance since the
 * test started, of which `failRatio` failed, with the given p99.
 */
function traffic(rps: number, failRatio: number, p99LatencyMs: number) {
  const t0 = Date.now();
  return (_id: string, m: StatsSnapshot): StatsSnapshot => {
    const total = Math.floor(((Date.now() - t0) / 1000) * rps);
    const failed = Math.floor(total * failRatio);
    return {
      ...m,
      totalRequests: total,
      successfulRequests: total - failed,
      failedRequests: failed,
      p99LatencyMs,
      cpuUsagePercent: 5,
      activeConnections: 0,
    };
  };
}

/** Rollouts with short steps; autoscaling off so that only the rollout changes anything. */
async function fastRollouts(rpc: NlbRpc) {
  await updateSection(rpc, 'scaling', {
    evaluationIntervalSeconds: 3600,
    defaults: { autoScalingEnabled: false },
  });
  await updateSection(rpc, 'rollout', {
    stepIntervalSeconds: 1,
    minRequests: 20,
    minSuccessRate: 0.99,
    progressDeadlineSeconds: 120,
  });
}

describe('autoscaling through heartbeat stats', () => {
  it('scales a controller from 2 to 5 under load and back to 2 after the stabilization window', async () => {
    const nlb = await h.startNlb(0.5);
    await updateSection(nlb.rpc, 'scaling', {
      evaluationIntervalSeconds: 1,
      stabilizationWindowSeconds: 3,
      tolerance: 0.1,
      defaults: {
        minInstances: 2,
        maxInstances: 8,
        targetCpuPercent: 50,
        targetMemoryPercent: 0,
        targetConnections: 0,
        cooldownSeconds: 2,
        autoScalingEnabled: true,
      },
    });
    // A fixed total CPU demand shared by the controller's live instances: 250 % = 5 instances at 50 %.
    let offered = 40;
    // Instances may heartbeat before startAlb resolves: the filter reads the controller from here.
    const started: { ctl?: TestController } = {};
    const ctl = await h.startAlb({
      nlb: nlb.target,
      version: '1.0',
      instances: 2,
      statsFilter: (_id, m) => ({
        ...m,
        cpuUsagePercent: offered / Math.max(1, started.ctl?.live() ?? 1),
        activeConnections: 0,
      }),
    });
    started.ctl = ctl;
    await waitFor('2 instances listed', async () => (await listedCount(nlb.rpc, '1.0')) === 2);

    offered = 250;
    await waitFor('the controller to run 5 instances', () => ctl.live() === 5);
    await waitFor('the NLB to list 5 instances', async () => (await listedCount(nlb.rpc, '1.0')) === 5);
    const ups = nlb.handle.autoscaler.events.filter((e) => e.action === 'scale-up');
    expect(ups.length).toBeGreaterThan(0);
    expect(ups.every((e) => e.ok && e.metric === 'cpu' && e.desired <= 5)).toBe(true);

    offered = 40;
    const droppedAt = Date.now();
    await waitFor('the controller to come back to 2 instances', () => ctl.live() === 2);
    await waitFor('the NLB to list 2 instances', async () => (await listedCount(nlb.rpc, '1.0')) === 2);
    const down = nlb.handle.autoscaler.events.find((e) => e.action === 'scale-down' && e.atMs >= droppedAt);
    expect(down).toMatchObject({ current: 5, desired: 2, ok: true });
    // The last high recommendation came at most one evaluation (1 s) before the drop; the
    // 3 s window must have passed it before scaling down.
    expect(down!.atMs - droppedAt).toBeGreaterThanOrEqual(2_000);
    // Nothing scaled below the minimum or flapped back up meanwhile.
    const after = nlb.handle.autoscaler.events.filter((e) => e.atMs >= droppedAt && e.action !== 'none');
    expect(after.map((e) => e.action)).toEqual(['scale-down']);
  });
});

describe('rollouts analysed from heartbeat counters', () => {
  it('rolls a failing canary back to 1.0 with weights 100/0', async () => {
    const nlb = await h.startNlb(0.5);
    await fastRollouts(nlb.rpc);
    const blue = await h.startAlb({
      nlb: nlb.target,
      version: '1.0',
      instances: 1,
      statsFilter: traffic(200, 0, 20),
    });
    await h.startAlb({ nlb: nlb.target, version: '2.0', instances: 1, statsFilter: traffic(200, 0.1, 20) });
    await waitFor('both versions registered', async () => (await listedCount(nlb.rpc, '2.0')) === 1);
    let maxGreen = 0;
    nlb.handle.nlb.on((e) => {
      if (e.type === 'deployment') maxGreen = Math.max(maxGreen, e.deployment.weights['2.0'] ?? 0);
    });

    const promoted = await blue.rpc('promoteVersion', { version: '2.0' });
    expect(promoted.success, promoted.message).toBe(true);
    expect(promoted.deployment?.versionWeights).toEqual({ '1.0': 95, '2.0': 5 });

    // 1 s steps and 0.5 s heartbeats: a few seconds of canary traffic must be enough.
    const d = await waitFor(
      'the rollout to be rolled back',
      async () => {
        const dep = await albDeployment(nlb.rpc);
        return dep.phase === RolloutPhase.ROLLOUT_PHASE_ROLLED_BACK && dep;
      },
      10_000,
    );
    expect(d.versionWeights).toEqual({ '1.0': 100, '2.0': 0 });
    expect(d.stableVersion).toBe('1.0');
    expect(d.targetVersion).toBe('');
    expect(d.reason).toMatch(/analysis failed at 5 %: success rate .* is below 99 %/);
    expect(maxGreen).toBe(5);
    const rollbacks = nlb.handle.rollouts.events.filter((e) => e.action === 'rollback');
    expect(rollbacks).toHaveLength(1);
    expect(rollbacks[0]).toMatchObject({ version: '2.0', weight: 0 });
    const status = await nlb.rpc('getNlbStatus', {});
    expect(status.details['deployment.ALB'].split(' ').sort()).toEqual(['1.0=100', '2.0=0', 'ROLLED_BACK']);
    const events = Object.entries(status.details)
      .filter(([k]) => k.startsWith('rollout_event.'))
      .map(([, v]) => v);
    expect(events.some((v) => /ALB 2\.0 rollback: analysis failed at 5 %/.test(v))).toBe(true);
  });

  it('promotes a healthy canary through every step and scales the old controller to zero', async () => {
    const nlb = await h.startNlb(0.5);
    await fastRollouts(nlb.rpc);
    const blue = await h.startAlb({
      nlb: nlb.target,
      version: '1.0',
      instances: 2,
      statsFilter: traffic(200, 0, 20),
    });
    const green = await h.startAlb({
      nlb: nlb.target,
      version: '2.0',
      instances: 1,
      statsFilter: traffic(200, 0, 25),
    });
    await waitFor('both versions registered', async () => (await listedCount(nlb.rpc, '2.0')) === 1);
    const seen: number[] = [];
    nlb.handle.nlb.on((e) => {
      if (e.type === 'deployment') seen.push(e.deployment.weights['2.0'] ?? 0);
    });

    const promoted = await green.rpc('promoteVersion', { version: '2.0' });
    expect(promoted.success, promoted.message).toBe(true);

    const d = await waitFor('the rollout to be promoted', async () => {
      const dep = await albDeployment(nlb.rpc);
      return dep.phase === RolloutPhase.ROLLOUT_PHASE_PROMOTED && dep;
    });
    expect(d.versionWeights).toEqual({ '1.0': 0, '2.0': 100 });
    expect(d.stableVersion).toBe('2.0');
    expect([...new Set(seen)]).toEqual([5, 25, 50, 100]);
    expect(nlb.handle.rollouts.events.map((e) => `${e.action} ${e.weight}`).slice(0, 3)).toEqual([
      'advance 25',
      'advance 50',
      'promoted 100',
    ]);

    await waitFor('the 1.0 controller to reach zero instances', () => blue.live() === 0);
    await waitFor('the NLB to list no 1.0 instance', async () => (await listedCount(nlb.rpc, '1.0')) === 0);
    expect(blue.handle.controller.desired).toBe(0);
    expect(green.live()).toBe(1);
    const retire = nlb.handle.rollouts.events.find((e) => e.action === 'retire');
    expect(retire?.version).toBe('1.0');
    expect(retire?.reason).toMatch(/draining to zero after 2\.0 reached 100 %/);
  });
});
