/**
 * A fixed-memory latency histogram with log-spaced buckets (about 4 % relative error), for
 * percentiles in heartbeat stats without keeping samples.
 */
const MIN_MS = 0.01;
const GROWTH = 1.04;
const BUCKETS = Math.ceil(Math.log(600_000 / MIN_MS) / Math.log(GROWTH)) + 2;
const LOG_GROWTH = Math.log(GROWTH);

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  private n = 0;
  private sum = 0;
  private max = 0;

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.counts[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  get count(): number {
    return this.n;
  }

  get mean(): number {
    return this.n ? this.sum / this.n : 0;
  }

  /** The q-quantile (0..1) in milliseconds; 0 when empty. */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        if (i === 0) return MIN_MS;
        // Upper edge of the bucket, capped by the largest value seen.
        return Math.min(this.max, MIN_MS * GROWTH ** i);
      }
    }
    return this.max;
  }

  reset(): void {
    this.counts = new Float64Array(BUCKETS);
    this.n = 0;
    this.sum = 0;
    this.max = 0;
  }
}
