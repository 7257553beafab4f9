/**
 * The Manager's rate limits as module controllers hold them, and the plan that makes a
 * controller's Manager-owned limits equal the Manager's (pure; rate-limit-push.ts carries it out).
 *
 * Ownership: every limit the sync writes carries metadata `owner=manager-sync` and an id
 * `manager:<key>`. Only limits with that owner mark are ever changed or removed; a limit an
 * operator set directly (mpctl module ratelimits set) has no mark and is left alone, even when
 * its id collides with a Manager one (reported as a conflict instead of overwritten).
 */
import { createHash } from 'node:crypto';
import type { ModuleTypeName } from '../domain/types.js';
import type { ManagerRateLimit } from './document.js';

/** A rate limit as ModuleService Get/SetRateLimit carry it (same shape as the controller's). */
export interface ControllerRateLimit {
  limitId: string;
  target: string;
  requestsPerSecond: number;
  requestsPerMinute: number;
  requestsPerHour: number;
  burstSize: number;
  enabled: boolean;
  metadata: Record<string, string>;
}

export const MANAGER_LIMIT_PREFIX = 'manager:';
export const OWNER_KEY = 'owner';
export const OWNER_MANAGER = 'manager-sync';

/** Whether the Manager sync wrote this limit (and may therefore change or remove it). */
export const isManagerOwned = (l: ControllerRateLimit): boolean => l.metadata?.[OWNER_KEY] === OWNER_MANAGER;

const HASHED = /-h[0-9a-f]{12}$/;

/**
 * `manager:<key>` when the key is a valid limit id (A-Z a-z 0-9 . _ : -, short enough); otherwise
 * a readable form of the key (`*` → `all`, other characters → `_`) with a hash of the real key
 * appended, so that `10.0.0.0/8` and `10.0.0.0_8` still get different ids. A plain key that
 * already ends like a hash is hashed too, so the two forms never collide.
 */
export function managerLimitId(key: string): string {
  if (/^[A-Za-z0-9._:-]{1,100}$/.test(key) && !HASHED.test(key)) return `${MANAGER_LIMIT_PREFIX}${key}`;
  const readable = key.replace(/\*/g, 'all').replace(/[^A-Za-z0-9._:-]/g, '_');
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 12);
  return `${MANAGER_LIMIT_PREFIX}${readable.slice(0, 100)}-h${hash}`;
}

/**
 * The limits a controller of `type`/`version` should hold: the Manager's limits for that type,
 * where a limit for the version wins over a type-wide one with the same key. Sorted by id.
 */
export function desiredLimitsFor(
  limits: readonly ManagerRateLimit[],
  type: ModuleTypeName,
  version: string,
): ControllerRateLimit[] {
  const byKey = new Map<string, ManagerRateLimit>();
  for (const l of limits) {
    if (l.module !== type || (l.version !== undefined && l.version !== version)) continue;
    const have = byKey.get(l.key);
    if (!have || (have.version === undefined && l.version !== undefined)) byKey.set(l.key, l);
  }
  return [...byKey.values()]
    .map((l) => ({
      limitId: managerLimitId(l.key),
      target: l.key,
      requestsPerSecond: l.requestsPerSecond ?? 0,
      requestsPerMinute: l.requestsPerMinute ?? 0,
      requestsPerHour: l.requestsPerHour ?? 0,
      burstSize: l.burst ?? 0,
      enabled: l.enabled,
      metadata: { [OWNER_KEY]: OWNER_MANAGER, manager_scope: l.version ? `${type}@${l.version}` : type },
    }))
    .sort((a, b) => a.limitId.localeCompare(b.limitId));
}

function sameLimit(a: ControllerRateLimit, b: ControllerRateLimit): boolean {
  const meta = (m: Record<string, string>) =>
    JSON.stringify(Object.entries(m ?? {}).sort(([x], [y]) => x.localeCompare(y)));
  return (
    a.target === b.target &&
    a.requestsPerSecond === b.requestsPerSecond &&
    a.requestsPerMinute === b.requestsPerMinute &&
    a.requestsPerHour === b.requestsPerHour &&
    a.burstSize === b.burstSize &&
    a.enabled === b.enabled &&
    meta(a.metadata) === meta(b.metadata)
  );
}

export interface RateLimitPlan {
  /** Limits to create or replace (SetRateLimit). */
  set: ControllerRateLimit[];
  /** Manager-owned limit ids the Manager no longer has (RemoveRateLimit). */
  remove: string[];
  /** Desired ids held by an operator-set limit: left alone, reported. */
  conflicts: string[];
  /** Manager-owned limits already as desired. */
  unchanged: number;
  /** Limits without the owner mark (set by an operator), never touched. */
  operator: number;
}

/** What to change on a controller holding `current` so that its Manager-owned limits equal `desired`. */
export function planRateLimits(
  current: readonly ControllerRateLimit[],
  desired: readonly ControllerRateLimit[],
): RateLimitPlan {
  const byId = new Map(current.map((l) => [l.limitId, l]));
  const plan: RateLimitPlan = { set: [], remove: [], conflicts: [], unchanged: 0, operator: 0 };
  for (const d of desired) {
    const have = byId.get(d.limitId);
    if (have && !isManagerOwned(have)) plan.conflicts.push(d.limitId);
    else if (have && sameLimit(have, d)) plan.unchanged++;
    else plan.set.push(d);
  }
  const wanted = new Set(desired.map((d) => d.limitId));
  for (const l of current) {
    if (!isManagerOwned(l)) plan.operator++;
    else if (!wanted.has(l.limitId)) plan.remove.push(l.limitId);
  }
  return plan;
}
