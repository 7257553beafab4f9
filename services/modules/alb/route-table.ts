/**
 * The ALB's routes, compiled once per push for the per-request match: host (exact, "*.suffix"
 * wildcard, or any), path (exact "/a", prefix "/a/*", or a "*" pattern), headers (a value or "*"
 * for presence), source address, destination port and protocol — the semantics of the NLB's
 * routeMatches (services/nlb/domain/routes.ts), tested against it. Best match: highest priority,
 * then the most specific, then the route id.
 */
import { isIP } from 'node:net';
import { routeMatches, specificity } from '../../nlb/domain/routes.js';
import type { RouteSpec } from '../../nlb/domain/types.js';
import { globMatches } from '../../shared/glob.js';

/** What a request offers to the match. */
export interface HttpRequestFacts {
  /** Host header, as sent (port and case are normalised here). */
  host: string;
  /** Request target (query string ignored). */
  path: string;
  rawHeaders: readonly string[];
  clientAddress: string;
  clientPort: number;
  destinationPort: number;
  tls: boolean;
  upgrade: boolean;
}

export interface CompiledRoute {
  spec: RouteSpec;
  id: string;
  /** Backend pool (route metadata "pool", else the module's default pool). */
  pool: string;
  /** The rate-limit key of the route ("route:<id>"). */
  limitKey: string;
  matches(f: HttpRequestFacts, host: string, path: string): boolean;
}

/** Protocols of routes an HTTP request can match, by how it arrived. */
function protocolOk(protocol: RouteSpec['protocol'], f: HttpRequestFacts): boolean {
  switch (protocol) {
    case null:
      return true;
    case 'HTTP':
      return !f.tls;
    case 'HTTPS':
      return f.tls;
    case 'WEBSOCKET':
      return f.upgrade;
    default:
      return false;
  }
}

/** A host pattern as a predicate over a normalised host ('' or '*' = any). */
function hostMatcher(pattern: string): ((host: string) => boolean) | null {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (!p || p === '*') return null;
  if (p.startsWith('*.')) {
    const suffix = p.slice(1);
    return (h) => h.length > suffix.length && h.endsWith(suffix);
  }
  return (h) => h === p;
}

/** A path pattern as a predicate (same cases as pathMatches). */
function pathMatcher(pattern: string): ((path: string) => boolean) | null {
  if (!pattern || pattern === '/*' || pattern === '*') return null;
  if (!pattern.includes('*')) return (p) => p === pattern;
  const star = pattern.indexOf('*');
  if (pattern.endsWith('/*') && star === pattern.length - 1) {
    const dir = pattern.slice(0, -2);
    const prefix = pattern.slice(0, -1);
    return (p) => p === dir || p.startsWith(prefix);
  }
  return (p) => globMatches(pattern, p);
}

/** Host header → lowercase host without port or trailing dot ("[v6]:port" → "v6"). */
export function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  const h = isIP(lower) ? lower : lower.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * The path routes are matched on: without the query, with dot segments resolved and "%2e"
 * decoded, so "/api/../admin" is matched as "/admin" (as the backend will read it).
 */
export function matchPath(target: string): string {
  const q = target.indexOf('?');
  let p = q < 0 ? target : target.slice(0, q);
  if (!p) return '/';
  if (!/\/\.|%2e|\/\//i.test(p)) return p;
  p = p.replace(/%2e/gi, '.');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '..') out.pop();
    else if (seg !== '.' && seg !== '') out.push(seg);
  }
  return `/${out.join('/')}${p.endsWith('/') && out.length > 0 ? '/' : ''}`;
}

function compile(r: RouteSpec, defaultPool: string): CompiledRoute {
  const host = hostMatcher(r.destinationPattern);
  const path = pathMatcher(r.pathPattern);
  const headers = Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), v] as const);
  const needsFull = !!r.sourcePattern || r.sourcePort > 0;
  return {
    spec: r,
    id: r.routeId,
    pool: r.metadata.pool || defaultPool,
    limitKey: `route:${r.routeId}`,
    matches(f, h, p) {
      if (!protocolOk(r.protocol, f)) return false;
      if (r.destinationPort && r.destinationPort !== f.destinationPort) return false;
      if (host && !host(h)) return false;
      if (path && !path(p)) return false;
      for (const [name, want] of headers) {
        let got: string | undefined;
        const raw = f.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) {
          if (raw[i].length === name.length && raw[i].toLowerCase() === name) {
            got = raw[i + 1];
            break;
          }
        }
        if (got === undefined || (want !== '*' && got !== want)) return false;
      }
      // Source address and port: rare; the shared matcher handles CIDRs.
      if (needsFull)
        return routeMatches(
          { ...r, protocol: null, destinationPattern: '', pathPattern: '', headers: {}, destinationPort: 0 },
          {
            protocol: null,
            host: '',
            destinationPort: 0,
            path: '/',
            headers: {},
            sourceAddress: f.clientAddress,
            sourcePort: f.clientPort,
          },
        );
      return true;
    },
  };
}

export class RouteTable {
  private readonly ordered: CompiledRoute[];

  constructor(
    readonly routes: readonly RouteSpec[],
    readonly defaultPool: string,
  ) {
    this.ordered = [...routes]
      .sort(
        (a, b) =>
          b.priority - a.priority || specificity(b) - specificity(a) || a.routeId.localeCompare(b.routeId),
      )
      .map((r) => compile(r, defaultPool));
  }

  get size(): number {
    return this.ordered.length;
  }

  /** With no routes at all, every request goes to the default pool by this catch-all. */
  get catchAll(): CompiledRoute | null {
    return this.ordered.length === 0 ? catchAllRoute(this.defaultPool) : null;
  }

  /** The best route for a request; with no routes at all, a catch-all to the default pool. */
  match(f: HttpRequestFacts): CompiledRoute | null {
    if (this.ordered.length === 0) return catchAllRoute(this.defaultPool);
    const host = normaliseHost(f.host);
    const path = matchPath(f.path);
    for (const r of this.ordered) if (r.matches(f, host, path)) return r;
    return null;
  }
}

const catchAll = new Map<string, CompiledRoute>();
function catchAllRoute(pool: string): CompiledRoute {
  let r = catchAll.get(pool);
  if (!r) {
    r = {
      spec: {
        routeId: '',
        protocol: null,
        sourcePattern: '',
        destinationPattern: '',
        sourcePort: 0,
        destinationPort: 0,
        headers: {},
        pathPattern: '',
        priority: 0,
        metadata: {},
      },
      id: '',
      pool,
      limitKey: 'route:',
      matches: () => true,
    };
    catchAll.set(pool, r);
  }
  return r;
}
