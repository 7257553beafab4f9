/**
 * Deployments: for each module type, its versions' traffic weights and the rollout's state
 * (DESIGN.md §4). The NLB is the single owner. This file holds the state and the operations
 * that change it by request; the rollout controller (walking steps, analysis) drives it later.
 */
import { failedPrecondition, invalidArgument, notFound, Problems } from '../../shared/errors.js';
import { checkVersion, checkWeight } from './validate.js';
import type { ModuleTypeName } from './types.js';

export type RolloutPhase = 'STABLE' | 'PROGRESSING' | 'PAUSED' | 'PROMOTED' | 'ROLLED_BACK' | 'ABORTED';

export interface Deployment {
  moduleType: ModuleTypeName;
  /** Every known version's weight; sums to 100 when any version exists. */
  weights: Record<string, number>;
  /** The last fully promoted version; Rollback returns here. */
  stableVersion: string;
  /** The version being rolled out ('' when none). */
  targetVersion: string;
  phase: RolloutPhase;
  /** The target's weight at each step. */
  steps: number[];
  stepIndex: number;
  stepStartedAtMs: number;
  startedAtMs: number;
  reason: string;
  updatedAtMs: number;
  revision: number;
}

export const DEFAULT_STEPS = [5, 25, 50, 100];

/** Steps for a promotion: immediate → [100]; rate r → r, 2r, … 100; default 5/25/50/100. */
export function promotionSteps(rate: number, immediate: boolean, defaults = DEFAULT_STEPS): number[] {
  if (immediate) return [100];
  if (!rate) return [...defaults];
  const steps: number[] = [];
  for (let w = rate; w < 100; w += rate) steps.push(w);
  steps.push(100);
  return steps;
}

/**
 * Gives `version` exactly `weight` and shares the rest among the other versions in proportion
 * to their current weights (largest remainder, so the sum is exactly 100).
 */
export function redistribute(
  weights: Record<string, number>,
  version: string,
  weight: number,
  fallback: string,
): Record<string, number> {
  const others = Object.keys(weights).filter((v) => v !== version);
  if (others.length === 0) return { [version]: 100 };
  const rest = 100 - weight;
  let basis = others.map((v) => weights[v] ?? 0);
  if (basis.every((b) => b === 0)) basis = others.map((v) => (v === fallback ? 1 : 0));
  if (basis.every((b) => b === 0)) basis = others.map(() => 1);
  const sum = basis.reduce((a, b) => a + b, 0);
  const exact = basis.map((b) => (b / sum) * rest);
  const floors = exact.map(Math.floor);
  let left = rest - floors.reduce((a, b) => a + b, 0);
  const order = exact
    .map((e, i) => ({ i, frac: e - Math.floor(e) }))
    .sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    floors[i]++;
    left--;
  }
  const out: Record<string, number> = { [version]: weight };
  others.forEach((v, i) => (out[v] = floors[i]));
  return out;
}

export class Deployments {
  private readonly byType = new Map<ModuleTypeName, Deployment>();

  constructor(initial: Deployment[] = []) {
    for (const d of initial) this.byType.set(d.moduleType, structuredClone(d));
  }

  all(): Deployment[] {
    return [...this.byType.values()];
  }

  get(t: ModuleTypeName): Deployment | undefined {
    return this.byType.get(t);
  }

  /** Replaces a type's deployment wholesale (restoring saved state). */
  put(d: Deployment): void {
    this.byType.set(d.moduleType, structuredClone(d));
  }

  /** Forgets a type's deployment. */
  remove(t: ModuleTypeName): void {
    this.byType.delete(t);
  }

  /**
   * Makes sure a version that just registered is known. The first version of a type gets 100 %
   * and becomes stable; later versions start at 0 % until promoted. Returns true on change.
   */
  observeVersion(t: ModuleTypeName, version: string, nowMs: number): boolean {
    const d = this.byType.get(t);
    if (!d) {
      this.byType.set(t, {
        moduleType: t,
        weights: { [version]: 100 },
        stableVersion: version,
        targetVersion: '',
        phase: 'STABLE',
        steps: [],
        stepIndex: 0,
        stepStartedAtMs: 0,
        startedAtMs: 0,
        reason: `first version ${version} registered`,
        updatedAtMs: nowMs,
        revision: 1,
      });
      return true;
    }
    if (version in d.weights) return false;
    d.weights[version] = 0;
    if (!d.stableVersion) d.stableVersion = version;
    this.touch(d, `version ${version} registered with weight 0`, nowMs);
    return true;
  }

