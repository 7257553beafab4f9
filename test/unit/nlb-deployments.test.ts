import { describe, expect, it } from 'vitest';
import {
  activeVersion,
  DEFAULT_STEPS,
  Deployments,
  promotionSteps,
  redistribute,
  type Deployment,
} from '../../services/nlb/domain/deployments.js';
import { createRng } from '../../services/shared/rng.js';
import { domainError } from './nlb-fixtures.js';

const T0 = 1_000;
const KNOWN = new Set(['1.0', '2.0']);
const sum = (w: Record<string, number>) => Object.values(w).reduce((a, b) => a + b, 0);

/** ALB with 1.0 stable at 100 % and 2.0 registered at 0 %. */
function blueGreen(): Deployments {
  const d = new Deployments();
  d.observeVersion('ALB', '1.0', T0);
  d.observeVersion('ALB', '2.0', T0 + 1);
  return d;
}

describe('promotionSteps', () => {
  it.each<[number, boolean, number[]]>([
    [0, false, [5, 25, 50, 100]],
    [30, false, [30, 60, 90, 100]],
    [25, false, [25, 50, 75, 100]],
    [50, false, [50, 100]],
    [100, false, [100]],
    [1, false, Array.from({ length: 100 }, (_, i) => i + 1)],
    [30, true, [100]],
    [0, true, [100]],
  ])('rate %i, immediate %s → %o', (rate, immediate, steps) => {
    expect(promotionSteps(rate, immediate)).toEqual(steps);
  });

  it('returns a copy of the defaults', () => {
    const steps = promotionSteps(0, false);
    steps.push(7);
    expect(DEFAULT_STEPS).toEqual([5, 25, 50, 100]);
  });
});

describe('redistribute', () => {
  it.each<[Record<string, number>, string, number, string, Record<string, number>]>([
    [{ a: 100 }, 'a', 100, 'a', { a: 100 }],
    [{ a: 100, b: 0 }, 'b', 10, 'a', { a: 90, b: 10 }],
    [{ a: 90, b: 10 }, 'b', 100, 'a', { a: 0, b: 100 }],
    // the rest is shared in proportion to current weights
    [{ a: 50, b: 30, c: 20 }, 'c', 60, 'a', { a: 25, b: 15, c: 60 }],
    // largest remainder: 100/3 each, the first by index takes the extra point on ties
    [{ a: 1, b: 1, c: 1, d: 0 }, 'd', 0, 'a', { a: 34, b: 33, c: 33, d: 0 }],
    [{ a: 0, b: 0, c: 100 }, 'c', 1, 'b', { a: 0, b: 99, c: 1 }],
    // all others at zero and no fallback among them: shared evenly
    [{ a: 0, b: 0, c: 100 }, 'c', 40, 'zzz', { a: 30, b: 30, c: 40 }],
    // a version not in the map yet is added
    [{ a: 100 }, 'new', 5, 'a', { a: 95, new: 5 }],
  ])('%o, %s=%i (fallback %s) → %o', (weights, version, weight, fallback, expected) => {
    expect(redistribute(weights, version, weight, fallback)).toEqual(expected);
  });

  it('always sums to exactly 100 with every weight an integer in 0..100 (seeded property test)', () => {
    const rng = createRng('redistribute-property');
    for (let run = 0; run < 2_000; run++) {
      const n = rng.int(1, 8);
      const weights: Record<string, number> = {};
      for (let i = 0; i < n; i++) weights[`v${i}`] = rng.chance(0.3) ? 0 : rng.int(0, 100);
      const version = rng.chance(0.2) ? 'fresh' : `v${rng.int(0, n - 1)}`;
      const weight = rng.int(0, 100);
      const fallback = `v${rng.int(0, n)}`;
      const out = redistribute(weights, version, weight, fallback);
      const context = JSON.stringify({ weights, version, weight, fallback, out });
      expect(sum(out), context).toBe(100);
      for (const w of Object.values(out)) {
        expect(Number.isInteger(w) && w >= 0 && w <= 100, context).toBe(true);
      }
      const others = Object.keys(out).filter((v) => v !== version);
      expect(out[version], context).toBe(others.length === 0 ? 100 : weight);
      expect(new Set(Object.keys(out)), context).toEqual(new Set([...Object.keys(weights), version]));
      // No other version is more than one point away from its exact proportional share.
      const basis = others.map((v) => weights[v] ?? 0);
      const basisSum = basis.reduce((a, b) => a + b, 0);
      if (basisSum > 0) {
        others.forEach((v, i) => {
          expect(Math.abs(out[v] - (basis[i] / basisSum) * (100 - weight)), context).toBeLessThan(1 + 1e-9);
        });
      }
    }
  });
});

