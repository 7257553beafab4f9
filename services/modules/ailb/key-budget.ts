/**
 * Per-caller budgets of the AILB: requests per minute and tokens per minute as continuously
 * refilled buckets. A request is admitted while the token bucket is above zero; its actual
 * tokens (known only when the response ends) are taken afterwards, so a large answer can push
 * the bucket below zero and hold the caller off until it refills. Time is passed in. Pure.
 */

export interface BudgetLimits {
  tokensPerMinute: number;
  requestsPerMinute: number;
}

export type Admission = { ok: true } | { ok: false; limit: 'tokens' | 'requests'; retryAfterMs: number };

export class KeyBudget {
  private tokens: number;
  private requests: number;
  private lastMs: number;

  constructor(
    readonly limits: BudgetLimits,
    nowMs: number,
  ) {
    this.tokens = limits.tokensPerMinute;
    this.requests = limits.requestsPerMinute;
    this.lastMs = nowMs;
  }

  private refill(nowMs: number): void {
    const dt = Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    const l = this.limits;
    if (l.tokensPerMinute > 0)
      this.tokens = Math.min(l.tokensPerMinute, this.tokens + (dt * l.tokensPerMinute) / 60_000);
    if (l.requestsPerMinute > 0)
      this.requests = Math.min(l.requestsPerMinute, this.requests + (dt * l.requestsPerMinute) / 60_000);
  }

  /** Takes one request if both budgets allow it now. */
  admit(nowMs: number): Admission {
    this.refill(nowMs);
    const l = this.limits;
    if (l.tokensPerMinute > 0 && this.tokens <= 0) {
      // Until the bucket is back above zero (at least one token).
      const ms = ((1 - this.tokens) * 60_000) / l.tokensPerMinute;
      return { ok: false, limit: 'tokens', retryAfterMs: Math.ceil(ms) };
    }
    if (l.requestsPerMinute > 0) {
      if (this.requests < 1) {
        const ms = ((1 - this.requests) * 60_000) / l.requestsPerMinute;
        return { ok: false, limit: 'requests', retryAfterMs: Math.ceil(ms) };
      }
      this.requests -= 1;
    }
    return { ok: true };
  }

  /** Takes the tokens a finished request used. */
  consume(tokens: number, nowMs: number): void {
    this.refill(nowMs);
    if (this.limits.tokensPerMinute > 0) this.tokens -= tokens;
  }

  /** Tokens left now (negative while in debt). */
  tokensLeft(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }
}

/** Budgets by caller, capped in number (the oldest go first). */
export class BudgetTable {
  private readonly budgets = new Map<string, KeyBudget>();

  constructor(private readonly maxKeys = 10_000) {}

  /** The caller's budget under `limits` (a new one when the limits changed). */
  get(key: string, limits: BudgetLimits, nowMs: number): KeyBudget {
    let b = this.budgets.get(key);
    if (
      !b ||
      b.limits.tokensPerMinute !== limits.tokensPerMinute ||
      b.limits.requestsPerMinute !== limits.requestsPerMinute
    ) {
      if (!b && this.budgets.size >= this.maxKeys)
        this.budgets.delete(this.budgets.keys().next().value as string);
      b = new KeyBudget(limits, nowMs);
      this.budgets.set(key, b);
    }
    return b;
  }
}
