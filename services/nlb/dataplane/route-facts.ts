/**
 * Detection facts → the RouteSpec and context RoutingService.route takes (the RouteRequest code
 * path). Pure. Client-supplied text that would not make a valid route (a Host with spaces, a
 * path in absolute form) is normalised or left out, never passed on as an error.
 */
import { isIP } from 'node:net';
import { isHostPattern } from '../domain/validate.js';
import type { ProtocolName, RouteSpec } from '../domain/types.js';
import type { DetectedFacts } from './detect.js';

/** The route spec and context for a connection. */
export function routeSpecOf(
  protocol: ProtocolName,
  facts: DetectedFacts,
  listenerPort: number,
  clientAddress: string,
): { route: RouteSpec; context: Record<string, string> } {
  const context: Record<string, string> = {};
  if (facts.database) context.database = facts.database;
  if (facts.user) context.user = facts.user;
  const client = plainAddress(clientAddress);
  if (client) context.client_address = client;
  return {
    route: {
      routeId: '',
      protocol,
      sourcePattern: '',
      destinationPattern: routeHost(facts.sni ?? facts.host),
      sourcePort: 0,
      destinationPort: listenerPort,
      headers: {},
      pathPattern: routePath(facts.path),
      priority: 0,
      metadata: {},
    },
    context,
  };
}

/** "::ffff:1.2.3.4" → "1.2.3.4". */
export function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

/** A Host header or SNI as a route host: lower case, no port, no trailing dot; '' when unusable. */
export function routeHost(raw: string | undefined): string {
  if (!raw) return '';
  let h = raw.trim().toLowerCase();
  const bracketed = /^\[([0-9a-f:.]+)\](?::\d+)?$/.exec(h);
  if (bracketed) h = bracketed[1];
  else if (isIP(h) !== 6) h = h.replace(/:\d*$/, '');
  h = h.replace(/\.$/, '');
  if (h.length > 253 || h.includes('*') || !isHostPattern(h)) return '';
  return h;
}

/** A request target as a route path: origin-form without the query; '' when unusable. */
export function routePath(raw: string | undefined): string {
  if (!raw) return '';
  let p = raw;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
    try {
      p = new URL(p).pathname;
    } catch {
      return '';
    }
  }
  p = p.split('?')[0].split('#')[0];
  if (!p.startsWith('/') || p.length > 1024 || /\s/.test(p)) return '';
  return p;
}
