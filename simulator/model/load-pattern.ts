/**
 * Offered load over time for one module type, as a pure function of the scenario's load spec:
 * back-to-back phases (constant, ramp, steps, diurnal sine, replayed CSV) with spikes on top.
 * Noise is applied by the caller from its seeded random source.
 */
import type { LoadSpec, Phase } from '../scenario/schema.js';

interface Segment {
  startMs: number;
  /** Infinity for a last phase without `for`. */
  lengthMs: number;
  level: (sinceStartMs: number) => number;
}

type Traces = Readonly<Record<string, ReadonlyArray<readonly [number, number]>>>;

/** Linear interpolation over (time, value) points, clamped at both ends. */
function interpolate(points: ReadonlyArray<readonly [number, number]>, t: number): number {
  if (points.length === 0) return 0;
  if (t <= points[0][0]) return points[0][1];
  for (let i = 1; i < points.length; i++) {
    const [t1, v1] = points[i];
    if (t <= t1) {
      const [t0, v0] = points[i - 1];
      return v0 + ((v1 - v0) * (t - t0)) / (t1 - t0);
    }
  }
  return points[points.length - 1][1];
}

function phaseLength(p: Phase, traces: Traces): number {
  switch (p.shape) {
    case 'steps':
      return p.levels.length * p.every;
    case 'ramp':
      return p.for;
    case 'csv': {
      const points = traces[p.file] ?? [];
      return p.for ?? (points.length ? points[points.length - 1][0] : 0);
    }
    default:
      return p.for ?? Number.POSITIVE_INFINITY;
  }
}

function phaseLevel(p: Phase, previousEnd: number, traces: Traces): (t: number) => number {
  switch (p.shape) {
    case 'constant':
      return () => p.rps;
    case 'ramp': {
      const from = p.from ?? previousEnd;
      return (t) => from + (p.to - from) * Math.min(1, t / Math.max(1, p.for));
    }
    case 'steps':
      return (t) => p.levels[Math.min(p.levels.length - 1, Math.floor(t / p.every))];
    case 'sine':
      return (t) => Math.max(0, p.mean + p.amplitude * Math.sin((2 * Math.PI * (t + p.offset)) / p.period));
    case 'csv': {
      const points = traces[p.file] ?? [];
      return (t) => interpolate(points, t) * p.scale;
    }
  }
}

/** Compiles a load spec into `rps(tMs)`, the offered requests per second before noise. */
export function compileLoad(spec: LoadSpec, traces: Traces): (tMs: number) => number {
  const segments: Segment[] = [];
  let start = 0;
  let previousEnd = 0;
  for (const p of spec.phases) {
    const lengthMs = phaseLength(p, traces);
    const level = phaseLevel(p, previousEnd, traces);
    segments.push({ startMs: start, lengthMs, level });
    if (!Number.isFinite(lengthMs)) break;
    previousEnd = level(lengthMs);
    start += lengthMs;
  }
  const base = (t: number): number => {
    for (const s of segments) {
      if (t < s.startMs + s.lengthMs) return s.level(Math.max(0, t - s.startMs));
    }
    const last = segments[segments.length - 1];
    return last ? last.level(last.lengthMs) : 0;
  };
  return (t) => {
    let rps = base(t);
    for (const sp of spec.spikes) {
      if (t >= sp.at && t < sp.at + sp.for) rps = rps * (sp.factor ?? 1) + (sp.rps ?? 0);
    }
    return Math.max(0, rps);
  };
}
