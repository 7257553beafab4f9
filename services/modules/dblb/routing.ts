/**
 * DBLB routing (pure): which route serves a connection (protocol, listener port, database,
 * user), and which backend of its pool takes it (least connections among healthy backends with
 * room, round robin between equals).
 */
import { globMatch, globSpecificity } from '../common/patterns.js';
import type { DblbConfig, DbProtocol } from './config.js';

/** A route as the data plane uses it: explicit, or implicit from backends' own patterns. */
export interface DbRoute {
  name: string;
  protocol: DbProtocol;
  databases: string[];
  users: string[];
  ports: number[];
  backends: string[];
  maxConnections: number;
  connectionsPerSecond: number;
  burst: number;
}

/** What is known about a connection when it is routed; unknown facts match any pattern. */
export interface RouteFacts {
  protocol: DbProtocol;
  port?: number;
  database?: string;
  user?: string;
}

/** The explicit routes, or one implicit route per group of backends sharing protocol, patterns and ports. */
export function routesOf(config: DblbConfig): DbRoute[] {
  if (config.routes.length > 0) return config.routes.map((r) => ({ ...r }));
  const groups = new Map<string, DbRoute>();
  for (const b of config.backends) {
    const ports = [...(b.ports ?? [])].sort((x, y) => x - y);
    const key = JSON.stringify([b.protocol, b.databases, b.users, ports]);
    const g = groups.get(key);
    if (g) {
      g.backends.push(b.name);
      g.name += `+${b.name}`;
    } else
      groups.set(key, {
        name: b.name,
        protocol: b.protocol,
        databases: b.databases,
        users: b.users,
        ports,
        backends: [b.name],
        maxConnections: 0,
        connectionsPerSecond: 0,
        burst: 0,
      });
  }
  return [...groups.values()];
}

const isWildcard = (patterns: readonly string[]) => patterns.some((p) => p === '*' || p === '');

/**
 * Score of a route for the facts, or null when it does not match: listener port first, then the
 * literal characters of the database and user patterns that matched; for an unknown fact, a
 * route that accepts anything ranks above one that names specific values.
 */
export function routeScore(r: DbRoute, f: RouteFacts): number[] | null {
  if (r.protocol !== f.protocol) return null;
  if (r.ports.length > 0 && (f.port === undefined || !r.ports.includes(f.port))) return null;
  const part = (pats: readonly string[], value: string | undefined): [number, number] | null => {
    if (value === undefined) return [0, isWildcard(pats) ? 1 : 0];
    const hits = pats.filter((p) => globMatch(p, value));
    return hits.length ? [Math.max(...hits.map(globSpecificity)), 1] : null;
  };
  const db = part(r.databases, f.database);
  const user = part(r.users, f.user);
  if (!db || !user) return null;
  return [r.ports.length > 0 ? 1 : 0, db[0] + user[0], db[1] + user[1]];
}

/** The best route for the facts (ties: config order), or null. */
export function chooseRoute(routes: readonly DbRoute[], f: RouteFacts): DbRoute | null {
  let best: DbRoute | null = null;
  let bestScore: number[] = [];
  for (const r of routes) {
    const s = routeScore(r, f);
    if (!s) continue;
    if (!best || compare(s, bestScore) > 0) {
      best = r;
      bestScore = s;
    }
  }
  return best;
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** A backend's live state, as the balancer keeps it. */
export interface BackendView {
  name: string;
  address: string;
  maxConnections: number;
  active: number;
  healthy: boolean;
}

export type PickResult =
  | { kind: 'backend'; backend: BackendView }
  /** Healthy backends exist but all are at their limit. */
  | { kind: 'full' }
  /** No healthy backend in the pool. */
  | { kind: 'down' };

/**
 * Least connections among the pool's healthy backends with room, not in `exclude`; `turn`
 * rotates the start so that equals share the load.
 */
export function pickBackend(
  pool: readonly (BackendView | undefined)[],
  exclude: ReadonlySet<string>,
  turn: number,
): PickResult {
  let best: BackendView | null = null;
  let anyHealthy = false;
  const n = pool.length;
  for (let k = 0; k < n; k++) {
    const b = pool[(k + turn) % n];
    if (!b || !b.healthy || exclude.has(b.name)) continue;
    anyHealthy = true;
    if (b.maxConnections > 0 && b.active >= b.maxConnections) continue;
    if (!best || b.active < best.active) best = b;
  }
  if (best) return { kind: 'backend', backend: best };
  return anyHealthy ? { kind: 'full' } : { kind: 'down' };
}
