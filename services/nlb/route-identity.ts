/** Stable ids and module types for routes that arrive without them. */
import { parseModuleType } from './domain/validate.js';
import { DEFAULT_PROTOCOLS, MODULE_TYPES, type ModuleTypeName, type RouteSpec } from './domain/types.js';

/** FNV-1a over a string, 32 bits, as hex. */
function fnv1a(s: string, seed = 0x811c9dc5): string {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** A deterministic id from the route's match and its owner, so re-applying it is idempotent. */
export function routeId(r: RouteSpec, owner: string): string {
  const shape = JSON.stringify([
    owner,
    r.protocol,
    r.sourcePattern,
    r.destinationPattern,
    r.sourcePort,
    r.destinationPort,
    r.pathPattern,
    Object.entries(r.headers).sort(),
  ]);
  return `r-${fnv1a(shape)}${fnv1a(shape, 0x01234567)}`;
}

/** The module type of an operator route: metadata.module_type, else the first type serving its protocol. */
export function routeModuleType(r: RouteSpec): ModuleTypeName | null {
  const explicit = r.metadata.module_type;
  if (explicit) return parseModuleType(explicit);
  if (!r.protocol) return null;
  return MODULE_TYPES.find((t) => DEFAULT_PROTOCOLS[t].includes(r.protocol!)) ?? null;
}
