/**
 * Rate limits as token buckets: one bucket per window (second, minute, hour) that is set, each
 * refilled continuously; a request passes only when every bucket has a token. The per-second
 * bucket holds `burst` extra tokens. Time is passed in, so it runs on any clock.
 */
export interface RateLimitSpec {
  limitId: string;
  target: string;
  requestsPerSecond: number;
  requestsPerMinute: number;
  requestsPerHour: number;
  burstSize: number;
  enabled: boolean;
  metadata: Record<string, string>;
}

interface Bucket {
  capacity: number;
  ratePerMs: number;
  tokens: number;
  lastMs: number;
}

export class RateLimiter {
  private readonly buckets: Bucket[];

  constructor(
    readonly spec: RateLimitSpec,
    nowMs: number,
  ) {
    const b = (perWindow: number, windowMs: number, extra: number): Bucket => ({
      capacity: perWindow + extra,
      ratePerMs: perWindow / windowMs,
      tokens: perWindow + extra,
      lastMs: nowMs,
    });
    this.buckets = [];
    if (spec.requestsPerSecond > 0)
      this.buckets.push(b(spec.requestsPerSecond, 1000, Math.max(0, spec.burstSize)));
    if (spec.requestsPerMinute > 0) this.buckets.push(b(spec.requestsPerMinute, 60_000, 0));
    if (spec.requestsPerHour > 0) this.buckets.push(b(spec.requestsPerHour, 3_600_000, 0));
  }

  private refill(nowMs: number): void {
    for (const k of this.buckets) {
      const dt = Math.max(0, nowMs - k.lastMs);
      k.tokens = Math.min(k.capacity, k.tokens + dt * k.ratePerMs);
      k.lastMs = nowMs;
    }
  }

  /** Takes a token from every bucket, or none; returns whether the request may pass. */
  tryTake(nowMs: number): boolean {
    if (!this.spec.enabled) return true;
    this.refill(nowMs);
    if (this.buckets.some((k) => k.tokens < 1)) return false;
    for (const k of this.buckets) k.tokens -= 1;
    return true;
  }

  /** Milliseconds until a request would pass (for Retry-After). */
  retryAfterMs(nowMs: number): number {
    this.refill(nowMs);
    let wait = 0;
    for (const k of this.buckets) if (k.tokens < 1) wait = Math.max(wait, (1 - k.tokens) / k.ratePerMs);
    return Math.ceil(wait);
  }
}

/** Whether a limit's target applies to a client address (or API key / route id given in `keys`). */
export function targetApplies(target: string, keys: readonly string[]): boolean {
  if (!target || target === '*') return true;
  return keys.includes(target);
}

/**
 * All of a module's limits. A limit whose target is "*" gives each client key its own bucket;
 * a limit with a specific target has one bucket for that target; `metadata.route` restricts a
 * limit to requests on that route. Buckets per limit are capped
 * (least recently created out) so that many clients cannot grow memory without bound.
 */
export class RateLimitTable {
  private readonly limits = new Map<string, { spec: RateLimitSpec; buckets: Map<string, RateLimiter> }>();

  constructor(private readonly maxKeysPerLimit = 10_000) {}

  /** How many limits are set (none: every request passes without reading the clock). */
  get size(): number {
    return this.limits.size;
  }

  /** Replaces the set of limits; buckets of unchanged limits keep their tokens. */
  set(specs: readonly RateLimitSpec[]): void {
    const next = new Map<string, { spec: RateLimitSpec; buckets: Map<string, RateLimiter> }>();
    for (const s of specs) {
      const prev = this.limits.get(s.limitId);
      const same = prev && JSON.stringify(prev.spec) === JSON.stringify(s);
      next.set(s.limitId, same ? prev : { spec: s, buckets: new Map() });
    }
    this.limits.clear();
    for (const [k, v] of next) this.limits.set(k, v);
  }

  /**
   * Checks a request from `keys` (client address first, then API key, route id…). Returns null
   * when it may pass, or the limit that refused it and when to retry.
   */
  check(keys: readonly string[], nowMs: number): { limitId: string; retryAfterMs: number } | null {
    for (const { spec, buckets } of this.limits.values()) {
      if (!spec.enabled || !targetApplies(spec.target, keys)) continue;
      // metadata.route scopes a limit to one route (keys carry "route:<id>" for HTTP modules).
      if (spec.metadata.route && !keys.includes(`route:${spec.metadata.route}`)) continue;
      const key = !spec.target || spec.target === '*' ? (keys[0] ?? '') : spec.target;
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= this.maxKeysPerLimit) buckets.delete(buckets.keys().next().value as string);
        b = new RateLimiter(spec, nowMs);
        buckets.set(key, b);
      }
      if (!b.tryTake(nowMs)) return { limitId: spec.limitId, retryAfterMs: b.retryAfterMs(nowMs) };
    }
    return null;
  }
}
