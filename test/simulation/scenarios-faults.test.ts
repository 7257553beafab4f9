/** Shipped scenarios about rollouts and faults: each passes with its fixed seed and matches its golden summary. */
import { describe, expect, it } from 'vitest';
import { expectGolden, failures, run } from './support.js';

describe.each(['canary-success', 'canary-failure', 'crash-storm', 'nlb-restart'])('scenario %s', (name) => {
  it('passes with its seed and matches the golden summary', { timeout: 180_000 }, async () => {
    const r = await run(name);
    expect(failures(r)).toEqual([]);
    expect(r.passed).toBe(true);
    expectGolden(name, r);
  });
});
