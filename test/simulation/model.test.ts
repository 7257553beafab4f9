/** The load model's pure parts: offered load over time and an instance's response curve. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_PROFILE, NO_MODIFIERS, resolveProfile, respond } from '../../simulator/model/fake-model.js';
import { compileLoad } from '../../simulator/model/load-pattern.js';
import type { LoadSpec } from '../../simulator/scenario/schema.js';

const spec = (phases: LoadSpec['phases'], spikes: LoadSpec['spikes'] = []): LoadSpec => ({
  type: 'ALB',
  noise: 0,
  phases,
  spikes,
});
const m = 60_000;

describe('offered load', () => {
  it('runs phases back to back, ramps from where the last one ended, and holds the last level', () => {
    const rps = compileLoad(
      spec([
        { shape: 'constant', rps: 100, for: 5 * m },
        { shape: 'ramp', to: 300, for: 10 * m },
      ]),
      {},
    );
    expect([0, 5 * m, 10 * m, 15 * m, 60 * m].map(rps)).toEqual([100, 100, 200, 300, 300]);
  });

  it('walks steps, swings a sine and replays a CSV trace (interpolated, scaled)', () => {
    const steps = compileLoad(spec([{ shape: 'steps', levels: [10, 20, 40], every: m }]), {});
    expect([0, m, 2.5 * m, 10 * m].map(steps)).toEqual([10, 20, 40, 40]);
    const sine = compileLoad(
      spec([{ shape: 'sine', mean: 100, amplitude: 50, period: 4 * m, offset: 0 }]),
      {},
    );
    expect([0, m, 2 * m, 3 * m].map((t) => Math.round(sine(t)))).toEqual([100, 150, 100, 50]);
    const csv = compileLoad(spec([{ shape: 'csv', file: 't.csv', scale: 2 }]), {
      't.csv': [
        [0, 10],
        [m, 30],
      ],
    });
    expect([0, m / 2, m, 5 * m].map(csv)).toEqual([20, 40, 60, 60]);
  });

  it('adds or multiplies spikes for their window only', () => {
    const rps = compileLoad(
      spec(
        [{ shape: 'constant', rps: 100 }],
        [
          { at: m, for: m, rps: 50 },
          { at: 3 * m, for: m, factor: 3 },
        ],
      ),
      {},
    );
    expect([0, m, 2 * m, 3 * m, 4 * m].map(rps)).toEqual([100, 150, 100, 300, 100]);
  });
});

describe('instance response', () => {
  const p = { ...DEFAULT_PROFILE, noise: 0 };
  it('is idle at no load and linear in CPU up to capacity', () => {
    const idle = respond(p, 0, NO_MODIFIERS, () => 0);
    expect(idle).toMatchObject({ cpuPercent: 5, meanLatencyMs: 20, connections: 0 });
    expect(idle.errorFraction).toBeCloseTo(0.001);
    const half = respond(p, 50, NO_MODIFIERS, () => 0);
    expect(half.cpuPercent).toBeCloseTo(52.5);
    expect(half.meanLatencyMs).toBeCloseTo(20 * (1 + 3 * 0.0625));
    expect(half.connections).toBeCloseTo(50 * (half.meanLatencyMs / 1000));
  });

  it('degrades past capacity: CPU saturates, the excess fails, latency climbs', () => {
    const r = respond(p, 200, NO_MODIFIERS, () => 0);
    expect(r.cpuPercent).toBe(100);
    expect(r.errorFraction).toBeCloseTo(1 - 0.999 * 0.5);
    expect(r.meanLatencyMs).toBeCloseTo(20 * (1 + 3 * 16));
  });

  it('applies fault modifiers and picks profiles by type and version (later rules win)', () => {
    const r = respond(p, 10, { errorRateAdd: 0.05, latencyAddMs: 100, latencyFactor: 2 }, () => 0);
    expect(r.errorFraction).toBeCloseTo(0.051);
    expect(r.meanLatencyMs).toBeCloseTo(20 * (1 + 3 * 0.0001) * 2 + 100);
    const rules = [
      { match: { type: 'ALB' as const }, capacityRps: 50 },
      { match: { type: 'ALB' as const, version: '2.0' }, errorRate: 0.1 },
    ];
    expect(resolveProfile(rules, 'ALB', '2.0')).toMatchObject({ capacityRps: 50, errorRate: 0.1 });
    expect(resolveProfile(rules, 'ALB', '1.0')).toMatchObject({ capacityRps: 50, errorRate: 0.001 });
    expect(resolveProfile(rules, 'DBLB', '2.0').capacityRps).toBe(100);
  });
});
