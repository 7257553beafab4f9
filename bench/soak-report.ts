/**
 * The soak benchmark's figures (bench/soak.ts): what one sample of a process holds, and the
 * verdict against the stated bound. Pure: no I/O, so the arithmetic can be checked on its own.
 *
 * The bound (docs/bench-soak.md says why): after the warm-up (the first 20 % of the run), a
 * process's RSS may grow by at most 20 % of its warm-up value plus 16 MB, and its open file
 * descriptors by at most 16. "Value at warm-up end" and "value at the end" are medians of the
 * three samples nearest each point, so one sample taken just before a garbage collection does
 * not decide the verdict.
 */

export const WARMUP_FRACTION = 0.2;
export const RSS_GROWTH_PCT = 20;
export const RSS_GROWTH_MB = 16;
export const FD_GROWTH = 16;
/** Samples whose median stands for "at warm-up end" and "at the end". */
export const WINDOW = 3;

/** One process at one sample. */
export interface ProcSample {
  /** Stable label: nlb, echo, alb-ctl, dblb-ctl, or the instance id for an instance process. */
  name: string;
  role: string;
  pid: number;
  rssMb: number;
  fds: number;
  /** V8 heap in use (the stack's own processes only; after a full GC with --gc). */
  heapMb?: number;
}

/** One sample of the whole stack. */
export interface Sample {
  /** Seconds since the measured run began. */
  t: number;
  procs: ProcSample[];
  http: { requests: number; errors: number; perSecond: number };
  pg: { queries: number; errors: number; perSecond: number } | null;
  controlPlane: { calls: number; errors: number };
  loadAvg1: number;
}

