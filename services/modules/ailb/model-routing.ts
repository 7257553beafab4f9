/**
 * Which backends may serve a request's model, in the order to try them: backends whose model
 * patterns match (an exact name before any pattern, longer patterns before shorter), balanced
 * within each rank (least outstanding requests per weight, or rotating), then the backends of
 * the model's fallbacks with the model rewritten. Pure over the backends' current state.
 */
import type { Backend } from '../common/http/backend-pool.js';
import { globMatch, globSpecificity } from '../common/patterns.js';
import type { AilbBackend, AilbConfig } from './config.js';

/** A backend as the AILB knows it: its connections and state, and what it serves. */
export interface ModelBackend {
  backend: Backend;
  spec: AilbBackend;
}

export interface Candidate {
  backend: Backend;
  spec: AilbBackend;
  /** The model to ask this backend for (a fallback's, or the request's own). */
  model: string;
  fallback: boolean;
}

/** How well a backend's patterns fit a model: -1 none; exact names rank above any pattern. */
export function modelRank(patterns: readonly string[], model: string): number {
  let best = -1;
  for (const p of patterns) {
    if (!globMatch(p, model)) continue;
    best = Math.max(best, p.includes('*') ? globSpecificity(p) : 100_000);
  }
  return best;
}

/** `group` rotated so that the backend owning weighted slot `turn` comes first. */
function weightedRotation(group: ModelBackend[], turn: number): ModelBackend[] {
  const total = group.reduce((n, b) => n + b.spec.weight, 0);
  if (group.length < 2 || total <= 0) return group;
  let slot = turn % total;
  let first = 0;
  while (slot >= group[first].spec.weight) slot -= group[first++].spec.weight;
  return [...group.slice(first), ...group.slice(0, first)];
}

function ordered(
  backends: readonly ModelBackend[],
  model: string,
  nowMs: number,
  balancing: AilbConfig['balancing'],
  turn: number,
): ModelBackend[] {
  const byRank = new Map<number, ModelBackend[]>();
  for (const b of backends) {
    const rank = modelRank(b.spec.models, model);
    if (rank < 0 || !b.backend.usable(nowMs)) continue;
    let group = byRank.get(rank);
    if (!group) byRank.set(rank, (group = []));
    group.push(b);
  }
  const out: ModelBackend[] = [];
  for (const rank of [...byRank.keys()].sort((a, b) => b - a)) {
    // Equal backends share the traffic: the turn decides who goes first among them.
    const group = weightedRotation(byRank.get(rank)!, turn);
    if (balancing === 'least_request') {
      const score = (b: ModelBackend) => (b.backend.active + 1) / b.spec.weight;
      // A stable sort keeps the rotation among equal scores.
      group.sort((x, y) => score(x) - score(y));
    }
    out.push(...group);
  }
  return out;
}

/** The backends to try for `model`, at most `maxAttempts`, and whether any backend serves it at all. */
export function candidatesFor(
  model: string,
  backends: readonly ModelBackend[],
  config: Pick<AilbConfig, 'fallbacks' | 'balancing' | 'maxAttempts'>,
  nowMs: number,
  turn: number,
): { candidates: Candidate[]; served: boolean } {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  const add = (m: string, fallback: boolean) => {
    for (const b of ordered(backends, m, nowMs, config.balancing, turn)) {
      const key = `${b.spec.name}\n${m}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ backend: b.backend, spec: b.spec, model: m, fallback });
    }
  };
  add(model, false);
  for (const f of config.fallbacks) {
    if (!globMatch(f.model, model)) continue;
    for (const to of f.to) add(to, true);
  }
  const served =
    backends.some((b) => modelRank(b.spec.models, model) >= 0) ||
    config.fallbacks.some((f) => globMatch(f.model, model));
  return { candidates: out.slice(0, config.maxAttempts), served };
}

/** Model names the gateway can name for /v1/models: exact names from backends and fallbacks. */
export function listedModels(config: Pick<AilbConfig, 'backends' | 'fallbacks'>): Map<string, string> {
  const models = new Map<string, string>();
  for (const b of config.backends) for (const m of b.models) if (!m.includes('*')) models.set(m, b.name);
  for (const f of config.fallbacks)
    if (!f.model.includes('*') && !models.has(f.model)) models.set(f.model, 'fallback');
  return models;
}