describe('Deployments.observeVersion', () => {
  it('gives the first version 100 % and makes it stable; later versions start at 0 %', () => {
    const d = new Deployments();
    expect(d.observeVersion('ALB', '1.0', T0)).toBe(true);
    expect(d.get('ALB')).toMatchObject({
      weights: { '1.0': 100 },
      stableVersion: '1.0',
      phase: 'STABLE',
      revision: 1,
    });
    expect(d.observeVersion('ALB', '2.0', T0 + 5)).toBe(true);
    expect(d.get('ALB')).toMatchObject({
      weights: { '1.0': 100, '2.0': 0 },
      stableVersion: '1.0',
      revision: 2,
      updatedAtMs: T0 + 5,
      reason: 'version 2.0 registered with weight 0',
    });
    expect(d.observeVersion('ALB', '2.0', T0 + 9)).toBe(false);
    expect(d.get('ALB')!.revision).toBe(2);
  });

  it('keeps types apart', () => {
    const d = new Deployments();
    d.observeVersion('ALB', '1.0', T0);
    d.observeVersion('DBLB', '3.1', T0);
    expect(d.all().map((x) => `${x.moduleType}:${x.stableVersion}`)).toEqual(['ALB:1.0', 'DBLB:3.1']);
  });
});

describe('Deployments.setWeight', () => {
  it('sets one weight and gives the rest to the others; a canary weight makes the version the target', () => {
    const d = blueGreen();
    const out = d.setWeight('ALB', '2.0', 10, KNOWN, T0 + 10);
    expect(out).toMatchObject({
      weights: { '1.0': 90, '2.0': 10 },
      targetVersion: '2.0',
      stableVersion: '1.0',
      phase: 'STABLE',
    });
    expect(d.get('ALB')).toEqual(out);
    expect(out.reason).toBe('weight of 2.0 set to 10');
  });

  it('weight 100 makes the version stable', () => {
    const d = blueGreen();
    expect(d.setWeight('ALB', '2.0', 100, KNOWN, T0)).toMatchObject({
      weights: { '1.0': 0, '2.0': 100 },
      stableVersion: '2.0',
      targetVersion: '',
      phase: 'STABLE',
    });
  });

  it('pauses a progressing rollout (a person took over)', () => {
    const d = blueGreen();
    d.promote('ALB', '2.0', 0, false, KNOWN, T0);
    expect(d.setWeight('ALB', '2.0', 40, KNOWN, T0 + 1).phase).toBe('PAUSED');
  });

  it('accepts a version that is registered but not yet in the weights', () => {
    const d = blueGreen();
    const out = d.setWeight('ALB', '3.0', 20, new Set(['3.0']), T0);
    expect(out.weights).toEqual({ '1.0': 80, '2.0': 0, '3.0': 20 });
  });

  it.each([
    [
      'weight 101',
      '2.0',
      101,
      'invalid_argument',
      'invalid deployment request: weight 101 is out of range: use 0 to 100',
    ],
    ['weight -1', '2.0', -1, 'invalid_argument', 'weight -1 is out of range'],
    ['a fractional weight', '2.0', 12.5, 'invalid_argument', 'weight 12.5 is out of range'],
    [
      'an unknown version',
      '9.9',
      10,
      'not_found',
      'ALB version 9.9 does not exist: no instance of it is registered (known: 1.0, 2.0)',
    ],
    ['a malformed version', '-bad', 10, 'invalid_argument', 'version "-bad" must be 1-64 characters'],
  ])('refuses %s and changes nothing', (_label, version, weight, kind, message) => {
    const d = blueGreen();
    const before = structuredClone(d.get('ALB'));
    const e = domainError(() => d.setWeight('ALB', version, weight, KNOWN, T0 + 1));
    expect(e.kind).toBe(kind);
    expect(e.message).toContain(message);
    expect(d.get('ALB')).toEqual(before);
  });

  it('keeps a single version at 100', () => {
    const d = new Deployments();
    d.observeVersion('ALB', '1.0', T0);
    const e = domainError(() => d.setWeight('ALB', '1.0', 50, new Set(['1.0']), T0));
    expect(e.kind).toBe('failed_precondition');
    expect(e.message).toBe(
      'ALB has only version 1.0; it must keep weight 100 (register another version first)',
    );
    expect(d.setWeight('ALB', '1.0', 100, new Set(['1.0']), T0).weights).toEqual({ '1.0': 100 });
  });

  it('refuses a type with no deployment', () => {
    const e = domainError(() => new Deployments().setWeight('RTMP', '1.0', 10, KNOWN, T0));
    expect(e.kind).toBe('not_found');
    expect(e.message).toContain('module type RTMP has no deployment yet');
  });

  it('dry run returns the result and leaves the state unchanged', () => {
    const d = blueGreen();
    const before = structuredClone(d.get('ALB'));
    const out = d.setWeight('ALB', '2.0', 30, KNOWN, T0 + 1, true);
    expect(out.weights).toEqual({ '1.0': 70, '2.0': 30 });
    expect(d.get('ALB')).toEqual(before);
  });
});

