/**
 * Exponential backoff, the one formula every retry loop uses (registration with the NLB, the
 * controller's instance restarts, the Manager rate-limit push, the Kubernetes watch): the delay
 * doubles per failure in a row from `initialMs`, is capped at `maxMs`, then spread by ±`jitter`
 * so that peers that failed together do not all retry in the same instant.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Relative spread, 0–1 (0.2 = ±20 %); 0 = none. */
  jitter: number;
}

/**
 * The delay before retry number `attempt` (1 = the first retry after one failure). `random`
 * returns [0, 1) (Math.random, or a seeded generator in tests and the simulator).
 */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  // 2 ** 30 × any sane initial is far past any cap: the exponent stops there.
  const base = Math.min(p.maxMs, p.initialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  if (p.jitter <= 0) return base;
  return Math.round(base * (1 - p.jitter + 2 * p.jitter * random()));
}