  private require(t: ModuleTypeName): Deployment {
    const d = this.byType.get(t);
    if (!d)
      throw notFound(`module type ${t} has no deployment yet: no instance of it has registered`, {
        module_type: t,
      });
    return d;
  }

  private touch(d: Deployment, reason: string, nowMs: number): void {
    d.reason = reason;
    d.updatedAtMs = nowMs;
    d.revision++;
  }

  private requireVersion(d: Deployment, version: string, knownVersions: ReadonlySet<string>): void {
    const p = new Problems();
    checkVersion(p, 'version', version);
    p.check('deployment request');
    if (!(version in d.weights) && !knownVersions.has(version)) {
      throw notFound(
        `${d.moduleType} version ${version} does not exist: no instance of it is registered (known: ${Object.keys(d.weights).join(', ') || 'none'}); start its controller first`,
        { module_type: d.moduleType, version },
      );
    }
  }

  /** Sets one version's weight by hand; a running rollout is paused (a person took over). */
  setWeight(
    t: ModuleTypeName,
    version: string,
    weight: number,
    knownVersions: ReadonlySet<string>,
    nowMs: number,
    dryRun = false,
  ): Deployment {
    const d = this.require(t);
    this.requireVersion(d, version, knownVersions);
    const p = new Problems();
    checkWeight(p, 'weight', weight);
    p.check('deployment request');
    const others = Object.keys(d.weights).filter((v) => v !== version);
    if (others.length === 0 && weight !== 100) {
      throw failedPrecondition(
        `${t} has only version ${version}; it must keep weight 100 (register another version first)`,
        {
          module_type: t,
        },
      );
    }
    const next = structuredClone(d);
    next.weights = redistribute(d.weights, version, weight, d.stableVersion);
    if (next.phase === 'PROGRESSING') next.phase = 'PAUSED';
    if (weight === 100) {
      next.stableVersion = version;
      next.targetVersion = '';
      next.phase = 'STABLE';
    } else if (version !== d.stableVersion && weight > 0) {
      next.targetVersion = version;
    }
    this.touch(next, `weight of ${version} set to ${weight}`, nowMs);
    if (!dryRun) this.byType.set(t, next);
    return next;
  }

  /** Starts a rollout of `version`: the target gets the first step's weight. */
  promote(
    t: ModuleTypeName,
    version: string,
    rate: number,
    immediate: boolean,
    knownVersions: ReadonlySet<string>,
    nowMs: number,
    defaults = DEFAULT_STEPS,
    dryRun = false,
  ): Deployment {
    const d = this.require(t);
    this.requireVersion(d, version, knownVersions);
    if (!Number.isInteger(rate) || rate < 0 || rate > 100)
      throw invalidArgument(
        `promotion_rate ${rate} is out of range: use 1 to 100, or 0 for the default steps`,
      );
    if (version === d.stableVersion && d.weights[version] === 100) {
      throw failedPrecondition(`${t} version ${version} is already the stable version with 100 % of traffic`);
    }
    if ((d.phase === 'PROGRESSING' || d.phase === 'PAUSED') && d.targetVersion && !immediate) {
      throw failedPrecondition(
        d.targetVersion === version
          ? `${t} is already rolling out ${version} (at ${d.weights[version] ?? 0} %, ${d.phase.toLowerCase()}); resume it, or promote with immediate to finish now`
          : `${t} is rolling out ${d.targetVersion} (${d.phase.toLowerCase()}); roll it back before promoting ${version}`,
      );
    }
    const next = structuredClone(d);
    if (!(version in next.weights)) next.weights[version] = 0;
    next.steps = promotionSteps(rate, immediate, defaults);
    next.stepIndex = 0;
    next.targetVersion = version;
    next.startedAtMs = nowMs;
    next.stepStartedAtMs = nowMs;
    next.weights = redistribute(next.weights, version, next.steps[0], d.stableVersion);
    if (next.steps[0] === 100) {
      next.stableVersion = version;
      next.targetVersion = '';
      next.phase = 'PROMOTED';
    } else {
      next.phase = 'PROGRESSING';
    }
    this.touch(
      next,
      immediate
        ? `${version} promoted to 100 % at once`
        : `rollout of ${version} started at ${next.steps[0]} %`,
      nowMs,
    );
    if (!dryRun) this.byType.set(t, next);
    return next;
  }

