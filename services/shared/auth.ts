/**
 * Bearer-token authentication and role authorisation (DESIGN.md §7). Pure: no gRPC, no I/O.
 * The gRPC server interceptor (grpc/auth-interceptor.ts) feeds it the `authorization` header
 * and the method path, and turns a refusal into UNAUTHENTICATED or PERMISSION_DENIED.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Problems } from './errors.js';

/** Roles are ordered: admin may do everything a module may do, a module everything read may do. */
export type Role = 'read' | 'module' | 'admin';

export const ROLES: readonly Role[] = ['read', 'module', 'admin'];

const RANK: Readonly<Record<Role, number>> = { read: 0, module: 1, admin: 2 };

export interface TokenEntry {
  /** Who holds the token; becomes the call's principal. Never secret. */
  name: string;
  role: Role;
  token: string;
  /**
   * Module tokens only: what the holder may act on. Without a scope a module token may register
   * any instance (but still only act on the instances it registered itself).
   */
  scope?: TokenScope;
}

/** Limits a module token to some instance ids and module types. */
export interface TokenScope {
  /** Instance id patterns: exact ids, or a prefix ending in `*` ("alb-*"). */
  instances?: readonly string[];
  /** Module types (lowercase: alb, dblb, ailb, rtmp). */
  moduleTypes?: readonly string[];
  /** At most this many live registrations at once (0 or absent: the NLB's limit). */
  maxRegistrations?: number;
}

export interface AuthConfig {
  enabled: boolean;
  tokens: TokenEntry[];
  /** Read-only RPCs are allowed without a token (principal "anonymous"). */
  anonymousRead?: boolean;
}

export type AuthResult =
  | { ok: true; principal: string; role: Role; scope?: TokenScope }
  | { ok: false; kind: 'unauthenticated' | 'permission_denied'; message: string };

/** The principal of calls made without a token (auth disabled, anonymous reads, probes). */
export const ANONYMOUS = 'anonymous';

const r = 'read' as const;
const m = 'module' as const;
const a = 'admin' as const;

/**
 * The minimum role for every RPC. Written out by hand, not derived from the generated code, so
 * that a new RPC without a policy fails test/unit/auth.test.ts instead of silently getting one.
 */
export const METHOD_ROLES: Readonly<Record<string, Role>> = {
  // NLBService: module lifecycle and reports.
  '/marchproxy.NLBService/RegisterModule': m,
  '/marchproxy.NLBService/UnregisterModule': m,
  '/marchproxy.NLBService/Heartbeat': m,
  '/marchproxy.NLBService/ReportMetrics': m,
  '/marchproxy.NLBService/UpdateRouting': m,
  // ModuleService's blue/green RPCs forward here with the module's own token.
  '/marchproxy.NLBService/UpdateDeployment': m,
  // NLBService: reads.
  '/marchproxy.NLBService/ListModules': r,
  '/marchproxy.NLBService/GetModuleInfo': r,
  '/marchproxy.NLBService/GetRoutingTable': r,
  '/marchproxy.NLBService/RouteRequest': r,
  '/marchproxy.NLBService/ValidateRoute': r,
  '/marchproxy.NLBService/GetNLBMetrics': r,
  '/marchproxy.NLBService/GetModuleMetrics': r,
  '/marchproxy.NLBService/StreamNLBMetrics': r,
  '/marchproxy.NLBService/CheckHealth': r,
  '/marchproxy.NLBService/GetNLBStatus': r,
  '/marchproxy.NLBService/GetNLBConfig': r,
  '/marchproxy.NLBService/GetLoadDistribution': r,
  // NLBService: operator actions.
  '/marchproxy.NLBService/UpdateNLBConfig': a,
  '/marchproxy.NLBService/RebalanceLoad': a,
  '/marchproxy.NLBService/TriggerScaling': a,
  // ModuleService: reads.
  '/marchproxy.ModuleService/GetStatus': r,
  '/marchproxy.ModuleService/CanHandle': r,
  '/marchproxy.ModuleService/GetRoutes': r,
  '/marchproxy.ModuleService/GetRateLimits': r,
  '/marchproxy.ModuleService/GetMetrics': r,
  '/marchproxy.ModuleService/GetInstances': r,
  '/marchproxy.ModuleService/GetActiveVersion': r,
  '/marchproxy.ModuleService/HealthCheck': r,
  '/marchproxy.ModuleService/GetStats': r,
  '/marchproxy.ModuleService/StreamMetrics': r,
  '/marchproxy.ModuleService/GetConfig': r,
  // ModuleService: operator actions.
  '/marchproxy.ModuleService/Reload': a,
  '/marchproxy.ModuleService/Shutdown': a,
  '/marchproxy.ModuleService/UpdateRoutes': a,
  '/marchproxy.ModuleService/DeleteRoute': a,
  '/marchproxy.ModuleService/SetRateLimit': a,
  '/marchproxy.ModuleService/RemoveRateLimit': a,
  '/marchproxy.ModuleService/Scale': a,
  '/marchproxy.ModuleService/SetTrafficWeight': a,
  '/marchproxy.ModuleService/Rollback': a,
  '/marchproxy.ModuleService/PromoteVersion': a,
  '/marchproxy.ModuleService/UpdateConfig': a,
  '/marchproxy.ModuleService/PauseRollout': a,
  '/marchproxy.ModuleService/ResumeRollout': a,
  '/marchproxy.ModuleService/Drain': a,
};

