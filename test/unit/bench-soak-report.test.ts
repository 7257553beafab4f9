import { describe, expect, it } from 'vitest';
import { judge, median, rssAllowedMb, slope, type ProcSample, type Sample } from '../../bench/soak-report.js';

/** A run of `n` samples every 10 s; `procs(t)` gives the processes alive at time t. */
function run(n: number, procs: (t: number) => ProcSample[]): Sample[] {
  return Array.from({ length: n }, (_, i) => ({
    t: i * 10,
    procs: procs(i * 10),
    http: { requests: 0, errors: 0, perSecond: 0 },
    pg: null,
    controlPlane: { calls: 0, errors: 0 },
    loadAvg1: 0,
  }));
}

const proc = (name: string, pid: number, rssMb: number, fds: number): ProcSample => ({
  name,
  role: name,
  pid,
  rssMb,
  fds,
});

describe('soak report', () => {
  it('median, slope and the RSS allowance', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(
      slope([
        [0, 1],
        [1, 3],
        [2, 5],
      ]),
    ).toBeCloseTo(2);
    expect(
      slope([
        [0, 1],
        [1, 3],
      ]),
    ).toBeNull();
    expect(rssAllowedMb(100)).toBe(136);
  });

  it('passes a flat process and fails one whose RSS keeps growing after warm-up', () => {
    // 100 s run: warm-up ends at 20 s; 11 samples 0..100 s.
    const samples = run(11, (t) => [
      proc('flat', 1, 80 + (t % 20 === 0 ? 2 : 0), 30),
      proc('leaky', 2, 50 + t, 30),
    ]);
    const v = judge(samples, 100);
    const flat = v.find((x) => x.name === 'flat')!;
    const leaky = v.find((x) => x.name === 'leaky')!;
    expect(flat.pass).toBe(true);
    expect(flat.warmRssMb).toBe(80);
    // leaky: warm-up value = median of 10, 20, 30 s = 70 MB; end = median of 80, 90, 100 s = 140 MB.
    expect(leaky.warmRssMb).toBe(70);
    expect(leaky.endRssMb).toBe(140);
    expect(leaky.rssAllowedMb).toBe(100);
    expect(leaky.pass).toBe(false);
    expect(leaky.reason).toMatch(/RSS 140\.0 MB > allowed 100\.0 MB/);
    expect(leaky.rssSlopeMbPerMin).toBeCloseTo(60);
  });

  it('fails a process whose fds grow by more than 16, and one spike does not decide', () => {
    const samples = run(11, (t) => [
      proc('fdleak', 1, 60, 20 + Math.floor(t / 3)),
      // One sample at the end with many fds open (a burst of connections) is outvoted by the median.
      proc('spike', 2, 60, t === 100 ? 200 : 20),
    ]);
    const v = judge(samples, 100);
    expect(v.find((x) => x.name === 'fdleak')!.pass).toBe(false);
    expect(v.find((x) => x.name === 'fdleak')!.reason).toMatch(/fds grew by 24 > 16/);
    expect(v.find((x) => x.name === 'spike')!.pass).toBe(true);
  });

  it('reports processes not alive for the whole measured part with peaks only', () => {
    const samples = run(11, (t) => [
      proc('nlb', 1, 90, 30),
      ...(t >= 30 && t <= 50 ? [proc('alb-2', 7, 70, 25)] : []),
      // Restarted under the same name: a new pid is a new process.
      proc('echo', t < 50 ? 3 : 4, 40, 10),
    ]);
    const v = judge(samples, 100);
    const scaled = v.find((x) => x.name === 'alb-2')!;
    expect(scaled.bounded).toBe(false);
    expect(scaled.pass).toBeNull();
    expect(scaled.peakRssMb).toBe(70);
    expect(v.filter((x) => x.name === 'echo').map((x) => x.bounded)).toEqual([false, false]);
    expect(v.find((x) => x.name === 'nlb')!.pass).toBe(true);
    expect(v[0].bounded).toBe(true);
  });
});
