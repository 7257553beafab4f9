/** The Manager's rate limits as controllers hold them: ids, per-controller selection, the plan, the schema. */
import { describe, expect, it } from 'vitest';
import { describeIssues, managerDocumentSchema } from '../../services/nlb/manager-sync/document.js';
import {
  desiredLimitsFor,
  managerLimitId,
  planRateLimits,
  type ControllerRateLimit,
} from '../../services/nlb/manager-sync/rate-limits.js';

const limits = (rateLimits: unknown[]) => managerDocumentSchema.parse({ rateLimits }).rateLimits!;

const owned = (id: string, over: Partial<ControllerRateLimit> = {}): ControllerRateLimit => ({
  limitId: id,
  target: '*',
  requestsPerSecond: 10,
  requestsPerMinute: 0,
  requestsPerHour: 0,
  burstSize: 0,
  enabled: true,
  metadata: { owner: 'manager-sync', manager_scope: 'ALB' },
  ...over,
});

describe('managerLimitId', () => {
  it('keeps id-safe keys readable and hashes the others apart', () => {
    expect(managerLimitId('api-key-1')).toBe('manager:api-key-1');
    expect(managerLimitId('*')).toMatch(/^manager:all-h[0-9a-f]{12}$/);
    const a = managerLimitId('10.0.0.0/8');
    expect(a).toMatch(/^manager:10\.0\.0\.0_8-h[0-9a-f]{12}$/);
    expect(a).not.toBe(managerLimitId('10.0.0.0_8'));
    // A plain key that looks like a hashed id is hashed too, so the two forms cannot collide.
    expect(managerLimitId('all-h0123456789ab')).not.toBe('manager:all-h0123456789ab');
    const long = managerLimitId('k'.repeat(256));
    expect(long.length).toBeLessThanOrEqual(128);
    expect(long).toMatch(/^[A-Za-z0-9._:-]+$/);
  });
});

describe('desiredLimitsFor', () => {
  const doc = limits([
    { module: 'alb', key: '*', requestsPerSecond: 100, burst: 20 },
    { module: 'alb', version: '2.0', key: '*', requestsPerSecond: 10 },
    { module: 'alb', version: '3.0', key: 'only-3', requestsPerHour: 5 },
    { module: 'dblb', key: 'db', requestsPerMinute: 60, enabled: false },
  ]);

  it('selects the module type, and the version-specific limit over the type-wide one', () => {
    expect(desiredLimitsFor(doc, 'ALB', '1.0')).toEqual([
      {
        limitId: managerLimitId('*'),
        target: '*',
        requestsPerSecond: 100,
        requestsPerMinute: 0,
        requestsPerHour: 0,
        burstSize: 20,
        enabled: true,
        metadata: { owner: 'manager-sync', manager_scope: 'ALB' },
      },
    ]);
    expect(desiredLimitsFor(doc, 'ALB', '2.0')).toMatchObject([
      { requestsPerSecond: 10, burstSize: 0, metadata: { manager_scope: 'ALB@2.0' } },
    ]);
    expect(desiredLimitsFor(doc, 'ALB', '3.0').map((l) => l.limitId)).toEqual([
      managerLimitId('*'),
      'manager:only-3',
    ]);
    expect(desiredLimitsFor(doc, 'DBLB', '1.0')).toMatchObject([
      { limitId: 'manager:db', requestsPerMinute: 60, enabled: false },
    ]);
    expect(desiredLimitsFor(doc, 'RTMP', '1.0')).toEqual([]);
  });
});

describe('planRateLimits', () => {
  it('adds, changes and removes Manager-owned limits and never touches operator limits', () => {
    const operator = owned('ops', { metadata: {} });
    const current = [
      owned('manager:same'),
      owned('manager:changed', { requestsPerSecond: 5 }),
      owned('manager:gone'),
      operator,
      owned('manager:taken', { metadata: { set_by: 'alice' } }),
    ];
    const desired = [
      owned('manager:same'),
      owned('manager:changed', { requestsPerSecond: 50 }),
      owned('manager:new'),
      owned('manager:taken'),
    ];
    const plan = planRateLimits(current, desired);
    expect(plan.set.map((l) => [l.limitId, l.requestsPerSecond])).toEqual([
      ['manager:changed', 50],
      ['manager:new', 10],
    ]);
    expect(plan.remove).toEqual(['manager:gone']);
    expect(plan.conflicts).toEqual(['manager:taken']);
    expect(plan.unchanged).toBe(1);
    expect(plan.operator).toBe(2);
  });

  it('a metadata or enabled difference is a change; an empty desired set removes every owned limit', () => {
    expect(planRateLimits([owned('manager:a')], [owned('manager:a', { enabled: false })]).set).toHaveLength(
      1,
    );
    expect(
      planRateLimits([owned('manager:a')], [owned('manager:a', { metadata: { owner: 'manager-sync' } })]).set,
    ).toHaveLength(1);
    expect(planRateLimits([owned('manager:a'), owned('x', { metadata: {} })], [])).toMatchObject({
      set: [],
      remove: ['manager:a'],
      operator: 1,
    });
  });
});

describe('Manager rateLimits schema', () => {
  const problems = (rateLimits: unknown[]) => {
    const r = managerDocumentSchema.safeParse({ rateLimits });
    return r.success ? [] : describeIssues(r.error);
  };

  it('says how to express a fractional rate', () => {
    expect(problems([{ module: 'alb', key: '*', requestsPerSecond: 0.5 }])).toEqual([
      'rateLimits.0.requestsPerSecond: requestsPerSecond must be a whole number (for slower rates use requestsPerMinute or requestsPerHour)',
    ]);
  });

  it('needs a window, and one limit per key and scope', () => {
    expect(problems([{ module: 'alb', key: '*' }])).toEqual([
      'rateLimits.0: a rate limit needs requestsPerSecond, requestsPerMinute or requestsPerHour above 0',
    ]);
    expect(
      problems([
        { module: 'alb', key: '*', requestsPerSecond: 1 },
        { module: 'alb', version: '1.0', key: '*', requestsPerSecond: 2 },
        { module: 'alb', key: '*', requestsPerSecond: 3 },
      ]),
    ).toEqual(['rateLimits.2.key: ALB key "*" appears twice']);
  });
});
