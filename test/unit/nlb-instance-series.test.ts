import { describe, expect, it } from 'vitest';
import { INSTANCE_FIELDS, InstanceSeries } from '../../services/nlb/domain/instance-series.js';

/** A row with every field set to `base + field index` (NaN where `unknown` names a field). */
function row(base: number, unknown: string[] = []): number[] {
  return INSTANCE_FIELDS.map((f, i) => (unknown.includes(f) ? NaN : base + i));
}

const LABELS = { instance: 'alb-1' };

describe('InstanceSeries', () => {
  it('knows nothing before the first row', () => {
    const s = new InstanceSeries(4);
    expect(s.latest('cpu_percent')).toBeUndefined();
    expect(s.latestPoint('cpu_percent')).toBeUndefined();
    expect(s.query([], LABELS, 0, Infinity)).toEqual([]);
    expect(s.mean('cpu_percent', 0, Infinity)).toBeUndefined();
  });

  it('keeps each field apart and answers the newest value', () => {
    const s = new InstanceSeries(4);
    s.record(1000, row(10));
    s.record(2000, row(20));
    expect(s.latest('connections')).toBe(20);
    expect(s.latest('cpu_percent')).toBe(21);
    expect(s.latest('error_rate')).toBe(28);
    expect(s.latestPoint('requests_total')).toEqual({ tsMs: 2000, value: 25 });
  });

  it('keeps the last `capacity` rows, oldest first, after wrapping around', () => {
    const s = new InstanceSeries(3);
    for (let k = 1; k <= 5; k++) s.record(k * 1000, row(k * 10));
    expect(s.query(['connections'], LABELS, 0, Infinity)).toEqual([
      {
        name: 'connections',
        labels: LABELS,
        points: [
          { tsMs: 3000, value: 30 },
          { tsMs: 4000, value: 40 },
          { tsMs: 5000, value: 50 },
        ],
      },
    ]);
    expect(s.latest('connections')).toBe(50);
  });

  it('answers a time range, every field when no names are given, ignoring unknown names', () => {
    const s = new InstanceSeries(8);
    for (let k = 1; k <= 4; k++) s.record(k * 1000, row(k));
    const all = s.query([], LABELS, 2000, 3000);
    expect(all.map((x) => x.name)).toEqual([...INSTANCE_FIELDS]);
    expect(all.every((x) => x.points.map((p) => p.tsMs).join() === '2000,3000')).toBe(true);
    expect(s.query(['memory_mb', 'nope'], LABELS, 0, Infinity).map((x) => x.name)).toEqual(['memory_mb']);
    expect(s.query(['memory_mb'], LABELS, 5000, 6000)).toEqual([]);
  });

  it('treats non-finite values as unknown: no point, no latest', () => {
    const s = new InstanceSeries(4);
    s.record(1000, row(1));
    s.record(2000, row(2, ['requests_per_second']));
    s.record(
      3000,
      row(3).map((v, i) => (INSTANCE_FIELDS[i] === 'error_rate' ? Infinity : v)),
    );
    expect(s.latest('requests_per_second')).toBe(3 + INSTANCE_FIELDS.indexOf('requests_per_second'));
    expect(s.latest('error_rate')).toBeUndefined();
    expect(s.query(['requests_per_second'], LABELS, 0, Infinity)[0].points.map((p) => p.tsMs)).toEqual([
      1000, 3000,
    ]);
  });

  it('averages a field over a time range, skipping unknown values', () => {
    const s = new InstanceSeries(4);
    s.record(1000, row(10));
    s.record(2000, row(20, ['cpu_percent']));
    s.record(3000, row(40));
    expect(s.mean('cpu_percent', 0, Infinity)).toBe((11 + 41) / 2);
    expect(s.mean('cpu_percent', 1500, 3000)).toBe(41);
    expect(s.mean('cpu_percent', 1500, 2500)).toBeUndefined();
  });

  it('does not mix up the times and the values it keeps side by side', () => {
    // Times and values share one buffer: filling every row must not overwrite either.
    const s = new InstanceSeries(2);
    s.record(1e12, row(-1));
    s.record(1e12 + 1, row(1e9));
    const last = INSTANCE_FIELDS.at(-1)!;
    expect(s.query([last], LABELS, 0, Infinity)[0].points).toEqual([
      { tsMs: 1e12, value: -1 + INSTANCE_FIELDS.length - 1 },
      { tsMs: 1e12 + 1, value: 1e9 + INSTANCE_FIELDS.length - 1 },
    ]);
  });
});