describe('Deployments.promote and advance', () => {
  it.each<[string, number, boolean, number[]]>([
    ['default steps', 0, false, [5, 25, 50, 100]],
    ['rate 30', 30, false, [30, 60, 90, 100]],
  ])('%s: walks every step to PROMOTED, then 2.0 is stable', (_label, rate, immediate, steps) => {
    const d = blueGreen();
    const started = d.promote('ALB', '2.0', rate, immediate, KNOWN, T0 + 10);
    expect(started).toMatchObject({
      steps,
      stepIndex: 0,
      phase: 'PROGRESSING',
      targetVersion: '2.0',
      stableVersion: '1.0',
      startedAtMs: T0 + 10,
      weights: { '1.0': 100 - steps[0], '2.0': steps[0] },
    });
    const seen: Array<[number, string]> = [[steps[0], started.phase]];
    for (let i = 1; i < steps.length; i++) {
      const after = d.advance('ALB', T0 + 10 + i * 60_000, `step ${i}`);
      expect(sum(after.weights)).toBe(100);
      expect(after.stepStartedAtMs).toBe(T0 + 10 + i * 60_000);
      seen.push([after.weights['2.0'], after.phase]);
    }
    expect(seen).toEqual(steps.map((w, i) => [w, i === steps.length - 1 ? 'PROMOTED' : 'PROGRESSING']));
    expect(d.get('ALB')).toMatchObject({
      stableVersion: '2.0',
      targetVersion: '',
      weights: { '1.0': 0, '2.0': 100 },
    });
    expect(activeVersion(d.get('ALB')!)).toBe('2.0');
    const e = domainError(() => d.advance('ALB', T0, 'again'));
    expect(e.kind).toBe('failed_precondition');
    expect(e.message).toBe('ALB has no progressing rollout (phase PROMOTED)');
  });

  it('immediate promotes at once', () => {
    const d = blueGreen();
    expect(d.promote('ALB', '2.0', 0, true, KNOWN, T0)).toMatchObject({
      steps: [100],
      phase: 'PROMOTED',
      stableVersion: '2.0',
      targetVersion: '',
      weights: { '1.0': 0, '2.0': 100 },
      reason: '2.0 promoted to 100 % at once',
    });
  });

  it('uses the steps it is given as defaults', () => {
    const d = blueGreen();
    expect(d.promote('ALB', '2.0', 0, false, KNOWN, T0, [10, 100]).steps).toEqual([10, 100]);
  });

  it.each([
    ['rate 101', '2.0', 101, 'invalid_argument', 'promotion_rate 101 is out of range'],
    ['rate -5', '2.0', -5, 'invalid_argument', 'promotion_rate -5 is out of range'],
    [
      'the stable version at 100 %',
      '1.0',
      0,
      'failed_precondition',
      'ALB version 1.0 is already the stable version with 100 % of traffic',
    ],
    ['an unknown version', '7.0', 0, 'not_found', 'ALB version 7.0 does not exist'],
  ])('refuses %s and changes nothing', (_label, version, rate, kind, message) => {
    const d = blueGreen();
    const before = structuredClone(d.get('ALB'));
    const e = domainError(() => d.promote('ALB', version, rate, false, KNOWN, T0));
    expect(e.kind).toBe(kind);
    expect(e.message).toContain(message);
    expect(d.get('ALB')).toEqual(before);
  });

  it('dry run returns the first step and leaves the state unchanged', () => {
    const d = blueGreen();
    const before = structuredClone(d.get('ALB'));
    const out = d.promote('ALB', '2.0', 0, false, KNOWN, T0, DEFAULT_STEPS, true);
    expect(out).toMatchObject({ phase: 'PROGRESSING', weights: { '1.0': 95, '2.0': 5 } });
    expect(d.get('ALB')).toEqual(before);
  });
});

