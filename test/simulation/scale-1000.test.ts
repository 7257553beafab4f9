/**
 * The 1,000-instance scenario, cut to its first 6 simulated minutes (the crash at 2m, the
 * DBLB step at 3m and the recovery all fall inside; `npm run bench:sim` runs the full 30).
 */
import { describe, expect, it } from 'vitest';
import { expectGolden, failures, run } from './support.js';

describe('scenario scale-1000', () => {
  it(
    'passes over 6 minutes with 1,000 instances and matches the golden summary',
    { timeout: 300_000 },
    async () => {
      const r = await run('scale-1000', { durationMs: 6 * 60_000 });
      expect(failures(r)).toEqual([]);
      expect(Object.values(r.types).reduce((a, t) => a + t.peakInstances, 0)).toBeGreaterThanOrEqual(1000);
      expectGolden('scale-1000-6m', r);
    },
  );
});