/** Infrastructure services any caller may use: load balancers probe health, tools reflect. */
const PUBLIC_SERVICE_PREFIXES = [
  '/grpc.health.v1.Health/',
  '/grpc.reflection.v1.ServerReflection/',
  '/grpc.reflection.v1alpha.ServerReflection/',
];

/** True for the gRPC health and reflection services, which need no token. */
export function isPublicMethod(methodPath: string): boolean {
  return PUBLIC_SERVICE_PREFIXES.some((p) => methodPath.startsWith(p));
}

/** The minimum role for a method; methods without a policy need admin. */
export function requiredRole(methodPath: string): Role {
  return Object.hasOwn(METHOD_ROLES, methodPath) ? METHOD_ROLES[methodPath] : 'admin';
}

/** True when `role` is at least `needed`. */
export function roleAllows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** Lists what is wrong with an auth config (empty when it is usable). Never echoes a token. */
export function authConfigProblems(config: AuthConfig): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const digests = new Set<string>();
  config.tokens.forEach((t, i) => {
    const label = t.name ? `token '${t.name}'` : `token #${i + 1}`;
    if (!t.name) problems.push(`token #${i + 1} has no name`);
    else if (names.has(t.name)) problems.push(`token name '${t.name}' is used twice`);
    names.add(t.name);
    if (!ROLES.includes(t.role))
      problems.push(`${label} has role '${String(t.role)}'; use read, module or admin`);
    if (!t.token) problems.push(`${label} is empty`);
    // A header value is printable ASCII, and "Bearer <token>" is split on whitespace.
    else if (!/^[\x21-\x7e]+$/.test(t.token))
      problems.push(`${label} must be printable ASCII without spaces`);
    if (t.scope) problems.push(...scopeProblems(label, t.role, t.scope));
    if (t.token) {
      const digest = sha256(t.token).toString('hex');
      if (digests.has(digest)) problems.push(`${label} has the same value as another token`);
      digests.add(digest);
    }
  });
  return problems;
}

/** An instance id (services/nlb/domain/validate.ts ID_PATTERN), optionally ending in `*`. */
const INSTANCE_PATTERN = /^[A-Za-z0-9._:-]{0,128}\*?$/;
const MODULE_TYPES = ['alb', 'dblb', 'ailb', 'rtmp'];

function scopeProblems(label: string, role: Role, scope: TokenScope): string[] {
  const out: string[] = [];
  if (role !== 'module') out.push(`${label} has a scope, but only module tokens take one`);
  for (const p of scope.instances ?? [])
    if (typeof p !== 'string' || p === '' || !INSTANCE_PATTERN.test(p))
      out.push(`${label}: instance pattern '${String(p)}' must be an instance id, optionally ending in *`);
  for (const t of scope.moduleTypes ?? [])
    if (!MODULE_TYPES.includes(t))
      out.push(`${label}: module type '${String(t)}' is not one of ${MODULE_TYPES.join(', ')}`);
  const max = scope.maxRegistrations;
  if (max !== undefined && (!Number.isInteger(max) || max < 0 || max > 1_000_000))
    out.push(`${label}: maxRegistrations must be an integer from 0 to 1000000`);
  return out;
}

/** True when `instanceId` matches one of `patterns` (exact, or prefix before a trailing *). */
export function instanceInScope(scope: TokenScope | undefined, instanceId: string): boolean {
  if (!scope?.instances || scope.instances.length === 0) return true;
  return scope.instances.some((p) =>
    p.endsWith('*') ? instanceId.startsWith(p.slice(0, -1)) : instanceId === p,
  );
}

