/**
 * The routing table: routes owned by instances (soft state, removed with them) or by the
 * operator (durable), and the matching that RouteRequest and the data plane share.
 */
import { isIP } from 'node:net';
import { alreadyExists, notFound } from '../../shared/errors.js';
import { globMatches } from '../../shared/glob.js';
import type { ModuleTypeName, ProtocolName, RouteSpec } from './types.js';

/** Owner id of routes set by an operator (durable). */
export const OPERATOR = '';

export interface RouteEntry {
  route: RouteSpec;
  /** Owning instance id, or OPERATOR. */
  owner: string;
  /** The module type traffic on this route goes to. */
  moduleType: ModuleTypeName;
  createdAtMs: number;
  lastUsedMs: number;
  /** Connections routed by this route that are still open (see RoutingTable.countConnection). */
  connections: number;
  /**
   * Which life of the route id this is: kept when the route is re-applied (its connections carry
   * over), new when the id is created again after a removal (it starts counting afresh).
   */
  incarnation: number;
}

/** What is known about a request (or connection) when it is routed. */
export interface RequestFacts {
  protocol: ProtocolName | null;
  /** Host header, SNI or destination host ('' when unknown). */
  host: string;
  destinationPort: number;
  path: string;
  headers: Record<string, string>;
  sourceAddress: string;
  sourcePort: number;
}

