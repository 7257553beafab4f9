import { describe, expect, it } from 'vitest';
import {
  DEFAULT_METRICS_OPTIONS,
  MetricsStore,
  seriesId,
  type MetricsStoreOptions,
} from '../../services/nlb/domain/metrics-store.js';

/** 10 ms buckets, 3 kept at full resolution, then 30 ms buckets, 2 kept. */
const SMALL: MetricsStoreOptions = {
  resolutionMs: 10,
  recentPoints: 3,
  coarseMs: 30,
  coarsePoints: 2,
  maxSeries: 100,
};
const L = { instance: 'alb-1' };
const points = (s: MetricsStore, from = 0, to = Number.MAX_SAFE_INTEGER, name = 'cpu') =>
  s.query([name], {}, from, to).flatMap((d) => d.points.map((p) => [p.tsMs, p.value]));

describe('seriesId', () => {
  it('is independent of label order', () => {
    expect(seriesId('cpu', { b: '2', a: '1' })).toBe('cpu{a=1,b=2}');
    expect(seriesId('cpu', { a: '1', b: '2' })).toBe(seriesId('cpu', { b: '2', a: '1' }));
    expect(seriesId('up', {})).toBe('up{}');
  });
});

describe('MetricsStore recent ring', () => {
  it('buckets samples by resolution and averages within a bucket', () => {
    const s = new MetricsStore(SMALL);
    s.record('cpu', L, 10, 100);
    s.record('cpu', L, 20, 104);
    s.record('cpu', L, 60, 109);
    s.record('cpu', L, 5, 110);
    expect(points(s)).toEqual([
      [100, 30],
      [110, 5],
    ]);
  });

  it('drops a late sample for a bucket that is already closed', () => {
    const s = new MetricsStore(SMALL);
    s.record('cpu', L, 1, 120);
    s.record('cpu', L, 99, 100);
    expect(points(s)).toEqual([[120, 1]]);
  });

  it('ignores non-finite values without creating a series', () => {
    const s = new MetricsStore(SMALL);
    for (const v of [NaN, Infinity, -Infinity]) s.record('cpu', L, v, 100);
    expect(s.seriesCount).toBe(0);
    s.record('cpu', L, 7, 100);
    s.record('cpu', L, NaN, 101);
    expect(points(s)).toEqual([[100, 7]]);
  });
});

describe('MetricsStore downsampling', () => {
  it('moves overflow into coarse buckets (averaged) and queries them before the recent points', () => {
    const s = new MetricsStore(SMALL);
    // Buckets 0..60 with values 1..7; recent keeps the last 3 (40, 50, 60).
    for (let i = 0; i <= 6; i++) s.record('cpu', L, i + 1, i * 10);
    // 0, 10, 20 → coarse bucket 0 (avg 2); 30 → coarse bucket 30 (4).
    expect(points(s)).toEqual([
      [0, 2],
      [30, 4],
      [40, 5],
      [50, 6],
      [60, 7],
    ]);
  });

  it('keeps at most coarsePoints coarse buckets', () => {
    const s = new MetricsStore(SMALL);
    for (let i = 0; i <= 12; i++) s.record('cpu', L, i, i * 10);
    // recent: 100, 110, 120. coarse: buckets 60 (60,70,80 → avg 7) and 90 (9); 0 and 30 fell out.
    expect(points(s)).toEqual([
      [60, 7],
      [90, 9],
      [100, 10],
      [110, 11],
      [120, 12],
    ]);
  });

  it('returns points within [from, to] only', () => {
    const s = new MetricsStore(SMALL);
    for (let i = 0; i <= 6; i++) s.record('cpu', L, i + 1, i * 10);
    expect(points(s, 40, 50)).toEqual([
      [40, 5],
      [50, 6],
    ]);
    expect(points(s, 0, 35)).toEqual([
      [0, 2],
      [30, 4],
    ]);
    expect(points(s, 1_000, 2_000)).toEqual([]);
    expect(s.query(['cpu'], {}, 1_000, 2_000)).toEqual([]);
  });
});

describe('MetricsStore query, latest and drop', () => {
  function three() {
    const s = new MetricsStore(SMALL);
    s.record('cpu', { instance: 'a', module_type: 'ALB' }, 1, 100);
    s.record('cpu', { instance: 'b', module_type: 'ALB' }, 2, 100);
    s.record('cpu', { instance: 'c', module_type: 'DBLB' }, 3, 100);
    s.record('mem', { instance: 'a', module_type: 'ALB' }, 4, 100);
    s.record('mem', { instance: 'a', module_type: 'ALB' }, 5, 110);
    return s;
  }

  it('selects by name (empty = all) and by labels', () => {
    const s = three();
    expect(s.query(['cpu'], { module_type: 'ALB' }, 0, 1_000).map((d) => d.labels.instance)).toEqual([
      'a',
      'b',
    ]);
    expect(s.query([], { instance: 'a' }, 0, 1_000).map((d) => d.name)).toEqual(['cpu', 'mem']);
    expect(s.names()).toEqual(['cpu', 'mem']);
  });

  it('latest gives the newest point of each matching series', () => {
    const s = three();
    expect(s.latest(['mem'], {})).toEqual([
      { name: 'mem', labels: { instance: 'a', module_type: 'ALB' }, point: { tsMs: 110, value: 5 } },
    ]);
    expect(s.latest(['cpu'], { module_type: 'DBLB' }).map((x) => x.point.value)).toEqual([3]);
    expect(s.latest(['nothing'], {})).toEqual([]);
  });

  it('drop removes every series whose labels include the match', () => {
    const s = three();
    expect(s.drop({ instance: 'a' })).toBe(2);
    expect(s.seriesCount).toBe(3 - 1);
    expect(s.query([], {}, 0, 1_000).map((d) => d.labels.instance)).toEqual(['b', 'c']);
    expect(s.drop({ instance: 'zzz' })).toBe(0);
  });

  it('keeps its own copy of the labels', () => {
    const s = new MetricsStore(SMALL);
    const labels = { instance: 'a' };
    s.record('cpu', labels, 1, 100);
    labels.instance = 'changed';
    expect(s.query(['cpu'], {}, 0, 1_000)[0].labels).toEqual({ instance: 'a' });
  });
});

describe('MetricsStore series cap', () => {
  it('evicts the least recently written series when full', () => {
    const s = new MetricsStore({ ...SMALL, maxSeries: 2 });
    s.record('m', { i: 'a' }, 1, 100);
    s.record('m', { i: 'b' }, 1, 100);
    s.record('m', { i: 'a' }, 2, 110); // a is now the most recent
    s.record('m', { i: 'c' }, 1, 120);
    expect(s.seriesCount).toBe(2);
    expect(s.query(['m'], {}, 0, 1_000).map((d) => d.labels.i)).toEqual(['a', 'c']);
  });

  it('never holds more than maxSeries over many writes', () => {
    const s = new MetricsStore({ ...SMALL, maxSeries: 5 });
    for (let i = 0; i < 50; i++) s.record('m', { i: String(i) }, i, i * 10);
    expect(s.seriesCount).toBe(5);
    expect(s.query(['m'], {}, 0, 1_000).map((d) => d.labels.i)).toEqual(['45', '46', '47', '48', '49']);
  });

  it('has bounded defaults', () => {
    expect(DEFAULT_METRICS_OPTIONS).toEqual({
      resolutionMs: 10_000,
      recentPoints: 360,
      coarseMs: 300_000,
      coarsePoints: 288,
      maxSeries: 50_000,
    });
  });
});