/** True when the token may act on module type `type` (lowercase). */
export function moduleTypeInScope(scope: TokenScope | undefined, type: string): boolean {
  if (!scope?.moduleTypes || scope.moduleTypes.length === 0) return true;
  return scope.moduleTypes.includes(type);
}

interface CompiledEntry {
  name: string;
  role: Role;
  digest: Buffer;
  scope?: TokenScope;
}

/** A validated config with token digests computed once; tokens themselves are not kept. */
interface CompiledAuth {
  enabled: boolean;
  anonymousRead: boolean;
  entries: readonly CompiledEntry[];
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function compile(config: AuthConfig): CompiledAuth {
  const problems = new Problems();
  authConfigProblems(config).forEach((x) => problems.add(x));
  problems.check('auth config');
  return Object.freeze({
    enabled: config.enabled,
    anonymousRead: config.anonymousRead ?? false,
    entries: Object.freeze(
      config.tokens.map((t) => ({
        name: t.name,
        role: t.role,
        digest: sha256(t.token),
        ...(t.scope ? { scope: Object.freeze({ ...t.scope }) } : {}),
      })),
    ),
  });
}

/**
 * Finds the entry whose token matches. Both sides are hashed to equal length and every entry
 * is compared, so timing reveals neither which entry matched nor how much of a token did.
 */
function match(entries: readonly CompiledEntry[], token: string): CompiledEntry | undefined {
  const digest = sha256(token);
  let found: CompiledEntry | undefined;
  for (const e of entries) {
    const same = timingSafeEqual(e.digest, digest);
    found = same && !found ? e : found;
  }
  return found;
}

const MISSING_TOKEN = 'missing bearer token: pass --token or set MPCTL_TOKEN';
const NOT_BEARER = "authorization header is not a bearer token: send 'authorization: Bearer <token>'";
const NOT_RECOGNISED = 'token not recognised: check the token, or ask an operator for a current one';

function parseBearer(header: string): string | undefined {
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

function decide(auth: CompiledAuth, header: string | undefined, methodPath: string): AuthResult {
  if (!auth.enabled) return { ok: true, principal: ANONYMOUS, role: 'admin' };
  const needed = requiredRole(methodPath);
  const open = isPublicMethod(methodPath);

  if (header === undefined || header.trim() === '') {
    if (open || (auth.anonymousRead && needed === 'read'))
      return { ok: true, principal: ANONYMOUS, role: 'read' };
    return { ok: false, kind: 'unauthenticated', message: MISSING_TOKEN };
  }
  const token = parseBearer(header);
  const entry = token === undefined ? undefined : match(auth.entries, token);
  if (open)
    return entry
      ? { ok: true, principal: entry.name, role: entry.role }
      : { ok: true, principal: ANONYMOUS, role: 'read' };
  if (token === undefined) return { ok: false, kind: 'unauthenticated', message: NOT_BEARER };
  if (!entry) return { ok: false, kind: 'unauthenticated', message: NOT_RECOGNISED };
  if (!roleAllows(entry.role, needed)) {
    return {
      ok: false,
      kind: 'permission_denied',
      message: `role '${entry.role}' (token '${entry.name}') may not call ${methodPath}; needs '${needed}'`,
    };
  }
  return { ok: true, principal: entry.name, role: entry.role, scope: entry.scope };
}

/**
 * Decides whether a call may proceed, from the raw `authorization` header value and the full
 * method path. Refusals say what to do and never contain the token.
 */
export function authenticate(
  config: AuthConfig,
  authorization: string | undefined,
  methodPath: string,
): AuthResult {
  return decide(compile(config), authorization, methodPath);
}

/** Holds the live auth config; `update` swaps it for calls that start afterwards (rotation). */
export interface Authenticator {
  authenticate(authorization: string | undefined, methodPath: string): AuthResult;
  /** Validates and installs a new config; on invalid input throws and keeps the old one. */
  update(config: AuthConfig): void;
  /** Whether authentication is currently enforced. */
  readonly enabled: boolean;
}

/** Creates an authenticator over `initial`; throws an invalid_argument DomainError if unusable. */
export function createAuthenticator(initial: AuthConfig): Authenticator {
  // One reference to an immutable snapshot: a swap is a single assignment, so a call sees
  // either the old config or the new one, never a mix.
  let current = compile(initial);
  return {
    authenticate: (authorization, methodPath) => decide(current, authorization, methodPath),
    update(config) {
      current = compile(config);
    },
    get enabled() {
      return current.enabled;
    },
  };
}
