/**
 * A scenario that should fail: the flash crowd with autoscaling switched off. The run reports
 * which expectations failed and why, and `mpctl sim run` exits 1.
 */
import { describe, expect, it } from 'vitest';
import { exitCodeOf, mpctl } from '../cli/support/oclif.js';
import { run, TEST_SCENARIOS } from './support.js';

const FILE = `${TEST_SCENARIOS}flash-crowd-no-autoscaling.yaml`;

describe('a scenario meant to fail (flash crowd, autoscaling disabled)', () => {
  it('fails the scale-up and error-rate expectations, saying why', { timeout: 180_000 }, async () => {
    const r = await run(FILE, { durationMs: 16 * 60_000 });
    expect(r.passed).toBe(false);
    const byName = Object.fromEntries(r.expectations.map((x) => [x.name, x]));
    expect(byName['ALB scales up within 1m after 5m']).toMatchObject({ passed: false, atMs: 6 * 60_000 });
    expect(byName['ALB scales up within 1m after 5m'].reason).toBe(
      'ALB did not scale up between 5m and 6m: healthy instances went from 3 to 3; the autoscaler said: ALB@1.0: autoscaling is disabled for this controller',
    );
    expect(byName['ALB error rate back under 1 % once scaled']).toMatchObject({
      passed: false,
      atMs: 10 * 60_000,
    });
    expect(byName['ALB error rate back under 1 % once scaled'].reason).toMatch(
      /^errorRate of ALB was 0\.\d+ at 10m, above 0\.01$/,
    );
    // What did hold still holds: nothing routed to dead instances, the bounds were kept.
    expect(byName['no traffic routed to unhealthy instances'].passed).toBe(true);
    expect(r.types.ALB).toMatchObject({ peakInstances: 3, scaleUps: 0 });
  });

  it('makes `mpctl sim run` print the failures and exit 1', { timeout: 180_000 }, async () => {
    const res = await mpctl(['sim', 'run', FILE, '--duration', '7m']);
    expect(exitCodeOf(res)).toBe(1);
    expect(res.stdout).toContain('scenario flash-crowd-no-autoscaling (seed 1): FAILED');
    expect(res.stdout).toContain('  ✗ ALB scales up within 1m after 5m');
    expect(res.stdout).toContain('autoscaling is disabled for this controller');
  });
});
