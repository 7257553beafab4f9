/**
 * Blue/green through ModuleService: SetTrafficWeight, PromoteVersion, PauseRollout,
 * ResumeRollout, Rollback and GetActiveVersion on ALB 1.0 and 2.0 controllers forward to the
 * NLB's UpdateDeployment, which changes what GetModuleInfo reports and where RouteRequest sends
 * traffic. Bad requests get a clear error and leave the NLB's deployment as it was.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutPhase } from '../../proto/gen/marchproxy/types.js';
import {
  createModuleHarness,
  listedIds,
  managedIds,
  Protocol,
  rejectionOf,
  StatusCode,
  waitFor,
  type ModuleRpc,
  type NlbRpc,
} from './module-fixture.js';

const h = createModuleHarness();
let nlb: NlbRpc;
let v1: ModuleRpc;
let v2: ModuleRpc;
let v1Instance: string;
let v2Instance: string;

const WEB = {
  routeId: 'web',
  protocol: Protocol.PROTOCOL_HTTP,
  destinationPattern: 'shop.example.com',
  pathPattern: '/*',
  priority: 10,
};

/** The deployment as the NLB reports it with an instance. */
async function nlbDeployment() {
  const info = await nlb('getModuleInfo', { instanceId: v1Instance });
  const weights = Object.fromEntries(
    info.details.version_weights
      .split(',')
      .map((kv) => kv.split('='))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([v, w]) => [v, Number(w)]),
  );
  return { config: info.deploymentConfig, weights, phase: info.details.rollout_phase };
}

/** Sends `n` dry-run RouteRequests and counts the versions they went to. */
async function routeVersions(n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, () =>
        nlb('routeRequest', {
          route: {
            protocol: Protocol.PROTOCOL_HTTP,
            destinationPattern: 'shop.example.com',
            pathPattern: '/cart',
          },
          dryRun: true,
        }),
      ),
    );
    for (const r of batch) {
      expect(r.routed, r.message).toBe(true);
      const v = r.targetInstanceId === v1Instance ? '1.0' : r.targetInstanceId === v2Instance ? '2.0' : '?';
      counts[v] = (counts[v] ?? 0) + 1;
    }
  }
  return counts;
}

beforeAll(async () => {
  const n = await h.startNlb();
  nlb = n.rpc;
  const blue = await h.startModule({ nlb: n.target, version: '1.0', instances: 1 });
  v1 = blue.rpc;
  // 1.0 registers first, so it is the stable version with 100 %.
  await waitFor('1.0 registered', async () => (await listedIds(nlb)).length === 1);
  const green = await h.startModule({ nlb: n.target, version: '2.0', instances: 1 });
  v2 = green.rpc;
  await waitFor('2.0 registered', async () => (await listedIds(nlb)).length === 2);
  [v1Instance] = await managedIds(v1);
  [v2Instance] = await managedIds(v2);
  for (const m of [v1, v2]) expect((await m('updateRoutes', { routes: [WEB] })).success).toBe(true);
  await waitFor(
    'both instances own a route',
    async () => (await nlb('getRoutingTable', {})).totalEntries === 2,
  );
});

afterAll(() => h.closeAll());

