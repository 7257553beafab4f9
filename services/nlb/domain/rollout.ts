/**
 * The rollout decision (DESIGN.md §4), pure: given a progressing deployment, the analysis of
 * the new version against the stable one over the current step, and the clock, say what to do:
 * hold, advance to the next step, roll back, or abort at the progress deadline.
 */
import type { Deployment } from './deployments.js';

export interface RolloutPolicy {
  stepIntervalMs: number;
  minSuccessRate: number;
  maxP99LatencyMs: number;
  maxP99Ratio: number;
  minRequests: number;
  progressDeadlineMs: number;
}

/** A version's traffic over an analysis window. */
export interface VersionWindow {
  requests: number;
  failures: number;
  /** p99 latency (ms) over the window; 0 when unknown. */
  p99LatencyMs: number;
}

export type Analysis =
  | { verdict: 'pass'; reason: string }
  | { verdict: 'fail'; reason: string }
  | { verdict: 'inconclusive'; reason: string };

const pct = (x: number) => `${(Math.round(x * 10_000) / 100).toString()} %`;

/** Compares the canary with the stable version. */
export function analyse(p: RolloutPolicy, canary: VersionWindow, stable: VersionWindow | null): Analysis {
  if (canary.requests < p.minRequests) {
    return {
      verdict: 'inconclusive',
      reason: `${canary.requests} request(s) on the new version; ${p.minRequests} needed to judge`,
    };
  }
  const success = canary.requests > 0 ? 1 - canary.failures / canary.requests : 1;
  if (success < p.minSuccessRate) {
    return {
      verdict: 'fail',
      reason: `success rate ${pct(success)} is below ${pct(p.minSuccessRate)} (${canary.failures} of ${canary.requests} failed)`,
    };
  }
  const ratioLimit = stable && stable.p99LatencyMs > 0 ? stable.p99LatencyMs * p.maxP99Ratio : 0;
  if (canary.p99LatencyMs > p.maxP99LatencyMs && canary.p99LatencyMs > ratioLimit) {
    return {
      verdict: 'fail',
      reason: `p99 latency ${Math.round(canary.p99LatencyMs)} ms is above ${p.maxP99LatencyMs} ms${ratioLimit ? ` and ${p.maxP99Ratio}× the stable version's ${Math.round(stable!.p99LatencyMs)} ms` : ''}`,
    };
  }
  return {
    verdict: 'pass',
    reason: `success rate ${pct(success)}, p99 ${Math.round(canary.p99LatencyMs)} ms over ${canary.requests} request(s)`,
  };
}

export type RolloutIntent =
  | { type: 'none'; reason: string }
  | { type: 'hold'; reason: string }
  | { type: 'advance'; toWeight: number; reason: string }
  | { type: 'rollback'; reason: string }
  | { type: 'abort'; reason: string };

/** What a progressing rollout should do now. */
export function decideRollout(
  d: Deployment,
  p: RolloutPolicy,
  analysis: Analysis,
  nowMs: number,
): RolloutIntent {
  if (d.phase !== 'PROGRESSING' || !d.targetVersion) return { type: 'none', reason: `phase ${d.phase}` };
  // Like Kubernetes' progressDeadlineSeconds: time without progress, counted from the last step
  // change (or resume), so neither a long healthy rollout nor a pause trips it.
  if (nowMs - d.stepStartedAtMs > p.progressDeadlineMs) {
    return {
      type: 'abort',
      reason: `no progress for ${Math.round(p.progressDeadlineMs / 1000)} s at step ${d.steps[d.stepIndex]} % (progress deadline): ${analysis.reason}`,
    };
  }
  if (analysis.verdict === 'fail')
    return { type: 'rollback', reason: `analysis failed at ${d.steps[d.stepIndex]} %: ${analysis.reason}` };
  const held = nowMs - d.stepStartedAtMs;
  if (held < p.stepIntervalMs)
    return {
      type: 'hold',
      reason: `holding ${d.steps[d.stepIndex]} % for ${Math.ceil((p.stepIntervalMs - held) / 1000)} s more`,
    };
  if (analysis.verdict === 'inconclusive')
    return { type: 'hold', reason: `holding ${d.steps[d.stepIndex]} %: ${analysis.reason}` };
  const next = d.steps[Math.min(d.stepIndex + 1, d.steps.length - 1)];
  return {
    type: 'advance',
    toWeight: next,
    reason: `step ${d.steps[d.stepIndex]} % passed (${analysis.reason}); moving to ${next} %`,
  };
}
