import { describe, expect, it } from 'vitest';
import { LIMIT_REASONS } from '../../services/modules/dblb/balancer.js';
import { isLimitCounter } from '../../services/modules/runtime/instance.js';

describe('instance limit counters', () => {
  it("count every DBLB balancer limit refusal (refused_<reason>) as a limit hit, and nothing else of the DBLB's", () => {
    for (const r of LIMIT_REASONS) expect(isLimitCounter(`refused_${r}`), r).toBe(true);
    for (const r of ['no_route', 'down', 'closed']) expect(isLimitCounter(`refused_${r}`), r).toBe(false);
  });
});
