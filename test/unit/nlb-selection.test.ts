import { describe, expect, it } from 'vitest';
import {
  chooseVersion,
  effectiveLoad,
  newSelectionState,
  pickInstance,
  selectInstance,
} from '../../services/nlb/domain/selection.js';
import type { InstanceRecord } from '../../services/nlb/domain/types.js';
import { createRng } from '../../services/shared/rng.js';
import { instance } from './nlb-fixtures.js';

const inst = (instanceId: string, over: Partial<InstanceRecord> = {}) => instance({ instanceId, ...over });

/** How often each key comes up in `n` draws. */
function tally(n: number, draw: () => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const k = draw();
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

describe('selectInstance: only routable instances', () => {
  it.each<[string, Partial<InstanceRecord>]>([
    ['UNHEALTHY', { health: 'UNHEALTHY' }],
    ['STARTING', { health: 'STARTING' }],
    ['DEGRADED', { health: 'DEGRADED' }],
    ['draining', { draining: true }],
    ['at max_connections', { maxConnections: 5, connections: 5 }],
  ])('never picks an instance that is %s', (_label, over) => {
    const rng = createRng('routable');
    const s = newSelectionState();
    const pool = [inst('bad', { ...over }), inst('good', { connections: 1_000 })];
    const picked = tally(200, () => selectInstance(pool, { '1.0': 100 }, s, rng)!.instance.instanceId);
    expect(picked).toEqual({ good: 200 });
  });

  it('returns null when nothing is routable', () => {
    const pool = [inst('a', { health: 'UNHEALTHY' }), inst('b', { draining: true })];
    expect(selectInstance(pool, { '1.0': 100 }, newSelectionState(), createRng(1))).toBeNull();
    expect(selectInstance([], undefined, newSelectionState(), createRng(1))).toBeNull();
  });
});

describe('selectInstance: version weights', () => {
  it('splits ~90/10 over 20 000 choices (within ±2 %)', () => {
    const rng = createRng('weights-90-10');
    const s = newSelectionState();
    const pool = [
      inst('v1-a', { version: '1.0' }),
      inst('v1-b', { version: '1.0' }),
      inst('v2-a', { version: '2.0' }),
      inst('v2-b', { version: '2.0' }),
    ];
    const n = 20_000;
    const byVersion = tally(n, () => {
      const c = selectInstance(pool, { '1.0': 90, '2.0': 10 }, s, rng)!;
      expect(c.fallback).toBe(false);
      expect(c.instance.version).toBe(c.version);
      return c.version;
    });
    expect(Math.abs(byVersion['1.0'] / n - 0.9)).toBeLessThanOrEqual(0.02);
    expect(Math.abs(byVersion['2.0'] / n - 0.1)).toBeLessThanOrEqual(0.02);
  });

  it('never picks a 0-weight version while a weighted one has instances', () => {
    const rng = createRng('zero-weight');
    const pool = [inst('old', { version: '1.0' }), inst('new', { version: '2.0' })];
    const versions = tally(
      1_000,
      () => selectInstance(pool, { '1.0': 100, '2.0': 0 }, newSelectionState(), rng)!.version,
    );
    expect(versions).toEqual({ '1.0': 1_000 });
  });

  it('falls back to a 0-weight version (flagged) when only it has routable instances', () => {
    const pool = [inst('old', { version: '1.0', health: 'UNHEALTHY' }), inst('new', { version: '2.0' })];
    const c = selectInstance(pool, { '1.0': 100, '2.0': 0 }, newSelectionState(), createRng(3));
    expect(c).toMatchObject({ version: '2.0', fallback: true });
    expect(c!.instance.instanceId).toBe('new');
  });

  it('spreads evenly without a fallback flag when the type has no weights yet', () => {
    const rng = createRng('no-weights');
    const n = 4_000;
    const versions = tally(n, () => {
      const v = chooseVersion(undefined, new Set(['1.0', '2.0']), rng)!;
      expect(v.fallback).toBe(false);
      return v.version;
    });
    expect(Math.abs(versions['1.0'] / n - 0.5)).toBeLessThanOrEqual(0.03);
  });

  it('ignores weights of versions with no routable instance', () => {
    const rng = createRng('missing');
    const versions = tally(
      500,
      () => chooseVersion({ '1.0': 10, '2.0': 90 }, new Set(['1.0']), rng)!.version,
    );
    expect(versions).toEqual({ '1.0': 500 });
    expect(chooseVersion({ '1.0': 100 }, new Set(), rng)).toBeNull();
  });
});

describe('pickInstance', () => {
  it('least-connections (power of two choices) prefers the less loaded', () => {
    const rng = createRng('p2c');
    const s = newSelectionState();
    const pool = [inst('a', { connections: 10 }), inst('b', { connections: 2 })];
    expect(tally(100, () => pickInstance(pool, s, rng, 'k').instanceId)).toEqual({ b: 100 });
  });

  it('never picks the single most loaded of several, and favours the least loaded', () => {
    const rng = createRng('p2c-many');
    const s = newSelectionState();
    const pool = [
      inst('a', { connections: 1 }),
      inst('b', { connections: 5 }),
      inst('c', { connections: 9 }),
      inst('d', { connections: 50 }),
    ];
    const picks = tally(4_000, () => pickInstance(pool, s, rng, 'k').instanceId);
    expect(picks.d).toBeUndefined();
    // With 4 instances, the least loaded is in the random pair half of the time.
    expect(picks.a / 4_000).toBeGreaterThan(0.45);
    expect(picks.a).toBeGreaterThan(picks.b);
    expect(picks.b).toBeGreaterThan(picks.c);
  });

  it('counts load offsets set by rebalancing', () => {
    const rng = createRng('offsets');
    const s = newSelectionState();
    s.offsets.set('a', 100);
    const pool = [inst('a', { connections: 0 }), inst('b', { connections: 3 })];
    expect(effectiveLoad(pool[0], s)).toBe(100);
    expect(tally(50, () => pickInstance(pool, s, rng, 'k').instanceId)).toEqual({ b: 50 });
  });

  it('breaks ties by instance id', () => {
    const s = newSelectionState();
    const pool = [inst('z'), inst('m')];
    expect(tally(50, () => pickInstance(pool, s, createRng('tie'), 'k').instanceId)).toEqual({ m: 50 });
  });

  it('round-robin cycles through the pool in id order, per key', () => {
    const rng = createRng('rr');
    const s = newSelectionState();
    s.strategy = 'round-robin';
    const pool = [inst('c', { connections: 0 }), inst('a', { connections: 99 }), inst('b')];
    const seq = Array.from({ length: 7 }, () => pickInstance(pool, s, rng, 'ALB@1.0').instanceId);
    expect(seq).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    expect(pickInstance(pool, s, rng, 'ALB@2.0').instanceId).toBe('a');
    expect(s.cursors.get('ALB@1.0')).toBe(7);
  });

  it('returns the only instance without drawing', () => {
    const only = inst('solo');
    expect(pickInstance([only], newSelectionState(), createRng(1), 'k')).toBe(only);
  });
});