describe('blue/green through the module controllers', () => {
  it('starts with 1.0 active at 100 %', async () => {
    const a = await v2('getActiveVersion', {});
    expect(a.activeVersion).toBe('1.0');
    expect(a.versionWeights).toEqual({ '1.0': 100, '2.0': 0 });
    expect((await nlbDeployment()).config).toMatchObject({
      blueVersion: '1.0',
      blueWeight: 100,
      greenWeight: 0,
    });
    expect(await routeVersions(40)).toEqual({ '1.0': 40 });
  });

  it('refuses bad requests and leaves the deployment unchanged', async () => {
    const before = await nlbDeployment();
    const envelopes = [
      {
        call: () => v2('setTrafficWeight', { version: '2.0', weight: 101 }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'weight 101 is out of range',
      },
      {
        call: () => v2('setTrafficWeight', { version: '2.0', weight: -1 }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'weight -1 is out of range',
      },
      {
        call: () => v2('setTrafficWeight', { version: '', weight: 5 }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'version is required',
      },
      {
        call: () => v2('setTrafficWeight', { version: '3.0', weight: 5 }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'version 3.0 does not exist',
      },
      {
        call: () => v2('setTrafficWeight', { instanceId: 'nope', version: '2.0', weight: 5 }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'nope is not managed',
      },
      {
        call: () => v2('promoteVersion', { version: '2.0', promotionRate: 101 }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'promotion_rate 101 is out of range',
      },
      {
        call: () => v2('promoteVersion', { version: 'bad version' }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'must be 1-64 characters',
      },
      {
        call: () => v1('promoteVersion', { version: '1.0' }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'already the stable version',
      },
      {
        call: () => v2('promoteVersion', { instanceId: 'nope', version: '2.0' }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'nope is not managed',
      },
      {
        call: () => v2('pauseRollout', {}),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'no progressing rollout to pause',
      },
      {
        call: () => v2('pauseRollout', { version: '2 .0' }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'must be 1-64 characters',
      },
      {
        call: () => v2('pauseRollout', { instanceId: 'nope' }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'nope is not managed',
      },
      {
        call: () => v2('resumeRollout', {}),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'no paused rollout to resume',
      },
      {
        call: () => v2('resumeRollout', { instanceId: 'nope' }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'nope is not managed',
      },
      {
        call: () => v1('rollback', { targetVersion: 'x y' }),
        code: StatusCode.STATUS_CODE_INVALID_ARGUMENT,
        says: 'target_version "x y"',
      },
      {
        call: () => v1('rollback', { targetVersion: '9.9' }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'version 9.9 does not exist',
      },
      {
        call: () => v1('rollback', { instanceId: 'nope' }),
        code: StatusCode.STATUS_CODE_NOT_FOUND,
        says: 'nope is not managed',
      },
    ];
    for (const c of envelopes) {
      const r = await c.call();
      expect(r.success, c.says).toBe(false);
      expect(r.error?.code, c.says).toBe(c.code);
      expect(r.message).toContain(c.says);
    }
    const unknown = await rejectionOf(v1('getActiveVersion', { instanceId: 'nope' }));
    expect(unknown.code).toBe(grpcStatus.NOT_FOUND);
    expect(await nlbDeployment()).toEqual(before);
  });

  it('SetTrafficWeight 2.0 = 5 changes the NLB weights (95/5) and RouteRequest choices; 100 sends everything to 2.0', async () => {
    const r = await v2('setTrafficWeight', { version: '2.0', weight: 5 });
    expect(r.success, r.message).toBe(true);
    expect(r.currentConfig).toMatchObject({
      blueVersion: '1.0',
      greenVersion: '2.0',
      blueWeight: 95,
      greenWeight: 5,
    });
    const d = await nlbDeployment();
    expect(d.config).toMatchObject({
      blueVersion: '1.0',
      greenVersion: '2.0',
      blueWeight: 95,
      greenWeight: 5,
      activeVersion: '1.0',
    });
    expect(d.weights).toEqual({ '1.0': 95, '2.0': 5 });

    const counts = await routeVersions(400);
    expect(counts['?']).toBeUndefined();
    // Expect ~20 of 400 (5 %); the bound is generous (binomial sd ≈ 4.4).
    expect(counts['2.0'] ?? 0).toBeGreaterThanOrEqual(4);
    expect(counts['2.0'] ?? 0).toBeLessThanOrEqual(48);

    const all = await v1('setTrafficWeight', { version: '2.0', weight: 100 });
    expect(all.success, all.message).toBe(true);
    expect((await nlbDeployment()).config).toMatchObject({
      blueVersion: '2.0',
      blueWeight: 100,
      activeVersion: '2.0',
    });
    expect(await routeVersions(100)).toEqual({ '2.0': 100 });
    expect((await v1('getActiveVersion', {})).activeVersion).toBe('2.0');
  });

  it('Rollback returns to the last fully promoted version; Promote, Pause, Resume round trip', async () => {
    // Make 1.0 the stable version again, then roll 2.0 out step by step.
    expect((await v1('rollback', { targetVersion: '1.0' })).currentVersion).toBe('1.0');
    expect(await routeVersions(50)).toEqual({ '1.0': 50 });

    const p = await v2('promoteVersion', { version: '2.0', promotionRate: 10 });
    expect(p).toMatchObject({ success: true, promotedVersion: '2.0' });
    expect(p.deployment).toMatchObject({
      phase: RolloutPhase.ROLLOUT_PHASE_PROGRESSING,
      targetVersion: '2.0',
      stableVersion: '1.0',
    });
    expect(p.deployment!.steps).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect((await nlbDeployment()).config).toMatchObject({
      blueWeight: 90,
      greenWeight: 10,
      canaryEnabled: true,
      canaryPercent: 10,
    });

    const wrong = await v2('pauseRollout', { version: '1.0' });
    expect(wrong.success).toBe(false);
    expect(wrong.message).toContain('is rolling out 2.0, not 1.0');
    const paused = await v2('pauseRollout', { version: '2.0', reason: 'checking dashboards' });
    expect(paused.success, paused.message).toBe(true);
    expect(paused.deployment?.phase).toBe(RolloutPhase.ROLLOUT_PHASE_PAUSED);
    expect((await nlbDeployment()).phase).toBe('PAUSED');
    expect((await v2('pauseRollout', {})).success).toBe(false);
    const resumed = await v1('resumeRollout', {});
    expect(resumed.success, resumed.message).toBe(true);
    expect(resumed.deployment?.phase).toBe(RolloutPhase.ROLLOUT_PHASE_PROGRESSING);

    const active = await v1('getActiveVersion', {});
    expect(active).toMatchObject({ activeVersion: '1.0', versionWeights: { '1.0': 90, '2.0': 10 } });
    expect(active.deployment?.phase).toBe(RolloutPhase.ROLLOUT_PHASE_PROGRESSING);

    const back = await v2('rollback', {});
    expect(back).toMatchObject({ success: true, previousVersion: '2.0', currentVersion: '1.0' });
    expect((await nlbDeployment()).config).toMatchObject({
      blueVersion: '1.0',
      blueWeight: 100,
      greenWeight: 0,
    });
    expect((await nlbDeployment()).phase).toBe('ROLLED_BACK');
    expect(await routeVersions(50)).toEqual({ '1.0': 50 });

    const now = await v2('promoteVersion', { version: '2.0', immediate: true });
    expect(now.success, now.message).toBe(true);
    expect(now.deployment).toMatchObject({
      phase: RolloutPhase.ROLLOUT_PHASE_PROMOTED,
      stableVersion: '2.0',
    });
    expect((await v1('getActiveVersion', {})).activeVersion).toBe('2.0');
    expect(await routeVersions(50)).toEqual({ '2.0': 50 });
  });

  it('after a full promotion the NLB scales the old version to zero (its instance drains and leaves)', async () => {
    // DESIGN.md §4: the NLB sends Scale(desired 0, config min 0 / max 0) to the 1.0 controller.
    await waitFor(
      '1.0 scaled to zero',
      async () => (await v1('getStatus', {})).details.desired_instances === '0',
    );
    await waitFor('1.0 instance gone', async () => (await managedIds(v1)).length === 0);
    await waitFor('only 2.0 at the NLB', async () => (await listedIds(nlb)).join() === v2Instance);
    expect((await v1('getStatus', {})).details).toMatchObject({ min_instances: '0', max_instances: '0' });
    expect(await routeVersions(20)).toEqual({ '2.0': 20 });
  });
});