/** The verdict for one process. */
export interface ProcVerdict {
  name: string;
  role: string;
  pid: number;
  /** Alive at warm-up end and at the end: the bound applies. */
  bounded: boolean;
  /** Seconds of the run it was seen alive (first and last sample). */
  firstSeenS: number;
  lastSeenS: number;
  warmRssMb: number | null;
  endRssMb: number | null;
  rssGrowthMb: number | null;
  rssGrowthPct: number | null;
  rssAllowedMb: number | null;
  warmFds: number | null;
  endFds: number | null;
  fdGrowth: number | null;
  peakRssMb: number;
  peakFds: number;
  /** V8 heap in use at warm-up end and at the end (medians), when it was sampled. */
  warmHeapMb: number | null;
  endHeapMb: number | null;
  /** Least-squares RSS slope over the samples after warm-up, MB per minute (null: < 3 samples). */
  rssSlopeMbPerMin: number | null;
  pass: boolean | null;
  reason: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Least-squares slope of y over x (per unit of x); null with fewer than 3 points. */
export function slope(points: Array<[number, number]>): number | null {
  if (points.length < 3) return null;
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

/** The WINDOW samples of one process nearest to time `t` (by time distance). */
function nearest(series: Array<{ t: number; p: ProcSample }>, t: number): ProcSample[] {
  return [...series]
    .sort((a, b) => Math.abs(a.t - t) - Math.abs(b.t - t))
    .slice(0, WINDOW)
    .map((x) => x.p);
}

/** RSS an end value may reach from a warm-up value under the bound. */
export function rssAllowedMb(warmRssMb: number): number {
  return warmRssMb * (1 + RSS_GROWTH_PCT / 100) + RSS_GROWTH_MB;
}

/**
 * Judges every process seen in `samples` (keyed by name + pid, so a restarted process is a new
 * one). A process is bounded when it was sampled at or before the warm-up end and in the last
 * sample; the others (instances started or stopped by the Scale churn) are reported with their
 * peaks only.
 */
export function judge(samples: Sample[], runSeconds: number): ProcVerdict[] {
  if (samples.length === 0) return [];
  const warmEnd = runSeconds * WARMUP_FRACTION;
  const lastT = samples[samples.length - 1].t;
  const series = new Map<string, Array<{ t: number; p: ProcSample }>>();
  for (const s of samples) {
    for (const p of s.procs) {
      const key = `${p.name}#${p.pid}`;
      let list = series.get(key);
      if (!list) series.set(key, (list = []));
      list.push({ t: s.t, p });
    }
  }
  const verdicts: ProcVerdict[] = [];
  for (const list of series.values()) {
    const first = list[0];
    const last = list[list.length - 1];
    const base = {
      name: first.p.name,
      role: first.p.role,
      pid: first.p.pid,
      firstSeenS: first.t,
      lastSeenS: last.t,
      peakRssMb: Math.max(...list.map((x) => x.p.rssMb)),
      peakFds: Math.max(...list.map((x) => x.p.fds)),
    };
    const bounded = first.t <= warmEnd && last.t === lastT;
    if (!bounded) {
      verdicts.push({
        ...base,
        bounded: false,
        warmRssMb: null,
        endRssMb: null,
        rssGrowthMb: null,
        rssGrowthPct: null,
        rssAllowedMb: null,
        warmFds: null,
        endFds: null,
        fdGrowth: null,
        warmHeapMb: null,
        endHeapMb: null,
        rssSlopeMbPerMin: null,
        pass: null,
        reason: `not alive for the whole measured part (seen ${Math.round(first.t)}-${Math.round(last.t)} s): peaks only`,
      });
      continue;
    }
    const warm = nearest(list, warmEnd);
    const end = nearest(list, lastT);
    const warmRssMb = median(warm.map((p) => p.rssMb));
    const endRssMb = median(end.map((p) => p.rssMb));
    const warmFds = median(warm.map((p) => p.fds));
    const endFds = median(end.map((p) => p.fds));
    const allowed = rssAllowedMb(warmRssMb);
    const fdGrowth = endFds - warmFds;
    const rssOk = endRssMb <= allowed;
    const fdOk = fdGrowth <= FD_GROWTH;
    const problems = [
      ...(rssOk
        ? []
        : [
            `RSS ${endRssMb.toFixed(1)} MB > allowed ${allowed.toFixed(1)} MB (+${RSS_GROWTH_PCT} % + ${RSS_GROWTH_MB} MB)`,
          ]),
      ...(fdOk ? [] : [`fds grew by ${fdGrowth} > ${FD_GROWTH}`]),
    ];
    const heap = (ps: ProcSample[]) => {
      const hs = ps.map((p) => p.heapMb).filter((h): h is number => h !== undefined);
      return hs.length ? median(hs) : null;
    };
    const after = list.filter((x) => x.t >= warmEnd).map((x): [number, number] => [x.t / 60, x.p.rssMb]);
    verdicts.push({
      ...base,
      bounded: true,
      warmRssMb,
      endRssMb,
      rssGrowthMb: endRssMb - warmRssMb,
      rssGrowthPct: warmRssMb > 0 ? ((endRssMb - warmRssMb) / warmRssMb) * 100 : null,
      rssAllowedMb: allowed,
      warmFds,
      endFds,
      fdGrowth,
      warmHeapMb: heap(warm),
      endHeapMb: heap(end),
      rssSlopeMbPerMin: slope(after),
      pass: rssOk && fdOk,
      reason: problems.length ? problems.join('; ') : 'within the bound',
    });
  }
  const order = (v: ProcVerdict) => (v.bounded ? 0 : 1);
  return verdicts.sort((a, b) => order(a) - order(b) || a.firstSeenS - b.firstSeenS || a.pid - b.pid);
}

/** Right-aligned text table; the first column left-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const f1 = (x: number | null) => (x === null ? '-' : x.toFixed(1));
const signed = (x: number | null, digits = 1) =>
  x === null ? '-' : `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

/** The end-of-run table of verdicts. */
export function verdictTable(verdicts: ProcVerdict[]): string {
  const rows = verdicts.map((v) => [
    `${v.name} (${v.pid})`,
    f1(v.warmRssMb),
    f1(v.endRssMb),
    signed(v.rssGrowthMb),
    v.rssGrowthPct === null ? '-' : `${signed(v.rssGrowthPct, 0)} %`,
    f1(v.rssAllowedMb),
    v.rssSlopeMbPerMin === null ? '-' : signed(v.rssSlopeMbPerMin, 2),
    v.warmFds === null ? '-' : String(v.warmFds),
    v.endFds === null ? '-' : String(v.endFds),
    v.fdGrowth === null ? '-' : signed(v.fdGrowth, 0),
    f1(v.peakRssMb),
    String(v.peakFds),
    v.warmHeapMb === null || v.endHeapMb === null ? '-' : `${f1(v.warmHeapMb)}→${f1(v.endHeapMb)}`,
    v.pass === null ? `(${Math.round(v.firstSeenS)}-${Math.round(v.lastSeenS)} s)` : v.pass ? 'PASS' : 'FAIL',
  ]);
  return table(
    [
      'process (pid)',
      'warm MB',
      'end MB',
      'Δ MB',
      'Δ %',
      'allowed',
      'MB/min',
      'warm fd',
      'end fd',
      'Δ fd',
      'peak MB',
      'peak fd',
      'heap MB',
      'verdict',
    ],
    rows,
  );
}