describe('Deployments.rollback', () => {
  const rolledBack = (dep: Deployment) => ({
    weights: dep.weights,
    stableVersion: dep.stableVersion,
    targetVersion: dep.targetVersion,
    phase: dep.phase,
    steps: dep.steps,
  });

  it('returns all traffic to the stable version mid-canary and never promotes the new one', () => {
    const d = blueGreen();
    d.promote('ALB', '2.0', 0, false, KNOWN, T0);
    d.advance('ALB', T0 + 1, 'step');
    expect(d.get('ALB')!.weights).toEqual({ '1.0': 75, '2.0': 25 });
    const { previous, deployment } = d.rollback('ALB', '', KNOWN, T0 + 2, 'p99 too high');
    expect(previous).toBe('2.0');
    expect(rolledBack(deployment)).toEqual({
      weights: { '1.0': 100, '2.0': 0 },
      stableVersion: '1.0',
      targetVersion: '',
      phase: 'ROLLED_BACK',
      steps: [],
    });
    expect(deployment.reason).toBe('p99 too high');
    expect(d.get('ALB')).toEqual(deployment);
    // The rollout is over: it cannot advance into a promotion.
    expect(domainError(() => d.advance('ALB', T0 + 3, 'x')).kind).toBe('failed_precondition');
    expect(d.get('ALB')!.stableVersion).toBe('1.0');
  });

  it('rolls back a paused rollout and a hand-set canary the same way', () => {
    const d = blueGreen();
    d.promote('ALB', '2.0', 50, false, KNOWN, T0);
    d.pause('ALB', '2.0', T0 + 1, '');
    expect(d.rollback('ALB', '', KNOWN, T0 + 2, 'stop').deployment.weights).toEqual({ '1.0': 100, '2.0': 0 });
    const e = blueGreen();
    e.setWeight('ALB', '2.0', 60, KNOWN, T0);
    const r = e.rollback('ALB', '', KNOWN, T0 + 1, 'stop');
    expect(r.previous).toBe('2.0');
    expect(r.deployment.weights).toEqual({ '1.0': 100, '2.0': 0 });
  });

  it('rolls back to a named version and records ABORTED when asked', () => {
    const d = blueGreen();
    d.promote('ALB', '2.0', 0, true, KNOWN, T0);
    const { previous, deployment } = d.rollback('ALB', '1.0', KNOWN, T0 + 1, 'analysis failed', 'ABORTED');
    expect(previous).toBe('2.0');
    expect(deployment).toMatchObject({
      weights: { '1.0': 100, '2.0': 0 },
      stableVersion: '1.0',
      phase: 'ABORTED',
    });
  });

  it('refuses an unknown target version', () => {
    const d = blueGreen();
    expect(domainError(() => d.rollback('ALB', '5.0', KNOWN, T0, 'x')).kind).toBe('not_found');
  });

  it('dry run leaves the state unchanged', () => {
    const d = blueGreen();
    d.promote('ALB', '2.0', 0, false, KNOWN, T0);
    const before = structuredClone(d.get('ALB'));
    const r = d.rollback('ALB', '', KNOWN, T0 + 1, 'x', 'ROLLED_BACK', true);
    expect(r.deployment.weights).toEqual({ '1.0': 100, '2.0': 0 });
    expect(d.get('ALB')).toEqual(before);
  });
});

