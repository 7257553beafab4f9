/**
 * Compact recent history of one instance's heartbeat figures: a fixed ring of rows (time +
 * one value per field) in one typed array. Recording is a handful of array writes, so it stays
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

/** Numbers per row: the time, then one value per field. */
const STRIDE = F + 1;

export class InstanceSeries {
  /**
   * Row k at [k × STRIDE]: time, then the fields. One typed array per instance: each one is
   * a heap object plus a separate allocation, which at 10k instances added up to megabytes.
   */
  private readonly rows: Float64Array;
  private head = 0;
  private size = 0;

  constructor(private readonly capacity = INSTANCE_SERIES_CAPACITY) {
    this.rows = new Float64Array(capacity * STRIDE);
  }

  /** Appends a row; `row` follows INSTANCE_FIELDS order; a non-finite value means "not known". */
  record(tsMs: number, row: ArrayLike<number>): void {
    const at = this.head * STRIDE;
    this.rows[at] = tsMs;
    for (let i = 0; i < F; i++) this.rows[at + 1 + i] = Number.isFinite(row[i]) ? row[i] : NaN;
    this.head = (this.head + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /** Offset of the row `ago` rows before the newest. */
  private at(ago: number): number {
    return ((this.head - 1 - ago + this.capacity * 2) % this.capacity) * STRIDE;
  }

  /** The newest value of a field, or undefined when nothing was recorded. */
  latest(field: InstanceField): number | undefined {
    if (this.size === 0) return undefined;
    const v = this.rows[this.at(0) + 1 + (INDEX.get(field) ?? 0)];
    return Number.isNaN(v) ? undefined : v;
  }

  /** The newest row's time and a field's value there, or undefined. */
  latestPoint(field: InstanceField): { tsMs: number; value: number } | undefined {
    if (this.size === 0) return undefined;
    const at = this.at(0);
    const value = this.rows[at + 1 + (INDEX.get(field) ?? 0)];
    return Number.isNaN(value) ? undefined : { tsMs: this.rows[at], value };
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
      const fi = 1 + INDEX.get(name)!;
      const points: SeriesData['points'] = [];
      for (let ago = this.size - 1; ago >= 0; ago--) {
        const at = this.at(ago);
        const tsMs = this.rows[at];
        const value = this.rows[at + fi];
        if (tsMs >= fromMs && tsMs <= toMs && !Number.isNaN(value)) points.push({ tsMs, value });
      }
      if (points.length) out.push({ name, labels, points });
    }
    return out;
  }

  /** Mean of a field over rows in [fromMs, toMs], or undefined when there are none. */
  mean(field: InstanceField, fromMs: number, toMs: number): number | undefined {
    const fi = 1 + INDEX.get(field)!;
    let sum = 0;
    let n = 0;
    for (let ago = 0; ago < this.size; ago++) {
      const at = this.at(ago);
      const tsMs = this.rows[at];
      if (tsMs < fromMs) break;
      const value = this.rows[at + fi];
      if (tsMs <= toMs && !Number.isNaN(value)) {
        sum += value;
        n++;
      }
    }
    return n ? sum / n : undefined;
  }
}
