/**
 * Outlier ejection (DESIGN.md §2.4): an instance whose connects fail `consecutiveFailures` times
 * in a row is left out of selection for `ejectionMs`, but never more than `maxEjectedFraction` of
 * a pool (a module type's registered instances) at once. Pure: time comes in as `nowMs`.
 */

export interface OutlierPolicy {
  consecutiveFailures: number;
  ejectionMs: number;
  /** Share of a pool that may be ejected at once (0-1); floor(share × pool size) instances. */
  maxEjectedFraction: number;
}

export const DEFAULT_OUTLIER_POLICY: OutlierPolicy = {
  consecutiveFailures: 5,
  ejectionMs: 30_000,
  maxEjectedFraction: 0.5,
};

export type OutlierEvent =
  | { type: 'ejected'; instanceId: string; pool: string; untilMs: number; failures: number }
  /** The instance crossed the threshold but the pool is at its ejection cap. */
  | { type: 'cap-reached'; instanceId: string; pool: string; ejected: number; poolSize: number };

interface InstanceState {
  pool: string;
  failures: number;
  ejectedUntilMs: number;
}

export class OutlierDetector {
  private readonly state = new Map<string, InstanceState>();

  constructor(readonly policy: OutlierPolicy = DEFAULT_OUTLIER_POLICY) {}

  /** Whether new connections must skip the instance now. */
  ejected(instanceId: string, nowMs: number): boolean {
    const s = this.state.get(instanceId);
    return s !== undefined && s.ejectedUntilMs > nowMs;
  }

  /** Instances ejected now, with when each comes back. */
  ejectedInstances(nowMs: number): Array<{ instanceId: string; pool: string; untilMs: number }> {
    return [...this.state]
      .filter(([, s]) => s.ejectedUntilMs > nowMs)
      .map(([instanceId, s]) => ({ instanceId, pool: s.pool, untilMs: s.ejectedUntilMs }));
  }

  /** A connect to the instance succeeded: its failure streak ends. */
  success(instanceId: string): void {
    const s = this.state.get(instanceId);
    if (s && s.ejectedUntilMs === 0) this.state.delete(instanceId);
    else if (s) s.failures = 0;
  }

  /**
   * A connect to the instance failed. `poolSize` is the number of instances in its pool now.
   * Returns what changed, if anything.
   */
  failure(
    instanceId: string,
    pool: string,
    /** The pool's size, or how to count it (only done once a streak reaches the threshold). */
    poolSize: number | (() => number),
    nowMs: number,
  ): OutlierEvent | null {
    const s = this.state.get(instanceId) ?? { pool, failures: 0, ejectedUntilMs: 0 };
    this.state.set(instanceId, s);
    s.pool = pool;
    if (s.ejectedUntilMs > nowMs) return null; // already out (a connect that started before)
    s.failures++;
    if (s.failures < this.policy.consecutiveFailures) return null;
    const ejectedNow = [...this.state.values()].filter(
      (o) => o.pool === pool && o.ejectedUntilMs > nowMs,
    ).length;
    const size = typeof poolSize === 'function' ? poolSize() : poolSize;
    const cap = Math.floor(this.policy.maxEjectedFraction * size);
    if (ejectedNow + 1 > cap)
      return { type: 'cap-reached', instanceId, pool, ejected: ejectedNow, poolSize: size };
    s.failures = 0;
    s.ejectedUntilMs = nowMs + this.policy.ejectionMs;
    return {
      type: 'ejected',
      instanceId,
      pool,
      untilMs: s.ejectedUntilMs,
      failures: this.policy.consecutiveFailures,
    };
  }

  /** Drops what is known about an instance (it left the registry). */
  forget(instanceId: string): void {
    this.state.delete(instanceId);
  }
}
