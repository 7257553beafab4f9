import { describe, expect, it } from 'vitest';
import { Deployments, type Deployment } from '../../services/nlb/domain/deployments.js';
import {
  analyse,
  decideRollout,
  type Analysis,
  type RolloutIntent,
  type RolloutPolicy,
  type VersionWindow,
} from '../../services/nlb/domain/rollout.js';
import { emptyStats } from '../../services/nlb/domain/types.js';
import { Nlb } from '../../services/nlb/nlb.js';
import type { ModulePort } from '../../services/nlb/ports.js';
import { RolloutController } from '../../services/nlb/rollout-loop.js';
import { createMemoryStatePort } from '../../services/nlb/store.js';
import { createManualClock } from '../../services/shared/clock.js';
import { silentLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';
import { spec } from './nlb-fixtures.js';

const SEC = 1_000;
const MIN = 60 * SEC;
const KNOWN = new Set(['1.0', '2.0']);

const POLICY: RolloutPolicy = {
  stepIntervalMs: 60 * SEC,
  minSuccessRate: 0.99,
  maxP99LatencyMs: 500,
  maxP99Ratio: 1.5,
  minRequests: 100,
  progressDeadlineMs: 10 * MIN,
};

const win = (requests: number, failures = 0, p99LatencyMs = 50): VersionWindow => ({
  requests,
  failures,
  p99LatencyMs,
});
const PASS: Analysis = { verdict: 'pass', reason: 'fine' };
const FAIL: Analysis = { verdict: 'fail', reason: 'bad' };
const INCONCLUSIVE: Analysis = { verdict: 'inconclusive', reason: 'too few' };

describe('analyse', () => {
  it.each<[string, VersionWindow, VersionWindow | null, Partial<RolloutPolicy>, Analysis['verdict'], RegExp]>(
    [
      [
        'below minRequests',
        win(99, 50),
        win(1000),
        {},
        'inconclusive',
        /99 request\(s\) on the new version; 100 needed/,
      ],
      ['no traffic at all', win(0), win(1000), {}, 'inconclusive', /0 request/],
      ['minRequests 0 and no traffic', win(0), null, { minRequests: 0 }, 'pass', /success rate 100 %/],
      ['100 % success', win(1000), win(1000), {}, 'pass', /success rate 100 %, p99 50 ms over 1000/],
      ['exactly the minimum success rate', win(100, 1), win(1000), {}, 'pass', /99 %/],
      [
        'a 5 % error rate',
        win(200, 10),
        win(1000),
        {},
        'fail',
        /success rate 95 % is below 99 % \(10 of 200 failed\)/,
      ],
      ['a 2 % error rate', win(1000, 20), win(1000), {}, 'fail', /98 %/],
      ['p99 under the absolute limit', win(500, 0, 450), win(500, 0, 100), {}, 'pass', /p99 450 ms/],
      ['p99 at the absolute limit', win(500, 0, 500), win(500, 0, 100), {}, 'pass', /p99 500 ms/],
      ['p99 over the limit but ≤ 1.5× stable', win(500, 0, 720), win(500, 0, 480), {}, 'pass', /p99 720 ms/],
      [
        'p99 over the limit and over 1.5× stable',
        win(500, 0, 800),
        win(500, 0, 500),
        {},
        'fail',
        /p99 latency 800 ms is above 500 ms and 1.5× the stable version's 500 ms/,
      ],
      [
        'p99 over the limit, stable unknown',
        win(500, 0, 600),
        win(500, 0, 0),
        {},
        'fail',
        /p99 latency 600 ms is above 500 ms$/,
      ],
      ['p99 over the limit, no stable version', win(500, 0, 600), null, {}, 'fail', /above 500 ms$/],
      ['p99 unknown (0) passes', win(500, 0, 0), win(500, 0, 100), {}, 'pass', /p99 0 ms/],
      [
        'errors are judged before latency',
        win(500, 50, 900),
        win(500, 0, 100),
        {},
        'fail',
        /success rate 90 %/,
      ],
    ],
  )('%s → %s', (_name, canary, stable, policy, verdict, reason) => {
    const a = analyse({ ...POLICY, ...policy }, canary, stable);
    expect(a.verdict).toBe(verdict);
    expect(a.reason).toMatch(reason);
  });
});

/** A progressing deployment of 2.0 from 1.0 (default steps) started at `startedAtMs`. */
function progressing(over: Partial<Deployment> = {}): Deployment {
  return {
    moduleType: 'ALB',
    weights: { '1.0': 75, '2.0': 25 },
    stableVersion: '1.0',
    targetVersion: '2.0',
    phase: 'PROGRESSING',
    steps: [5, 25, 50, 100],
    stepIndex: 1,
    stepStartedAtMs: 0,
    startedAtMs: 0,
    reason: '',
    updatedAtMs: 0,
    revision: 3,
    ...over,
  };
}

describe('decideRollout', () => {
  it.each<[string, Partial<Deployment>, Analysis, number, Partial<RolloutIntent>]>([
    ['stable: nothing to do', { phase: 'STABLE', targetVersion: '' }, PASS, 2 * MIN, { type: 'none' }],
    ['paused: nothing to do', { phase: 'PAUSED' }, PASS, 2 * MIN, { type: 'none' }],
    ['promoted: nothing to do', { phase: 'PROMOTED', targetVersion: '' }, PASS, 2 * MIN, { type: 'none' }],
    [
      'rolled back: nothing to do',
      { phase: 'ROLLED_BACK', targetVersion: '' },
      FAIL,
      2 * MIN,
      { type: 'none' },
    ],
    ['passing within the interval: hold', {}, PASS, 59 * SEC, { type: 'hold' }],
    ['passing after the interval: advance', {}, PASS, 60 * SEC, { type: 'advance', toWeight: 50 }],
    [
      'from the first step',
      { stepIndex: 0, weights: { '1.0': 95, '2.0': 5 } },
      PASS,
      MIN,
      { type: 'advance', toWeight: 25 },
    ],
    ['from the last step before 100', { stepIndex: 2 }, PASS, MIN, { type: 'advance', toWeight: 100 }],
    ['inconclusive after the interval: hold', {}, INCONCLUSIVE, 5 * MIN, { type: 'hold' }],
    ['failing within the interval: roll back at once', {}, FAIL, 1 * SEC, { type: 'rollback' }],
    ['failing after the interval: roll back', {}, FAIL, 2 * MIN, { type: 'rollback' }],
    ['past the progress deadline: abort', {}, INCONCLUSIVE, 10 * MIN + 1, { type: 'abort' }],
    [
      'a long rollout that made progress recently is not aborted',
      { startedAtMs: 0, stepStartedAtMs: 10 * MIN },
      PASS,
      10 * MIN + 1,
      { type: 'hold' },
    ],
    [
      'no progress since the step started: abort even when passing',
      { startedAtMs: 5 * MIN, stepStartedAtMs: 5 * MIN },
      PASS,
      15 * MIN + 1,
      { type: 'abort' },
    ],
    ['at the deadline exactly: not yet', {}, INCONCLUSIVE, 10 * MIN, { type: 'hold' }],
    [
      'the interval counts from the step start',
      { stepStartedAtMs: 3 * MIN },
      PASS,
      3 * MIN + 30 * SEC,
      { type: 'hold' },
    ],
  ])('%s', (_name, over, analysis, nowMs, expected) => {
    const intent = decideRollout(progressing(over), POLICY, analysis, nowMs);
    expect(intent).toMatchObject(expected);
    expect(intent.reason).not.toBe('');
  });

  it('says why', () => {
    expect(decideRollout(progressing(), POLICY, FAIL, SEC).reason).toBe('analysis failed at 25 %: bad');
    expect(decideRollout(progressing(), POLICY, PASS, MIN).reason).toBe(
      'step 25 % passed (fine); moving to 50 %',
    );
    expect(decideRollout(progressing(), POLICY, PASS, 45 * SEC).reason).toBe('holding 25 % for 15 s more');
    expect(decideRollout(progressing(), POLICY, INCONCLUSIVE, 11 * MIN).reason).toMatch(
      /^no progress for 600 s at step 25 % \(progress deadline\): too few/,
    );
  });
});

/**
 * A blue/green deployment (1.0 stable, 2.0 registered) driven the way the rollout loop drives it:
 * every `everyMs` of manual-clock time it analyses `traffic()` and applies decideRollout's intent.
 */
function rollout(policy: Partial<RolloutPolicy> = {}) {
  const clock = createManualClock();
  const p = { ...POLICY, ...policy };
  const deployments = new Deployments();
  deployments.observeVersion('ALB', '1.0', clock.now());
  deployments.observeVersion('ALB', '2.0', clock.now());
  const weights: number[] = [];
  const intents: RolloutIntent[] = [];
  const r = {
    clock,
    deployments,
    /** 2.0's weight after every tick. */
    weights,
    intents,
    get d(): Deployment {
      return deployments.get('ALB')!;
    },
    promote(rate = 0): Deployment {
      const d = deployments.promote('ALB', '2.0', rate, false, KNOWN, clock.now());
      weights.push(d.weights['2.0']);
      return d;
    },
    tick(canary: VersionWindow, stable: VersionWindow = win(10_000)): RolloutIntent {
      const d = r.d;
      const intent = decideRollout(d, p, analyse(p, canary, stable), clock.now());
      intents.push(intent);
      if (intent.type === 'advance') deployments.advance('ALB', clock.now(), intent.reason);
      if (intent.type === 'rollback' || intent.type === 'abort')
        deployments.rollback(
          'ALB',
          '',
          KNOWN,
          clock.now(),
          intent.reason,
          intent.type === 'abort' ? 'ABORTED' : 'ROLLED_BACK',
        );
      weights.push(r.d.weights['2.0']);
      return intent;
    },
    /** Ticks every `everyMs` for `forMs` with the window `canary(weight)`. */
    run(forMs: number, canary: (weight: number) => VersionWindow, everyMs = 5 * SEC): void {
      for (let t = 0; t < forMs; t += everyMs) {
        clock.advance(everyMs);
        r.tick(canary(r.d.weights['2.0']));
      }
    },
  };
  return r;
}

/** A healthy canary getting `weight` % of 10 000 requests per step. */
const healthy = (weight: number) => win(weight * 100, 0, 40);

describe('rollouts over time (manual clock)', () => {
  it('promotes a healthy canary through every step', () => {
    const r = rollout();
    r.promote();
    r.run(5 * MIN, healthy);
    expect([...new Set(r.weights)]).toEqual([5, 25, 50, 100]);
    expect(r.d).toMatchObject({
      phase: 'PROMOTED',
      stableVersion: '2.0',
      targetVersion: '',
      weights: { '1.0': 0, '2.0': 100 },
    });
    expect(r.intents.filter((i) => i.type === 'advance')).toHaveLength(3);
    // Each step was held for the full interval: 3 advances, one a minute after the last.
    const advancedAt = r.weights.flatMap((w, i) => (i > 0 && w !== r.weights[i - 1] ? [i * 5 * SEC] : []));
    expect(advancedAt).toEqual([60 * SEC, 120 * SEC, 180 * SEC]);
  });

  it('promotes with a promotion rate in equal steps', () => {
    const r = rollout();
    r.promote(30);
    r.run(5 * MIN, healthy);
    expect([...new Set(r.weights)]).toEqual([30, 60, 90, 100]);
    expect(r.d.phase).toBe('PROMOTED');
  });

  it('rolls back on its own on a 5 % error rate at the 25 % step', () => {
    const r = rollout();
    r.promote();
    const failingAt25 = (w: number) => (w === 25 ? win(2500, 125, 40) : healthy(w));
    r.run(5 * MIN, failingAt25);
    expect([...new Set(r.weights)]).toEqual([5, 25, 0]);
    expect(r.d).toMatchObject({
      phase: 'ROLLED_BACK',
      stableVersion: '1.0',
      targetVersion: '',
      weights: { '1.0': 100, '2.0': 0 },
    });
    expect(r.d.reason).toMatch(
      /^analysis failed at 25 %: success rate 95 % is below 99 % \(125 of 2500 failed\)/,
    );
    // The failure was caught at the first tick of the step, not after its interval.
    expect(r.intents.filter((i) => i.type === 'rollback')).toHaveLength(1);
    expect(r.weights.filter((w) => w === 25)).toHaveLength(1);
  });

  it('a rollback mid-canary returns to the old version and never promotes the new one', () => {
    const r = rollout();
    r.promote();
    r.run(2 * MIN + 10 * SEC, healthy); // now at 50 %
    expect(r.d.weights['2.0']).toBe(50);
    const back = r.deployments.rollback('ALB', '', KNOWN, r.clock.now(), 'operator rollback');
    expect(back.previous).toBe('2.0');
    expect(back.deployment).toMatchObject({
      phase: 'ROLLED_BACK',
      stableVersion: '1.0',
      weights: { '1.0': 100, '2.0': 0 },
    });
    // The loop keeps running with perfect analyses: nothing moves any more.
    r.run(10 * MIN, healthy);
    expect(r.d.weights).toEqual({ '1.0': 100, '2.0': 0 });
    expect(Math.max(...r.weights)).toBe(50);
    expect(r.intents.slice(-5).every((i) => i.type === 'none')).toBe(true);
  });

  it('pause holds the step however long; resume restarts its interval', () => {
    const r = rollout({ progressDeadlineMs: 60 * MIN });
    r.promote();
    r.run(70 * SEC, healthy); // advanced to 25 % at 60 s
    expect(r.d.weights['2.0']).toBe(25);
    r.deployments.pause('ALB', '2.0', r.clock.now(), '');
    r.run(10 * MIN, healthy);
    expect(r.d).toMatchObject({ phase: 'PAUSED', weights: { '1.0': 75, '2.0': 25 } });
    const resumedAt = r.clock.now();
    r.deployments.resume('ALB', '2.0', resumedAt, '');
    r.run(55 * SEC, healthy);
    expect(r.d.weights['2.0']).toBe(25); // the interval started again at the resume
    r.run(10 * SEC, healthy);
    expect(r.d).toMatchObject({ phase: 'PROGRESSING', weights: { '1.0': 50, '2.0': 50 } });
    expect(r.d.stepStartedAtMs - resumedAt).toBe(60 * SEC);
  });

  it('aborts at the progress deadline when the analysis never becomes conclusive', () => {
    const r = rollout();
    r.promote();
    const starved = () => win(10, 0, 40); // under minRequests forever
    r.run(9 * MIN, starved);
    expect(r.d).toMatchObject({ phase: 'PROGRESSING', weights: { '1.0': 95, '2.0': 5 } });
    r.run(90 * SEC, starved);
    expect(r.d).toMatchObject({ phase: 'ABORTED', stableVersion: '1.0', weights: { '1.0': 100, '2.0': 0 } });
    expect(r.d.reason).toMatch(/^no progress for 600 s at step 5 % \(progress deadline\)/);
    const aborts = r.intents.filter((i) => i.type === 'abort');
    expect(aborts).toHaveLength(1);
  });
});

// ---- the loop around the decision -------------------------------------------------------------

const V1 = '127.0.0.1:50051';
const V2 = '127.0.0.1:50061';

/**
 * A real Nlb on a manual clock (started 3 s into a 10 s metrics bucket) with 1.0 and 2.0
 * instances that heartbeat counters growing at `rps` per instance, and a RolloutController.
 */
function loop(traffic: Record<string, { rps: number; failRatio: number; p99: number }>) {
  const clock = createManualClock(Date.UTC(2026, 0, 1) + 3 * SEC);
  const scales: Array<{ address: string; desired: number }> = [];
  const modules: ModulePort = {
    canHandle: () => Promise.resolve({ canHandle: true, priority: 1, reason: '' }),
    healthCheck: () => Promise.resolve({ status: 'HEALTHY', message: '' }),
    scale: (address, req) => {
      scales.push({ address, desired: req.desiredInstances });
      return Promise.resolve({ success: true, message: 'ok', currentInstances: 0, desiredInstances: 0 });
    },
  };
  const nlb = new Nlb({
    clock,
    rng: createRng('rollout-loop'),
    logger: silentLogger(),
    state: createMemoryStatePort(),
    modules,
    version: '0.0.0-test',
  });
  nlb.updateConfig(
    'rollout',
    { stepIntervalSeconds: 1, minRequests: 50, progressDeadlineSeconds: 30 },
    false,
  );
  const rollouts = new RolloutController(nlb);
  const t0 = clock.now();
  const regs = [
    nlb.register(spec({ instanceId: 'v1-a', address: V1, version: '1.0' }), [], 'HEALTHY'),
    nlb.register(spec({ instanceId: 'v1-b', address: V1, version: '1.0' }), [], 'HEALTHY'),
    nlb.register(spec({ instanceId: 'v2-a', address: V2, version: '2.0' }), [], 'HEALTHY'),
  ];
  const heartbeat = () => {
    for (const r of regs) {
      const t = traffic[r.version];
      const total = Math.floor(((clock.now() - t0) / SEC) * t.rps);
      const failed = Math.floor(total * t.failRatio);
      nlb.heartbeat(r.instanceId, r.registrationId, 'HEALTHY', {
        ...emptyStats(),
        totalRequests: total,
        successfulRequests: total - failed,
        failedRequests: failed,
        p99LatencyMs: t.p99,
      });
    }
  };
  heartbeat();
  return {
    clock,
    nlb,
    rollouts,
    scales,
    deployment: () => nlb.deployments.get('ALB')!,
    promote: (immediate = false) =>
      nlb.updateDeployment('ALB', 'PROMOTE', {
        version: '2.0',
        weight: 0,
        promotionRate: 0,
        immediate,
        validateOnly: false,
        reason: '',
        requestedBy: 'test',
      }),
    /** Each second: heartbeats, then one rollout pass; until `until()` or `maxMs`. Returns the time taken. */
    async runUntil(until: () => boolean, maxMs: number): Promise<number> {
      const start = clock.now();
      while (!until() && clock.now() - start < maxMs) {
        clock.advance(SEC);
        heartbeat();
        await rollouts.tick();
      }
      return clock.now() - start;
    },
  };
}

describe('RolloutController (loop)', () => {
  const HEALTHY = { rps: 100, failRatio: 0, p99: 40 };

  it('measures short steps from heartbeat counters: a failing canary is rolled back within seconds', async () => {
    const l = loop({ '1.0': HEALTHY, '2.0': { rps: 100, failRatio: 0.1, p99: 40 } });
    l.promote();
    const took = await l.runUntil(() => l.deployment().phase !== 'PROGRESSING', 30 * SEC);
    expect(l.deployment()).toMatchObject({ phase: 'ROLLED_BACK', weights: { '1.0': 100, '2.0': 0 } });
    // 1 s steps, 1 s heartbeats: the first full second of canary traffic is enough (a 10 s
    // metrics bucket must not be needed).
    expect(took).toBeLessThanOrEqual(3 * SEC);
    expect(l.rollouts.events).toMatchObject([{ action: 'rollback', version: '2.0', weight: 0 }]);
    expect(l.rollouts.events[0].reason).toMatch(/analysis failed at 5 %: success rate 90 %/);
    expect(l.scales).toEqual([]);
  });

  it('rolls back a canary whose p99 is over the limit and over 1.5× the stable one', async () => {
    const l = loop({ '1.0': HEALTHY, '2.0': { rps: 100, failRatio: 0, p99: 900 } });
    l.promote();
    const took = await l.runUntil(() => l.deployment().phase !== 'PROGRESSING', 30 * SEC);
    expect(l.deployment().phase).toBe('ROLLED_BACK');
    expect(took).toBeLessThanOrEqual(3 * SEC);
    expect(l.deployment().reason).toMatch(/p99 latency 900 ms is above 500 ms/);
  });

  it('promotes a healthy canary step by step and scales the old controller to zero', async () => {
    const l = loop({ '1.0': HEALTHY, '2.0': { ...HEALTHY, p99: 60 } });
    l.promote();
    const took = await l.runUntil(() => l.deployment().phase !== 'PROGRESSING', 30 * SEC);
    expect(l.deployment()).toMatchObject({
      phase: 'PROMOTED',
      stableVersion: '2.0',
      weights: { '1.0': 0, '2.0': 100 },
    });
    expect(took).toBeLessThanOrEqual(8 * SEC);
    expect(l.rollouts.events.map((e) => `${e.action} ${e.version} ${e.weight}`)).toEqual([
      'advance 2.0 25',
      'advance 2.0 50',
      'promoted 2.0 100',
      'retire 1.0 0',
    ]);
    expect(l.scales).toEqual([{ address: V1, desired: 0 }]);
  });

  it.each([true, false])(
    'after an immediate promotion, retires the old controller only if scaleDownOldVersion (%s)',
    async (scaleDown) => {
      const l = loop({ '1.0': HEALTHY, '2.0': HEALTHY });
      l.nlb.updateConfig('rollout', { scaleDownOldVersion: scaleDown }, false);
      const d = l.promote(true).deployment;
      expect(d.phase).toBe('PROMOTED');
      await l.rollouts.retireOldVersions(d);
      expect(l.scales).toEqual(scaleDown ? [{ address: V1, desired: 0 }] : []);
      expect(l.rollouts.events.map((e) => e.action)).toEqual(scaleDown ? ['retire'] : []);
    },
  );

  it('aborts a canary that never gets enough traffic at the progress deadline', async () => {
    const l = loop({ '1.0': HEALTHY, '2.0': { rps: 0, failRatio: 0, p99: 0 } });
    l.promote();
    const took = await l.runUntil(() => l.deployment().phase !== 'PROGRESSING', 60 * SEC);
    expect(l.deployment()).toMatchObject({ phase: 'ABORTED', weights: { '1.0': 100, '2.0': 0 } });
    expect(took).toBe(31 * SEC);
    expect(l.rollouts.events[0].reason).toMatch(
      /no progress for 30 s at step 5 % \(progress deadline\): 0 request\(s\)/,
    );
  });

  it('leaves a paused rollout alone', async () => {
    const l = loop({ '1.0': HEALTHY, '2.0': { rps: 100, failRatio: 0.5, p99: 40 } });
    l.promote();
    l.nlb.deployments.pause('ALB', '2.0', l.clock.now(), 'hold on');
    await l.runUntil(() => false, 10 * SEC);
    expect(l.deployment()).toMatchObject({ phase: 'PAUSED', weights: { '1.0': 95, '2.0': 5 } });
    expect(l.rollouts.events).toEqual([]);
  });
});
