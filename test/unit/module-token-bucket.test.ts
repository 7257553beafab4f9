import { describe, expect, it } from 'vitest';
import {
  RateLimiter,
  RateLimitTable,
  targetApplies,
  type RateLimitSpec,
} from '../../services/modules/runtime/token-bucket.js';

const T0 = 1_000_000;

const limit = (over: Partial<RateLimitSpec> = {}): RateLimitSpec => ({
  limitId: 'l1',
  target: '*',
  requestsPerSecond: 0,
  requestsPerMinute: 0,
  requestsPerHour: 0,
  burstSize: 0,
  enabled: true,
  metadata: {},
  ...over,
});

/** Takes until refused (at most `max` tries); returns how many passed. */
function drain(take: () => boolean, max = 10_000): number {
  let n = 0;
  while (n < max && take()) n++;
  return n;
}

describe('RateLimiter', () => {
  it('per second: lets rate + burst through at once, then refills at the rate', () => {
    const l = new RateLimiter(limit({ requestsPerSecond: 10, burstSize: 5 }), T0);
    expect(drain(() => l.tryTake(T0))).toBe(15);
    expect(l.tryTake(T0)).toBe(false);
    expect(l.retryAfterMs(T0)).toBe(100);
    expect(l.tryTake(T0 + 99)).toBe(false);
    expect(l.tryTake(T0 + 100)).toBe(true);
    expect(l.tryTake(T0 + 100)).toBe(false);
    // Refill never goes past the capacity (rate + burst), however long the pause.
    expect(drain(() => l.tryTake(T0 + 60_000))).toBe(15);
  });

  it('per minute: refuses after the window is spent and refills slowly', () => {
    const l = new RateLimiter(limit({ requestsPerMinute: 3 }), T0);
    expect(drain(() => l.tryTake(T0))).toBe(3);
    const wait = l.retryAfterMs(T0);
    expect(wait).toBeGreaterThanOrEqual(20_000);
    expect(wait).toBeLessThanOrEqual(20_001);
    expect(l.tryTake(T0 + 19_900)).toBe(false);
    expect(l.tryTake(T0 + wait)).toBe(true);
    expect(l.tryTake(T0 + wait)).toBe(false);
    expect(drain(() => l.tryTake(T0 + 10 * 60_000))).toBe(3);
  });

  it('per hour: refuses after the window is spent and refills over the hour', () => {
    const l = new RateLimiter(limit({ requestsPerHour: 2 }), T0);
    expect(drain(() => l.tryTake(T0))).toBe(2);
    const wait = l.retryAfterMs(T0);
    expect(wait).toBeGreaterThanOrEqual(1_800_000);
    expect(wait).toBeLessThanOrEqual(1_800_001);
    expect(l.tryTake(T0 + 1_700_000)).toBe(false);
    expect(l.tryTake(T0 + wait)).toBe(true);
  });

  it('needs a token in every window, and takes none when one window is empty', () => {
    // 100/s would allow far more; the minute window of 2 is what stops it.
    const l = new RateLimiter(limit({ requestsPerSecond: 100, requestsPerMinute: 2 }), T0);
    expect(l.tryTake(T0)).toBe(true);
    expect(l.tryTake(T0 + 10)).toBe(true);
    expect(l.tryTake(T0 + 20)).toBe(false);
    // Refused requests must not have spent second-window tokens: the per-second bucket is still
    // nearly full when the minute bucket refills.
    for (let i = 0; i < 50; i++) expect(l.tryTake(T0 + 30)).toBe(false);
    const wait = l.retryAfterMs(T0 + 30);
    expect(wait).toBeGreaterThan(29_000);
    expect(wait).toBeLessThanOrEqual(30_000);
    expect(l.tryTake(T0 + 30 + wait)).toBe(true);
  });

  it('passes everything when disabled, or when no window is set', () => {
    const off = new RateLimiter(limit({ requestsPerSecond: 1, enabled: false }), T0);
    expect(drain(() => off.tryTake(T0), 500)).toBe(500);
    const none = new RateLimiter(limit(), T0);
    expect(drain(() => none.tryTake(T0), 500)).toBe(500);
    expect(none.retryAfterMs(T0)).toBe(0);
  });

  it('retryAfterMs is 0 while tokens remain', () => {
    const l = new RateLimiter(limit({ requestsPerSecond: 2 }), T0);
    expect(l.tryTake(T0)).toBe(true);
    expect(l.retryAfterMs(T0)).toBe(0);
    expect(l.tryTake(T0)).toBe(true);
    expect(l.retryAfterMs(T0)).toBe(500);
    expect(l.retryAfterMs(T0 + 200)).toBe(300);
  });
});

