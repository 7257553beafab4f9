import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../services/shared/backoff.js';

describe('backoffDelay', () => {
  const p = { initialMs: 200, maxMs: 30_000, jitter: 0 };

  it('doubles per failure in a row from initialMs, capped at maxMs', () => {
    expect([1, 2, 3, 4, 8, 9, 10].map((a) => backoffDelay(a, p))).toEqual([
      200, 400, 800, 1600, 25_600, 30_000, 30_000,
    ]);
  });

  it('treats attempt 0 (and below) as the first, and never overflows', () => {
    expect(backoffDelay(0, p)).toBe(200);
    expect(backoffDelay(-3, p)).toBe(200);
    expect(backoffDelay(1e9, p)).toBe(30_000);
  });

  it('spreads by ±jitter around the capped delay, from the given random source', () => {
    const j = { initialMs: 1000, maxMs: 10_000, jitter: 0.2 };
    expect(backoffDelay(1, j, () => 0)).toBe(800);
    expect(backoffDelay(1, j, () => 0.5)).toBe(1000);
    expect(backoffDelay(1, j, () => 0.999999)).toBe(1200);
    expect(backoffDelay(10, j, () => 0)).toBe(8000);
    expect(backoffDelay(10, j, () => 0.999999)).toBe(12_000);
  });
});
