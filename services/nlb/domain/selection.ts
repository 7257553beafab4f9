/**
 * Instance selection (DESIGN.md §2.4): only routable instances; a version chosen by the
 * deployment's weights; within it, least connections by power of two random choices (or
 * round-robin after RebalanceLoad asked for it). Shared by RouteRequest and the data plane.
 */
import type { Rng } from '../../shared/rng.js';
import { Registry } from './registry.js';
import type { InstanceRecord } from './types.js';

export type Strategy = 'least-conn' | 'round-robin';

/** Per-instance load offsets and the strategy, recomputed by RebalanceLoad. */
export interface SelectionState {
  strategy: Strategy;
  /** Extra load an instance carries that the NLB did not route (from its heartbeats). */
  offsets: Map<string, number>;
  /** Round-robin cursor per version key. */
  cursors: Map<string, number>;
  /** Bumped whenever `offsets` are recomputed (the data-plane workers' copy follows it). */
  revision: number;
}

export const newSelectionState = (): SelectionState => ({
  strategy: 'least-conn',
  offsets: new Map(),
  cursors: new Map(),
  revision: 0,
});

export interface Choice {
  instance: InstanceRecord;
  version: string;
  /** True when no version with weight > 0 had a routable instance and a 0-weight one was used. */
  fallback: boolean;
}

/** Effective load used for least-connections. */
export function effectiveLoad(r: InstanceRecord, s: SelectionState): number {
  return r.connections + (s.offsets.get(r.instanceId) ?? 0);
}

/**
 * Each version's share of new connections under `chooseVersion`: weights > 0 among versions with
 * routable instances, normalised; evenly when none of them has weight (`fallback` when the type
 * has weights but all of those versions are at 0). The simulator splits offered load with this.
 */
export function versionShares(
  weights: Record<string, number> | undefined,
  available: ReadonlySet<string>,
): { shares: Array<[version: string, share: number]>; weighted: boolean; fallback: boolean } | null {
  if (available.size === 0) return null;
  const weighted = weights ? Object.entries(weights).filter(([v, w]) => w > 0 && available.has(v)) : [];
  if (weighted.length > 0) {
    const total = weighted.reduce((a, [, w]) => a + w, 0);
    return { shares: weighted.map(([v, w]) => [v, w / total]), weighted: true, fallback: false };
  }
  const versions = [...available].sort();
  return {
    shares: versions.map((v) => [v, 1 / versions.length]),
    weighted: false,
    fallback: weights !== undefined && Object.keys(weights).length > 0,
  };
}

/** Picks a version by weight among those with routable instances. */
export function chooseVersion(
  weights: Record<string, number> | undefined,
  available: ReadonlySet<string>,
  rng: Rng,
): { version: string; fallback: boolean } | null {
  const s = versionShares(weights, available);
  if (!s) return null;
  // No weights known for any available version: spread evenly; with weights all zero this is a fallback.
  if (!s.weighted) return { version: rng.pick(s.shares.map(([v]) => v)), fallback: s.fallback };
  let x = rng.next();
  for (const [v, share] of s.shares) {
    x -= share;
    if (x < 0) return { version: v, fallback: false };
  }
  return { version: s.shares[s.shares.length - 1][0], fallback: false };
}

/** Least connections among two random candidates (or round-robin), ties broken by id. */
export function pickInstance(
  pool: InstanceRecord[],
  s: SelectionState,
  rng: Rng,
  key: string,
): InstanceRecord {
  if (pool.length === 1) return pool[0];
  if (s.strategy === 'round-robin') {
    const sorted = [...pool].sort((a, b) =>
      a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0,
    );
    const c = s.cursors.get(key) ?? 0;
    s.cursors.set(key, c + 1);
    return sorted[c % sorted.length];
  }
  const i = rng.int(0, pool.length - 1);
  let j = rng.int(0, pool.length - 2);
  if (j >= i) j++;
  const a = pool[i];
  const b = pool[j];
  const la = effectiveLoad(a, s);
  const lb = effectiveLoad(b, s);
  if (la !== lb) return la < lb ? a : b;
  return a.instanceId < b.instanceId ? a : b;
}

/** Chooses an instance of one module type: version by weight, then instance by load. */
export function selectInstance(
  instances: InstanceRecord[],
  weights: Record<string, number> | undefined,
  s: SelectionState,
  rng: Rng,
): Choice | null {
  const routable = instances.filter((r) => Registry.routable(r));
  const byVersion = new Map<string, InstanceRecord[]>();
  for (const r of routable) byVersion.set(r.version, [...(byVersion.get(r.version) ?? []), r]);
  const v = chooseVersion(weights, new Set(byVersion.keys()), rng);
  if (!v) return null;
  const pool = byVersion.get(v.version) ?? [];
  const instance = pickInstance(pool, s, rng, `${instances[0]?.moduleType}@${v.version}`);
  return { instance, version: v.version, fallback: v.fallback };
}