describe('Deployments.pause and resume', () => {
  it('pauses a progressing rollout and resumes it, restarting the step interval', () => {
    const d = blueGreen();
    d.promote('ALB', '2.0', 0, false, KNOWN, T0);
    expect(d.pause('ALB', '', T0 + 5, '')).toMatchObject({ phase: 'PAUSED', reason: 'paused at 5 %' });
    expect(d.resume('ALB', '2.0', T0 + 50, '')).toMatchObject({
      phase: 'PROGRESSING',
      stepStartedAtMs: T0 + 50,
      reason: 'resumed at 5 %',
    });
  });

  it.each<[string, (d: Deployments) => unknown, string]>([
    [
      'pause with no rollout',
      (d) => d.pause('ALB', '', T0, ''),
      'ALB has no progressing rollout to pause (phase STABLE)',
    ],
    [
      'resume with no rollout',
      (d) => d.resume('ALB', '', T0, ''),
      'ALB has no paused rollout to resume (phase STABLE)',
    ],
    [
      'resume a progressing rollout',
      (d) => {
        d.promote('ALB', '2.0', 0, false, KNOWN, T0);
        return d.resume('ALB', '', T0, '');
      },
      'ALB has no paused rollout to resume (phase PROGRESSING)',
    ],
    [
      'pause a paused rollout',
      (d) => {
        d.promote('ALB', '2.0', 0, false, KNOWN, T0);
        d.pause('ALB', '', T0, '');
        return d.pause('ALB', '', T0, '');
      },
      'ALB has no progressing rollout to pause (phase PAUSED)',
    ],
    [
      'pause naming another version',
      (d) => {
        d.promote('ALB', '2.0', 0, false, KNOWN, T0);
        return d.pause('ALB', '1.0', T0, '');
      },
      'ALB is rolling out 2.0, not 1.0',
    ],
    [
      'resume naming another version',
      (d) => {
        d.promote('ALB', '2.0', 0, false, KNOWN, T0);
        d.pause('ALB', '', T0, '');
        return d.resume('ALB', '1.0', T0, '');
      },
      'ALB is rolling out 2.0, not 1.0',
    ],
  ])('refuses to %s', (_label, act, message) => {
    const d = blueGreen();
    const e = domainError(() => act(d));
    expect(e.kind).toBe('failed_precondition');
    expect(e.message).toBe(message);
  });
});

describe('activeVersion and put/remove', () => {
  it('is the version with the most traffic, the stable one on ties', () => {
    const d = blueGreen();
    expect(activeVersion(d.get('ALB')!)).toBe('1.0');
    d.setWeight('ALB', '2.0', 50, KNOWN, T0);
    expect(activeVersion(d.get('ALB')!)).toBe('1.0');
    d.setWeight('ALB', '2.0', 51, KNOWN, T0);
    expect(activeVersion(d.get('ALB')!)).toBe('2.0');
  });

  it('put stores a copy; remove forgets', () => {
    const d = blueGreen();
    const copy = structuredClone(d.get('ALB')!);
    const other = new Deployments([copy]);
    copy.weights['1.0'] = 0;
    expect(other.get('ALB')!.weights['1.0']).toBe(100);
    other.put(copy);
    copy.weights['1.0'] = 42;
    expect(other.get('ALB')!.weights['1.0']).toBe(0);
    other.remove('ALB');
    expect(other.all()).toEqual([]);
  });
});