  /** Moves a progressing rollout to its next step (the rollout controller calls this). */
  advance(t: ModuleTypeName, nowMs: number, reason: string): Deployment {
    const d = this.require(t);
    if (d.phase !== 'PROGRESSING')
      throw failedPrecondition(`${t} has no progressing rollout (phase ${d.phase})`);
    d.stepIndex = Math.min(d.stepIndex + 1, d.steps.length - 1);
    const w = d.steps[d.stepIndex];
    d.weights = redistribute(d.weights, d.targetVersion, w, d.stableVersion);
    d.stepStartedAtMs = nowMs;
    if (w === 100) {
      d.stableVersion = d.targetVersion;
      d.targetVersion = '';
      d.phase = 'PROMOTED';
    }
    this.touch(d, reason, nowMs);
    return d;
  }

  /** Returns all traffic to the last fully promoted version (or `to`) at once. */
  rollback(
    t: ModuleTypeName,
    to: string,
    knownVersions: ReadonlySet<string>,
    nowMs: number,
    reason: string,
    phase: 'ROLLED_BACK' | 'ABORTED' = 'ROLLED_BACK',
    dryRun = false,
  ): { previous: string; deployment: Deployment } {
    const d = this.require(t);
    const target = to || d.stableVersion;
    if (to) this.requireVersion(d, to, knownVersions);
    const previous = d.targetVersion || activeVersion(d);
    const next = structuredClone(d);
    next.weights = Object.fromEntries(Object.keys(d.weights).map((v) => [v, v === target ? 100 : 0]));
    if (!(target in next.weights)) next.weights[target] = 100;
    next.stableVersion = target;
    next.targetVersion = '';
    next.phase = phase;
    next.steps = [];
    next.stepIndex = 0;
    this.touch(next, reason, nowMs);
    if (!dryRun) this.byType.set(t, next);
    return { previous, deployment: next };
  }

  /** Holds a progressing rollout. */
  pause(t: ModuleTypeName, version: string, nowMs: number, reason: string): Deployment {
    const d = this.require(t);
    if (d.phase !== 'PROGRESSING')
      throw failedPrecondition(`${t} has no progressing rollout to pause (phase ${d.phase})`);
    if (version && version !== d.targetVersion)
      throw failedPrecondition(`${t} is rolling out ${d.targetVersion}, not ${version}`);
    d.phase = 'PAUSED';
    this.touch(d, reason || `paused at ${d.steps[d.stepIndex]} %`, nowMs);
    return d;
  }

  /** Continues a paused rollout; the current step's interval starts again. */
  resume(t: ModuleTypeName, version: string, nowMs: number, reason: string): Deployment {
    const d = this.require(t);
    if (d.phase !== 'PAUSED' || !d.targetVersion)
      throw failedPrecondition(`${t} has no paused rollout to resume (phase ${d.phase})`);
    if (version && version !== d.targetVersion)
      throw failedPrecondition(`${t} is rolling out ${d.targetVersion}, not ${version}`);
    d.phase = 'PROGRESSING';
    d.stepStartedAtMs = nowMs;
    this.touch(d, reason || `resumed at ${d.steps[d.stepIndex] ?? d.weights[d.targetVersion]} %`, nowMs);
    return d;
  }
}

/** The version with the most traffic (ties: the stable one). */
export function activeVersion(d: Deployment): string {
  let best = d.stableVersion;
  for (const [v, w] of Object.entries(d.weights)) if (w > (d.weights[best] ?? -1)) best = v;
  return best;
}
