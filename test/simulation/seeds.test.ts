/**
 * The expectations are about behaviour, not one trace: other seeds change the noise, the
 * jitter and which instances faults hit, and the scenarios still pass.
 */
import { describe, expect, it } from 'vitest';
import { failures, run } from './support.js';

describe('changed seeds', () => {
  it('flash-crowd passes with seed 2, on a different trace than seed 1', { timeout: 180_000 }, async () => {
    const [one, two] = [await run('flash-crowd', { seed: 1 }), await run('flash-crowd', { seed: 2 })];
    expect(failures(two)).toEqual([]);
    expect(two.types.ALB.offeredRequests).not.toBe(one.types.ALB.offeredRequests);
  });

  it('crash-storm passes with seed "storm-7" (other instances die)', { timeout: 180_000 }, async () => {
    const r = await run('crash-storm', { seed: 'storm-7' });
    expect(failures(r)).toEqual([]);
  });

  it('canary-failure passes with seed 99', { timeout: 180_000 }, async () => {
    const r = await run('canary-failure', { seed: 99 });
    expect(failures(r)).toEqual([]);
  });
});
