/**
 * Every fault and every action once (test/simulation/scenarios/fault-catalogue.yaml), checked
 * on the timeline and the samples: each took effect on the real NLB and controllers.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SimResult } from '../../simulator/index.js';
import { failures, run, TEST_SCENARIOS } from './support.js';

let r: SimResult;
beforeAll(async () => {
  r = await run(`${TEST_SCENARIOS}fault-catalogue.yaml`);
}, 180_000);

const m = 60_000;
const events = (kind: string, from: number, to: number) =>
  r.timeline.filter((e) => e.kind === kind && e.atMs >= from && e.atMs < to);
const sampleAt = (t: number) => r.samples.find((s) => s.tMs === t)!;

describe('fault catalogue', () => {
  it('passes its own expectations', () => {
    expect(failures(r)).toEqual([]);
  });

  it('stopped heartbeats and a partition make the NLB mark the instance unhealthy after three missed heartbeats', () => {
    const stopped = events('fault', m, m + 1).find((e) => e.message.startsWith('stopped the heartbeats'))!;
    const id = /\((alb-[^)]+)\)/.exec(stopped.message)![1];
    const unhealthy = r.timeline.filter(
      (e) => e.kind === 'instance' && e.message.startsWith(`${id} HEALTHY → UNHEALTHY`),
    );
    expect(unhealthy.map((e) => e.atMs)).toEqual([80_000, 325_000]);
  });

  it('slowed heartbeats (15 s, under the 30 s lease) keep the instance healthy', () => {
    expect(events('instance', 3 * m, 5 * m)).toEqual([]);
  });

  it('failing Scale calls are retried until they work', () => {
    const failed = events('scaling', 7 * m, 9 * m);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((e) => e.data?.ok === false && e.message.includes('(Scale failed)'))).toBe(true);
    expect(events('scaling', 9 * m, 9 * m + 1)[0]?.data).toMatchObject({ action: 'scale-up', ok: true });
    expect(r.types.ALB.failedScaleCalls).toBe(failed.length);
  });

  it('slow starts hold new instances back by 20 s', () => {
    expect(sampleAt(9 * m + 10_000).versions['ALB@1.0']).toMatchObject({ instances: 5, desiredInstances: 8 });
    expect(sampleAt(9 * m + 30_000).versions['ALB@1.0'].instances).toBeGreaterThan(5);
  });

  it("raising a version's error rate and latency shows in its numbers", () => {
    const before = sampleAt(13 * m + 50_000).versions['ALB@1.0'];
    const during = sampleAt(14 * m + 50_000).versions['ALB@1.0'];
    expect(during.errorRate).toBeCloseTo(0.003, 3);
    expect(during.p99LatencyMs).toBeGreaterThan(2 * before.p99LatencyMs);
  });

  it('runs every action through the RPCs, in order, without a failure', () => {
    const actions = r.timeline.filter((e) => e.kind === 'action');
    expect(actions.map((e) => e.data?.action)).toEqual([
      'setConfig',
      'deploy',
      'setWeight',
      'promote',
      'pause',
      'resume',
      'rollback',
      'setScaling',
      'scale',
    ]);
    expect(actions.filter((e) => e.data?.failed)).toEqual([]);
    const phases = r.timeline.filter((e) => e.kind === 'rollout').map((e) => e.data?.phase);
    expect(phases).toEqual(['STABLE', 'PROGRESSING', 'PAUSED', 'PROGRESSING', 'ROLLED_BACK']);
    expect(r.deployments.ALB).toMatchObject({
      phase: 'ROLLED_BACK',
      stableVersion: '1.0',
      weights: { '1.0': 100, '2.0': 0 },
    });
  });
});
