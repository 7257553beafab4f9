/**
 * A bounded in-memory time-series store. Each series keeps two fixed-size rings: recent points
 * at full resolution, and older points downsampled (averaged) into coarse buckets. Memory per
 * series is fixed; the number of series is capped, least recently written first out.
 */
export interface Point {
  tsMs: number;
  value: number;
}

export interface SeriesKey {
  name: string;
  labels: Record<string, string>;
}

export interface SeriesData extends SeriesKey {
  points: Point[];
}

export interface MetricsStoreOptions {
  /** Full-resolution bucket width. */
  resolutionMs: number;
  /** Buckets kept at full resolution. */
  recentPoints: number;
  /** Coarse bucket width (a multiple of resolutionMs). */
  coarseMs: number;
  /** Coarse buckets kept. */
  coarsePoints: number;
  /** Series kept at most. */
  maxSeries: number;
}

export const DEFAULT_METRICS_OPTIONS: MetricsStoreOptions = {
  resolutionMs: 10_000,
  recentPoints: 360,
  coarseMs: 300_000,
  coarsePoints: 288,
  maxSeries: 50_000,
};

/** A fixed-capacity ring of (bucket start, sum, count). */
class Ring {
  private readonly ts: Float64Array;
  private readonly sum: Float64Array;
  private readonly cnt: Uint32Array;
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.ts = new Float64Array(capacity);
    this.sum = new Float64Array(capacity);
    this.cnt = new Uint32Array(capacity);
  }

  /** Adds to the bucket starting at `bucket`; returns the bucket pushed out, if any. */
  add(bucket: number, value: number): Point | null {
    if (this.size > 0) {
      const last = (this.head - 1 + this.capacity) % this.capacity;
      if (this.ts[last] === bucket) {
        this.sum[last] += value;
        this.cnt[last] += 1;
        return null;
      }
      if (bucket < this.ts[last]) return null; // out-of-order sample for a closed bucket: dropped
    }
    let evicted: Point | null = null;
    if (this.size === this.capacity) {
      evicted = { tsMs: this.ts[this.head], value: this.sum[this.head] / this.cnt[this.head] };
    } else {
      this.size++;
    }
    this.ts[this.head] = bucket;
    this.sum[this.head] = value;
    this.cnt[this.head] = 1;
    this.head = (this.head + 1) % this.capacity;
    return evicted;
  }

  points(fromMs: number, toMs: number): Point[] {
    const out: Point[] = [];
    const start = (this.head - this.size + this.capacity) % this.capacity;
    for (let i = 0; i < this.size; i++) {
      const k = (start + i) % this.capacity;
      if (this.ts[k] >= fromMs && this.ts[k] <= toMs)
        out.push({ tsMs: this.ts[k], value: this.sum[k] / this.cnt[k] });
    }
    return out;
  }

  latest(): Point | null {
    if (this.size === 0) return null;
    const k = (this.head - 1 + this.capacity) % this.capacity;
    return { tsMs: this.ts[k], value: this.sum[k] / this.cnt[k] };
  }
}

interface Series extends SeriesKey {
  recent: Ring;
  coarse: Ring;
  lastWriteMs: number;
}

/** Canonical string for a series key. */
export function seriesId(name: string, labels: Record<string, string>): string {
  const ls = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
  return `${name}{${ls}}`;
}

export class MetricsStore {
  private readonly series = new Map<string, Series>();

  constructor(private readonly opts: MetricsStoreOptions = DEFAULT_METRICS_OPTIONS) {}

  get seriesCount(): number {
    return this.series.size;
  }

  /** Records one sample. */
  record(name: string, labels: Record<string, string>, value: number, tsMs: number): void {
    if (!Number.isFinite(value)) return;
    const id = seriesId(name, labels);
    let s = this.series.get(id);
    if (!s) {
      if (this.series.size >= this.opts.maxSeries) this.evictOldest();
      s = {
        name,
        labels: { ...labels },
        recent: new Ring(this.opts.recentPoints),
        coarse: new Ring(this.opts.coarsePoints),
        lastWriteMs: tsMs,
      };
      this.series.set(id, s);
    } else {
      // Refresh insertion order so that eviction removes the least recently written series.
      this.series.delete(id);
      this.series.set(id, s);
    }
    s.lastWriteMs = tsMs;
    const out = s.recent.add(tsMs - (tsMs % this.opts.resolutionMs), value);
    if (out) s.coarse.add(out.tsMs - (out.tsMs % this.opts.coarseMs), out.value);
  }

  private evictOldest(): void {
    const first = this.series.keys().next();
    if (!first.done) this.series.delete(first.value);
  }

  /** Removes every series whose labels include all of `match`. */
  drop(match: Record<string, string>): number {
    let n = 0;
    for (const [id, s] of this.series) {
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) {
        this.series.delete(id);
        n++;
      }
    }
    return n;
  }

  /** Series matching names (empty = all) and labels, with points in [fromMs, toMs]. */
  query(names: readonly string[], match: Record<string, string>, fromMs: number, toMs: number): SeriesData[] {
    const out: SeriesData[] = [];
    const wanted = names.length ? new Set(names) : null;
    for (const s of this.series.values()) {
      if (wanted && !wanted.has(s.name)) continue;
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      const recent = s.recent.points(fromMs, toMs);
      const firstRecent = recent[0]?.tsMs ?? Infinity;
      const coarse = s.coarse.points(fromMs, toMs).filter((p) => p.tsMs < firstRecent);
      const points = [...coarse, ...recent];
      if (points.length) out.push({ name: s.name, labels: s.labels, points });
    }
    return out;
  }

  /** The newest point of each matching series. */
  latest(names: readonly string[], match: Record<string, string>): Array<SeriesKey & { point: Point }> {
    const out: Array<SeriesKey & { point: Point }> = [];
    const wanted = names.length ? new Set(names) : null;
    for (const s of this.series.values()) {
      if (wanted && !wanted.has(s.name)) continue;
      if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
      const p = s.recent.latest();
      if (p) out.push({ name: s.name, labels: s.labels, point: p });
    }
    return out;
  }

  /** Names of all series. */
  names(): string[] {
    return [...new Set([...this.series.values()].map((s) => s.name))].sort();
  }
}