function hostMatches(pattern: string, host: string): boolean {
  if (!pattern || pattern === '*') return true;
  // A bare IPv6 address ends in ":digits" that are not a port; "[v6]:port" is unbracketed.
  const lower = host.toLowerCase();
  const h = (isIP(lower) ? lower : lower.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')).replace(/\.$/, '');
  const p = pattern.toLowerCase().replace(/\.$/, '');
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
  return h === p;
}

/** Glob match where * spans any characters; "/prefix/*" also matches "/prefix". */
export function pathMatches(pattern: string, path: string): boolean {
  if (!pattern || pattern === '/*' || pattern === '*') return true;
  const p = path.split('?')[0] || '/';
  if (!pattern.includes('*')) return p === pattern;
  if (pattern.endsWith('/*') && !pattern.slice(0, -2).includes('*') && p === pattern.slice(0, -2))
    return true;
  return globMatches(pattern, p);
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
}

/** Source pattern: '' (any), an IP, an IPv4 CIDR, or a domain (matched against nothing but '*'). */
function sourceMatches(pattern: string, address: string): boolean {
  if (!pattern || pattern === '*') return true;
  const addr = address.replace(/^::ffff:/, '');
  if (!pattern.includes('/')) return pattern === addr;
  const [net, bitsText] = pattern.split('/');
  const bits = Number(bitsText);
  if (isIP(net) === 4 && isIP(addr) === 4) {
    if (bits === 0) return true;
    const mask = (~0 << (32 - bits)) >>> 0;
    return (ipv4ToInt(net) & mask) === (ipv4ToInt(addr) & mask);
  }
  return false;
}

/** Whether a route matches a request. Empty or zero route fields match anything. */
export function routeMatches(r: RouteSpec, f: RequestFacts): boolean {
  if (r.protocol && f.protocol && r.protocol !== f.protocol) return false;
  if (r.protocol && !f.protocol) return false;
  if (r.destinationPort && r.destinationPort !== f.destinationPort) return false;
  if (r.sourcePort && r.sourcePort !== f.sourcePort) return false;
  if (!hostMatches(r.destinationPattern, f.host)) return false;
  if (!pathMatches(r.pathPattern, f.path)) return false;
  if (!sourceMatches(r.sourcePattern, f.sourceAddress)) return false;
  for (const [k, v] of Object.entries(r.headers)) {
    const got = Object.entries(f.headers).find(([hk]) => hk.toLowerCase() === k.toLowerCase())?.[1];
    if (got === undefined || (v !== '*' && got !== v)) return false;
  }
  return true;
}

/** How specific a route is: breaks ties between equal priorities (exact beats wildcard). */
export function specificity(r: RouteSpec): number {
  let s = 0;
  if (r.protocol) s += 1;
  if (r.destinationPort) s += 2;
  if (r.destinationPattern && r.destinationPattern !== '*')
    s += r.destinationPattern.startsWith('*.') ? 3 : 4;
  if (r.pathPattern && r.pathPattern !== '/*')
    s += r.pathPattern.includes('*') ? 1 + r.pathPattern.indexOf('*') / 1000 : 2;
  s += Object.keys(r.headers).length;
  if (r.sourcePattern) s += 1;
  return s;
}

/** Two routes match exactly the same requests (a conflict when they go to different places). */
export function sameShape(a: RouteSpec, b: RouteSpec): boolean {
  const norm = (r: RouteSpec) =>
    JSON.stringify([
      r.protocol,
      r.destinationPort,
      r.sourcePort,
      r.destinationPattern.toLowerCase(),
      r.pathPattern,
      r.sourcePattern,
      Object.entries(r.headers)
        .map(([k, v]) => [k.toLowerCase(), v])
        .sort(),
    ]);
  return norm(a) === norm(b);
}

const EMPTY_IDS: ReadonlySet<string> = new Set();

export class RoutingTable {
  private readonly entries = new Map<string, RouteEntry>();
  /** Route ids per owner, so removing an instance's routes does not scan the table. */
  private readonly byOwner = new Map<string, Set<string>>();
  private version = 0;
  private nextIncarnation = 1;

  /** Increases on every change; caches key on it. */
  get revision(): number {
    return this.version;
  }

  get size(): number {
    return this.entries.size;
  }

  all(): RouteEntry[] {
    return [...this.entries.values()];
  }

  get(routeId: string): RouteEntry | undefined {
    return this.entries.get(routeId);
  }

  /**
   * Adds or replaces routes for one owner; with `replaceAll` the owner's other routes go.
   * Throws (changing nothing) when a route id belongs to another owner.
   */
  apply(
    routes: RouteSpec[],
    owner: string,
    moduleTypeOf: (r: RouteSpec) => ModuleTypeName,
    replaceAll: boolean,
    nowMs: number,
  ): number {
    for (const r of routes) {
      const existing = this.entries.get(r.routeId);
      if (existing && existing.owner !== owner) {
        throw alreadyExists(
          `route ${r.routeId} belongs to ${existing.owner || 'the operator'}; choose another route_id`,
          { route_id: r.routeId },
        );
      }
    }
    if (replaceAll) {
      // Drop the owner's routes that are not re-applied; re-applied ones keep their counters.
      const keep = new Set(routes.map((r) => r.routeId));
      for (const id of [...(this.byOwner.get(owner) ?? [])]) if (!keep.has(id)) this.delete(id);
    }
    for (const r of routes) {
      const prev = this.entries.get(r.routeId);
      this.ownedBy(owner).add(r.routeId);
      this.entries.set(r.routeId, {
        route: r,
        owner,
        moduleType: moduleTypeOf(r),
        createdAtMs: prev?.createdAtMs ?? nowMs,
        lastUsedMs: prev?.lastUsedMs ?? 0,
        connections: prev?.connections ?? 0,
        incarnation: prev?.incarnation ?? this.nextIncarnation++,
      });
    }
    this.version++;
    return routes.length;
  }

  /**
   * Counts connections opening (+) or closing (−) through `routeId` as of its `incarnation` (the
   * one they were opened under): a close after the route was re-applied still counts down; a
   * close after it was removed and created again does not touch the new route's count.
   */
  countConnection(routeId: string, incarnation: number, delta: number): void {
    const e = this.entries.get(routeId);
    if (e && e.incarnation === incarnation) e.connections = Math.max(0, e.connections + delta);
  }

  /**
   * Counts a connection opening through `routeId` now and returns the incarnation it was counted
   * under (pass it to countConnection with −1 when it closes); 0 when the route is gone.
   */
  connectionOpened(routeId: string): number {
    const e = this.entries.get(routeId);
    if (!e) return 0;
    e.connections++;
    return e.incarnation;
  }

  /** Removes one route. */
  remove(routeId: string): RouteEntry {
    const e = this.entries.get(routeId);
    if (!e) throw notFound(`route ${routeId} does not exist`, { route_id: routeId });
    this.delete(routeId);
    this.version++;
    return e;
  }

  /** The ids of the routes `owner` holds (live view: copy before changing the table). */
  ownedIds(owner: string): ReadonlySet<string> {
    return this.byOwner.get(owner) ?? EMPTY_IDS;
  }

  private ownedBy(owner: string): Set<string> {
    let ids = this.byOwner.get(owner);
    if (!ids) {
      ids = new Set();
      this.byOwner.set(owner, ids);
    }
    return ids;
  }

  private delete(routeId: string): void {
    const e = this.entries.get(routeId);
    if (!e) return;
    this.entries.delete(routeId);
    const ids = this.byOwner.get(e.owner);
    ids?.delete(routeId);
    if (ids && ids.size === 0) this.byOwner.delete(e.owner);
  }

  /** The entries `owner` holds now, as objects (put them back with `restoreOwner`). */
  entriesOf(owner: string): RouteEntry[] {
    return [...(this.byOwner.get(owner) ?? [])].map((id) => this.entries.get(id)!);
  }

  /**
   * Puts `owner`'s routes back exactly as `entries` (taken with `entriesOf`): an undone change
   * keeps each route's counters, last use and incarnation.
   */
  restoreOwner(owner: string, entries: RouteEntry[]): void {
    for (const id of [...(this.byOwner.get(owner) ?? [])]) this.delete(id);
    for (const e of entries) {
      this.entries.set(e.route.routeId, e);
      this.ownedBy(owner).add(e.route.routeId);
    }
    this.version++;
  }

  /** Removes every route of an owner (an index lookup, not a scan); returns how many. */
  removeOwner(owner: string): number {
    const ids = [...(this.byOwner.get(owner) ?? [])];
    for (const id of ids) this.delete(id);
    if (ids.length) this.version++;
    return ids.length;
  }

  /** Matching routes, best first: priority, then specificity, then operator routes, then id. */
  match(f: RequestFacts): RouteEntry[] {
    const hits = [...this.entries.values()].filter((e) => routeMatches(e.route, f));
    return hits.sort(
      (a, b) =>
        b.route.priority - a.route.priority ||
        specificity(b.route) - specificity(a.route) ||
        Number(a.owner !== OPERATOR) - Number(b.owner !== OPERATOR) ||
        (a.route.routeId < b.route.routeId ? -1 : a.route.routeId > b.route.routeId ? 1 : 0),
    );
  }

  /** Records that a route was used at `nowMs`. */
  touch(routeId: string, nowMs: number): void {
    const e = this.entries.get(routeId);
    if (e) e.lastUsedMs = nowMs;
  }
}
