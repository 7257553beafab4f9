import { describe, expect, it } from 'vitest';
import {
  balanceScore,
  coefficientOfVariation,
  connectionsOf,
  evenedOut,
  loadScore,
} from '../../services/nlb/domain/load.js';
import { emptyStats, type InstanceRecord } from '../../services/nlb/domain/types.js';
import { createRng } from '../../services/shared/rng.js';
import { instance } from './nlb-fixtures.js';

const withLoad = (over: Partial<InstanceRecord>, cpu = 0, reported = 0) =>
  instance({ ...over, stats: { ...emptyStats(), cpuUsagePercent: cpu, activeConnections: reported } });

describe('loadScore', () => {
  it.each<[string, InstanceRecord, number]>([
    ['idle, no stats', instance(), 0],
    ['CPU dominates', withLoad({ connections: 10, maxConnections: 100 }, 55), 55],
    ['connections / max_connections dominate', withLoad({ connections: 80, maxConnections: 100 }, 20), 80],
    ['connections / target when there is no maximum', withLoad({ connections: 250 }, 10), 25],
    [
      'self-reported connections count when higher',
      withLoad({ connections: 1, maxConnections: 10 }, 0, 3),
      30,
    ],
    ['clamped to 100', withLoad({ connections: 500, maxConnections: 100 }, 0), 100],
    ['rounded to two decimals', withLoad({ connections: 1, maxConnections: 3 }, 0), 33.33],
  ])('%s → %d', (_label, r, expected) => {
    expect(loadScore(r, 1_000)).toBe(expected);
  });

  it('is 0 for connections when neither a maximum nor a target is set', () => {
    expect(loadScore(instance({ connections: 50 }), 0)).toBe(0);
  });
});

describe('connectionsOf', () => {
  it('is the higher of routed and reported', () => {
    expect(connectionsOf(withLoad({ connections: 4 }, 0, 2))).toBe(4);
    expect(connectionsOf(withLoad({ connections: 4 }, 0, 9))).toBe(9);
    expect(connectionsOf(instance({ connections: 4 }))).toBe(4);
  });
});

describe('coefficientOfVariation', () => {
  it.each<[number[], number]>([
    [[], 0],
    [[7], 0],
    [[0, 0, 0], 0],
    [[5, 5, 5, 5], 0],
    [[0, 10], 1],
    [[2, 4, 4, 4, 5, 5, 7, 9], 0.4],
  ])('%o → %d', (xs, expected) => {
    expect(coefficientOfVariation(xs)).toBeCloseTo(expected, 10);
  });
});

describe('balanceScore', () => {
  const group = (conns: number[], version = '1.0', type: InstanceRecord['moduleType'] = 'ALB') =>
    conns.map((c, i) =>
      instance({ instanceId: `${type}-${version}-${i}`, moduleType: type, version, connections: c }),
    );

  it('is 100 for an even spread, for no instances and for idle groups', () => {
    expect(balanceScore(group([10, 10, 10]))).toBe(100);
    expect(balanceScore([])).toBe(100);
    expect(balanceScore(group([0, 0]))).toBe(100);
  });

  it('is lower for a skewed spread, and lower still the more skewed', () => {
    const mild = balanceScore(group([8, 10, 12]));
    const heavy = balanceScore(group([1, 1, 28]));
    expect(mild).toBe(83.67); // CV = sqrt(8/3) / 10
    expect(heavy).toBeLessThan(mild);
    expect(balanceScore(group([0, 0, 0, 30]))).toBe(0);
  });

  it('judges each type@version group alone, weighted by its size', () => {
    // 1.0 is even (CV 0, 3 instances), 2.0 has CV 1 (2 instances) → 100 × (1 − 2/5).
    expect(balanceScore([...group([5, 5, 5], '1.0'), ...group([0, 10], '2.0')])).toBe(60);
    // Different versions with different loads are not compared with each other.
    expect(balanceScore([...group([50], '1.0'), ...group([1], '2.0'), ...group([3, 3], '1.0', 'DBLB')])).toBe(
      100,
    );
    // CV above 1 counts as 1: [0, 0, 0, 30] has CV √3.
    expect(balanceScore([...group([0, 0, 0, 30], '1.0'), ...group([7, 7, 7, 7], '2.0')])).toBe(50);
  });
});

describe('evenedOut', () => {
  it('spreads the total as evenly as possible, extras to the first ids', () => {
    expect([
      ...evenedOut(
        new Map([
          ['b', 10],
          ['a', 0],
          ['c', 1],
        ]),
      ),
    ]).toEqual([
      ['a', 4],
      ['b', 4],
      ['c', 3],
    ]);
    expect(evenedOut(new Map())).toEqual(new Map());
  });

  it('preserves the sum and differs by at most one (seeded property test)', () => {
    const rng = createRng('evened-out');
    for (let run = 0; run < 500; run++) {
      const m = new Map<string, number>();
      const n = rng.int(1, 12);
      for (let i = 0; i < n; i++) m.set(`i${i}`, rng.int(0, 1_000));
      const out = evenedOut(m);
      const values = [...out.values()];
      expect(values.reduce((a, b) => a + b, 0)).toBe([...m.values()].reduce((a, b) => a + b, 0));
      expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(1);
      expect(new Set(out.keys())).toEqual(new Set(m.keys()));
    }
  });
});
