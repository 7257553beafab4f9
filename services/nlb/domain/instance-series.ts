/**
 * Compact recent history of one instance's heartbeat figures: a fixed ring of rows (time +
 * one value per field) in two typed arrays. Recording is a handful of array writes, so it stays
 * cheap at tens of thousands of heartbeats per second; memory per instance is fixed.
 */
import type { SeriesData } from './metrics-store.js';

/** The figures kept per heartbeat, in row order. */
export const INSTANCE_FIELDS = [
  'connections',
  'cpu_percent',
  'memory_mb',
  'latency_p99_ms',
  'latency_avg_ms',
  'requests_total',
  'requests_failed_total',
  'requests_per_second',
  'error_rate',
] as const;
export type InstanceField = (typeof INSTANCE_FIELDS)[number];

const F = INSTANCE_FIELDS.length;
const INDEX = new Map<string, number>(INSTANCE_FIELDS.map((f, i) => [f, i]));

/** Rows kept per instance (32 × 10 s heartbeats ≈ 5 minutes). */
export const INSTANCE_SERIES_CAPACITY = 32;

export class InstanceSeries {
  private readonly ts: Float64Array;
  private readonly values: Float64Array;
  private head = 0;
  private size = 0;

  constructor(private readonly capacity = INSTANCE_SERIES_CAPACITY) {
    this.ts = new Float64Array(capacity);
    this.values = new Float64Array(capacity * F);
  }

  /** Appends a row; `row` follows INSTANCE_FIELDS order; a non-finite value means "not known". */
  record(tsMs: number, row: ArrayLike<number>): void {
    const k = this.head;
    this.ts[k] = tsMs;
    for (let i = 0; i < F; i++) this.values[k * F + i] = Number.isFinite(row[i]) ? row[i] : NaN;
    this.head = (k + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  private slot(ago: number): number {
    return (this.head - 1 - ago + this.capacity * 2) % this.capacity;
  }

  /** The newest value of a field, or undefined when nothing was recorded. */
  latest(field: InstanceField): number | undefined {
    if (this.size === 0) return undefined;
    const v = this.values[this.slot(0) * F + (INDEX.get(field) ?? 0)];
    return Number.isNaN(v) ? undefined : v;
  }

  /** The newest row's time and a field's value there, or undefined. */
  latestPoint(field: InstanceField): { tsMs: number; value: number } | undefined {
    if (this.size === 0) return undefined;
    const k = this.slot(0);
    const value = this.values[k * F + (INDEX.get(field) ?? 0)];
    return Number.isNaN(value) ? undefined : { tsMs: this.ts[k], value };
  }

  /** Series for the named fields (all when empty) with points in [fromMs, toMs]. */
  query(
    names: readonly string[],
    labels: Record<string, string>,
    fromMs: number,
    toMs: number,
  ): SeriesData[] {
    const fields = names.length ? names.filter((n) => INDEX.has(n)) : [...INSTANCE_FIELDS];
    const out: SeriesData[] = [];
    for (const name of fields) {
      const fi = INDEX.get(name)!;
      const points: SeriesData['points'] = [];
      for (let ago = this.size - 1; ago >= 0; ago--) {
        const k = this.slot(ago);
        const value = this.values[k * F + fi];
        if (this.ts[k] >= fromMs && this.ts[k] <= toMs && !Number.isNaN(value))
          points.push({ tsMs: this.ts[k], value });
      }
      if (points.length) out.push({ name, labels, points });
    }
    return out;
  }

  /** Mean of a field over rows in [fromMs, toMs], or undefined when there are none. */
  mean(field: InstanceField, fromMs: number, toMs: number): number | undefined {
    const fi = INDEX.get(field)!;
    let sum = 0;
    let n = 0;
    for (let ago = 0; ago < this.size; ago++) {
      const k = this.slot(ago);
      if (this.ts[k] < fromMs) break;
      const value = this.values[k * F + fi];
      if (this.ts[k] <= toMs && !Number.isNaN(value)) {
        sum += value;
        n++;
      }
    }
    return n ? sum / n : undefined;
  }
}
