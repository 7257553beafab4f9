/**
 * Edge validation of everything a client sends the NLB (DESIGN.md §6): ids, addresses,
 * versions, weights, routes. Each function adds human-readable problems to a Problems list.
 */
import { isIP } from 'node:net';
import type { Problems } from '../../shared/errors.js';
import { MODULE_TYPES, type InstanceSpec, type ModuleTypeName, type RouteSpec } from './types.js';

export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
export const MAX_MAP_ENTRIES = 64;

/** Splits "host:port" or "[v6]:port"; null when malformed. */
export function parseHostPort(value: string): { host: string; port: number } | null {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(value) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  const host = m[1];
  if (!isIP(host) && !HOSTNAME.test(host)) return null;
  return { host, port };
}

/** Checks a host:port field. */
export function checkAddress(p: Problems, field: string, value: string, required: boolean): void {
  if (!value) {
    if (required) p.add(`${field} is required (host:port, e.g. 127.0.0.1:50051)`);
    return;
  }
  if (!parseHostPort(value)) p.add(`${field} "${value}" is not host:port with a port from 1 to 65535`);
}

/** Checks an id field (instance, route, limit ids). */
export function checkId(p: Problems, field: string, value: string, required = true): void {
  if (!value) {
    if (required) p.add(`${field} is required`);
    return;
  }
  if (!ID_PATTERN.test(value))
    p.add(`${field} "${truncate(value)}" must be 1-128 characters of A-Z a-z 0-9 . _ : -`);
}

/** Checks a version string. */
export function checkVersion(p: Problems, field: string, value: string): void {
  if (!value) p.add(`${field} is required (e.g. 1.0)`);
  else if (!VERSION_PATTERN.test(value))
    p.add(
      `${field} "${truncate(value)}" must be 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit`,
    );
  // Versions key plain objects (deployment weights): "constructor" would read Object.prototype.
  else if (value in Object.prototype)
    p.add(`${field} "${value}" is reserved (a JavaScript object member name); choose another, e.g. 1.0`);
}

/** Checks a 0-100 weight. */
export function checkWeight(p: Problems, field: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 100)
    p.add(`${field} ${value} is out of range: use 0 to 100`);
}

/** Checks a string map's size and entry lengths. */
export function checkMap(p: Problems, field: string, m: Record<string, string>, keyPattern?: RegExp): void {
  const keys = Object.keys(m);
  if (keys.length > MAX_MAP_ENTRIES)
    p.add(`${field} has ${keys.length} entries; at most ${MAX_MAP_ENTRIES} are allowed`);
  for (const k of keys) {
    if (!k || k.length > 128 || (keyPattern && !keyPattern.test(k)))
      p.add(`${field} key "${truncate(k)}" is not a valid name`);
    if ((m[k] ?? '').length > 1024) p.add(`${field}["${truncate(k)}"] is longer than 1024 characters`);
  }
}

/** Parses a module type name (case-insensitive). */
export function parseModuleType(value: string): ModuleTypeName | null {
  const up = value.toUpperCase();
  return (MODULE_TYPES as readonly string[]).includes(up) ? (up as ModuleTypeName) : null;
}

/** Validates what RegisterModule carries. */
export function validateInstanceSpec(p: Problems, s: InstanceSpec): void {
  checkId(p, 'instance.instance_id', s.instanceId);
  checkAddress(p, 'instance.address', s.address, true);
  checkAddress(p, 'instance.traffic_address', s.trafficAddress, false);
  checkVersion(p, 'instance.version', s.version);
  if (!Number.isInteger(s.maxConnections) || s.maxConnections < 0 || s.maxConnections > 10_000_000) {
    p.add(`instance.max_connections ${s.maxConnections} is out of range: use 0 (no limit) to 10000000`);
  }
  checkMap(p, 'instance.metadata', s.metadata);
  checkMap(p, 'capabilities', s.capabilities);
}

function isCidrOrIp(v: string): boolean {
  const [addr, bits, extra] = v.split('/');
  if (extra !== undefined) return false;
  const family = isIP(addr);
  if (!family) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** True when `v` is a host pattern: "", "*", "example.com", "*.example.com" or an IP. */
export function isHostPattern(v: string): boolean {
  if (v === '' || v === '*' || isIP(v)) return true;
  const host = v.startsWith('*.') ? v.slice(2) : v;
  return HOSTNAME.test(host);
}

/** Validates one route; `label` names it in messages (e.g. "routes[2] (web)"). */
export function validateRoute(p: Problems, r: RouteSpec, label: string): void {
  checkId(p, `${label}.route_id`, r.routeId, false);
  if (r.sourcePattern && !isCidrOrIp(r.sourcePattern) && !isHostPattern(r.sourcePattern)) {
    p.add(`${label}.source_pattern "${truncate(r.sourcePattern)}" is not an IP, CIDR or domain`);
  }
  if (!isHostPattern(r.destinationPattern)) {
    p.add(
      `${label}.destination_pattern "${truncate(r.destinationPattern)}" is not a host, *.domain wildcard or IP`,
    );
  }
  for (const [f, v] of [
    ['source_port', r.sourcePort],
    ['destination_port', r.destinationPort],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 65535)
      p.add(`${label}.${f} ${v} is out of range: use 0 (any) to 65535`);
  }
  if (
    r.pathPattern &&
    (!r.pathPattern.startsWith('/') || r.pathPattern.length > 1024 || /\s/.test(r.pathPattern))
  ) {
    p.add(
      `${label}.path_pattern "${truncate(r.pathPattern)}" must start with / and contain no spaces (e.g. /api/*)`,
    );
  }
  if (!Number.isInteger(r.priority) || r.priority < -1_000_000 || r.priority > 1_000_000) {
    p.add(`${label}.priority ${r.priority} is out of range: use -1000000 to 1000000`);
  }
  checkMap(p, `${label}.headers`, r.headers, HEADER_NAME);
  checkMap(p, `${label}.metadata`, r.metadata);
  const mt = r.metadata.module_type;
  if (mt !== undefined && !parseModuleType(mt)) {
    p.add(`${label}.metadata.module_type "${truncate(mt)}" is not one of ${MODULE_TYPES.join(', ')}`);
  }
}

function truncate(s: string, n = 64): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
