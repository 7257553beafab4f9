/**
 * Shipped scenarios that pin NLB and controller behaviour the simulator once found wrong: a
 * restarted autoscaler waits a whole stabilization window before scaling down
 * (nlb-restart-after-peak), and a controller starts a step's instances together
 * (slow-boot-scale-up). crash-storm (scenarios-faults) pins that dead registrations awaiting
 * eviction do not count as instances.
 */
import { describe, expect, it } from 'vitest';
import { expectGolden, failures, run } from './support.js';

describe.each(['nlb-restart-after-peak', 'slow-boot-scale-up'])('scenario %s', (name) => {
  it('passes with its seed and matches the golden summary', { timeout: 180_000 }, async () => {
    const r = await run(name);
    expect(failures(r)).toEqual([]);
    expect(r.passed).toBe(true);
    expectGolden(name, r);
  });
});

describe('what the fixes change, end to end', () => {
  it(
    'crash-storm: the controller is never asked for more than the load needs',
    { timeout: 180_000 },
    async () => {
      const r = await run('crash-storm', { seed: 3 });
      expect(failures(r)).toEqual([]);
      const asked = r.samples.map((s) => s.types.ALB?.desiredInstances ?? 0);
      expect(Math.max(...asked)).toBeLessThanOrEqual(10);
      // No scaling to the bounds because of dead registrations.
      expect(r.timeline.filter((e) => e.kind === 'scaling' && /outside the bounds/.test(e.message))).toEqual(
        [],
      );
    },
  );

  it(
    'nlb-restart-after-peak: no scale-down before a whole window after the restart',
    { timeout: 180_000 },
    async () => {
      const r = await run('nlb-restart-after-peak', { seed: 5 });
      expect(failures(r)).toEqual([]);
      const downs = r.timeline.filter((e) => e.kind === 'scaling' && e.data?.action === 'scale-down');
      const restartAt = r.timeline.find((e) => e.kind === 'nlb' && e.message.startsWith('NLB back'))!.atMs;
      expect(downs.length).toBeGreaterThan(0);
      expect(downs[0].atMs - restartAt).toBeGreaterThanOrEqual(5 * 60_000);
    },
  );
});