describe('targetApplies', () => {
  it('matches "*" and "" for anyone, and a specific target only when one of the keys is it', () => {
    expect(targetApplies('*', ['10.0.0.1'])).toBe(true);
    expect(targetApplies('', ['10.0.0.1'])).toBe(true);
    expect(targetApplies('key-a', ['10.0.0.1', 'key-a'])).toBe(true);
    expect(targetApplies('key-a', ['10.0.0.1', 'key-b'])).toBe(false);
  });
});

describe('RateLimitTable', () => {
  const perSecond1 = (over: Partial<RateLimitSpec> = {}) =>
    limit({ limitId: 'per-client', requestsPerSecond: 1, ...over });

  it('with target "*", gives every client its own bucket', () => {
    const t = new RateLimitTable();
    t.set([perSecond1()]);
    expect(t.check(['10.0.0.1'], T0)).toBeNull();
    expect(t.check(['10.0.0.1'], T0)).toEqual({ limitId: 'per-client', retryAfterMs: 1000 });
    expect(t.check(['10.0.0.2'], T0)).toBeNull();
    expect(t.check(['10.0.0.2'], T0)).not.toBeNull();
    expect(t.check(['10.0.0.1'], T0 + 1000)).toBeNull();
  });

  it('with an empty target, behaves like "*"', () => {
    const t = new RateLimitTable();
    t.set([perSecond1({ target: '' })]);
    expect(t.check(['a'], T0)).toBeNull();
    expect(t.check(['b'], T0)).toBeNull();
    expect(t.check(['a'], T0)).not.toBeNull();
  });

  it('with a specific target, applies one shared bucket to that target only', () => {
    const t = new RateLimitTable();
    t.set([limit({ limitId: 'key-a', target: 'key-a', requestsPerSecond: 2 })]);
    expect(t.check(['10.0.0.1', 'key-a'], T0)).toBeNull();
    expect(t.check(['10.0.0.2', 'key-a'], T0)).toBeNull();
    // Shared by every client presenting key-a.
    expect(t.check(['10.0.0.3', 'key-a'], T0)).toEqual({ limitId: 'key-a', retryAfterMs: 500 });
    // Others are not limited at all.
    for (let i = 0; i < 20; i++) expect(t.check(['10.0.0.1', 'key-b'], T0)).toBeNull();
  });

  it('skips disabled limits', () => {
    const t = new RateLimitTable();
    t.set([perSecond1({ enabled: false })]);
    for (let i = 0; i < 20; i++) expect(t.check(['10.0.0.1'], T0)).toBeNull();
  });

  it('set() keeps the tokens of unchanged limits and resets changed ones', () => {
    const t = new RateLimitTable();
    const other = limit({ limitId: 'other', requestsPerMinute: 1 });
    t.set([perSecond1(), other]);
    expect(t.check(['10.0.0.1'], T0)).toBeNull();
    expect(t.check(['10.0.0.1'], T0)?.limitId).toBe('per-client');

    // Same specs (new objects): still spent.
    t.set([perSecond1(), { ...other }]);
    expect(t.check(['10.0.0.1'], T0)?.limitId).toBe('per-client');

    // per-client changed: fresh bucket; "other" unchanged and spent by the first request.
    t.set([perSecond1({ burstSize: 1 }), other]);
    expect(t.check(['10.0.0.1'], T0)?.limitId).toBe('other');

    // Removing a limit removes its refusals.
    t.set([perSecond1({ burstSize: 1 })]);
    expect(t.check(['10.0.0.1'], T0)).toBeNull();
    expect(t.check(['10.0.0.1'], T0)).not.toBeNull();
  });

  it('caps buckets per limit, evicting the oldest', () => {
    const t = new RateLimitTable(2);
    t.set([perSecond1()]);
    expect(t.check(['a'], T0)).toBeNull();
    expect(t.check(['b'], T0)).toBeNull();
    expect(t.check(['a'], T0)).not.toBeNull();
    expect(t.check(['b'], T0)).not.toBeNull();
    // "c" takes a's place: a's spent bucket is forgotten, b's is kept.
    expect(t.check(['c'], T0)).toBeNull();
    expect(t.check(['b'], T0)).not.toBeNull();
    expect(t.check(['a'], T0)).toBeNull();
  });
});
