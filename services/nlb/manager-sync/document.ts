/**
 * The Manager's configuration document as MarchProxy NLB reads it, and its mapping onto the
 * NLB's RPC-level state. There is no Manager API spec in this repository: this shape is OUR
 * mapping (docs/deploying.md, "Manager sync"). Every top-level key is optional; an absent key
 * leaves that part of the NLB unchanged (a partial document).
 */
import { z } from 'zod';
import {
  MODULE_TYPES,
  PROTOCOLS,
  type ModuleTypeName,
  type ProtocolName,
  type RouteSpec,
} from '../domain/types.js';
import { VERSION_PATTERN } from '../domain/validate.js';

const moduleType = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.enum(MODULE_TYPES as unknown as [ModuleTypeName, ...ModuleTypeName[]]));
const version = z.string().regex(VERSION_PATTERN, 'a version such as 1.0');
const protocol = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.enum(PROTOCOLS as unknown as [ProtocolName, ...ProtocolName[]]));
const pct = z.number().int().min(0).max(100);

export const managerModuleSchema = z.object({
  type: moduleType,
  versions: z.array(version).max(32).default([]),
  enabled: z.boolean().default(true),
});

export const managerRouteSchema = z.object({
  id: z.string().min(1).max(128),
  module: moduleType,
  protocol: protocol.optional(),
  host: z.string().max(253).default('*'),
  path: z.string().max(1024).default(''),
  port: z.number().int().min(0).max(65535).default(0),
  source: z.string().max(253).default(''),
  headers: z.record(z.string(), z.string()).default({}),
  priority: z.number().int().min(0).max(1_000_000).default(0),
});

/** A whole number of requests per window, as controllers' token buckets count them. */
const perWindow = (field: string, slower: string) =>
  z
    .number()
    .int({
      error: `${field} must be a whole number${slower ? ` (for slower rates use ${slower})` : ''}`,
    })
    .min(0)
    .max(1_000_000_000)
    .optional();

export const managerRateLimitSchema = z
  .object({
    module: moduleType,
    /** Only that version's controllers; without it, every controller of the module type. */
    version: version.optional(),
    /** What is limited (the controller's target): "*", a client IP or CIDR, an API key, a route id. */
    key: z.string().min(1).max(256),
    requestsPerSecond: perWindow('requestsPerSecond', 'requestsPerMinute or requestsPerHour'),
    requestsPerMinute: perWindow('requestsPerMinute', 'requestsPerHour'),
    requestsPerHour: perWindow('requestsPerHour', ''),
    /** Extra requests above the per-second rate in a burst. */
    burst: z.number().int().min(0).max(1_000_000_000).optional(),
    enabled: z.boolean().default(true),
  })
  .refine((l) => (l.requestsPerSecond ?? 0) + (l.requestsPerMinute ?? 0) + (l.requestsPerHour ?? 0) > 0, {
    error: 'a rate limit needs requestsPerSecond, requestsPerMinute or requestsPerHour above 0',
  });

export const managerScalingPolicySchema = z.object({
  module: moduleType,
  version: version.optional(),
  minInstances: z.number().int().min(0).max(10_000).optional(),
  maxInstances: z.number().int().min(1).max(10_000).optional(),
  targetCpuPercent: pct.optional(),
  targetMemoryPercent: pct.optional(),
  targetConnections: z.number().int().min(0).optional(),
  cooldownSeconds: z.number().int().min(0).optional(),
  autoScalingEnabled: z.boolean().optional(),
});

export const managerDeploymentSchema = z.object({
  module: moduleType,
  /** version → traffic weight in percent; the weights should add up to 100. */
  weights: z.record(version, pct),
});

export const managerDocumentSchema = z
  .object({
    /** The Manager's revision of this document (opaque; logged and reported). */
    revision: z.union([z.string(), z.number()]).optional(),
    modules: z.array(managerModuleSchema).max(64).optional(),
    routes: z.array(managerRouteSchema).max(1024).optional(),
    rateLimits: z.array(managerRateLimitSchema).max(1024).optional(),
    scalingPolicies: z.array(managerScalingPolicySchema).max(256).optional(),
    deployments: z.array(managerDeploymentSchema).max(64).optional(),
  })
  .superRefine((doc, ctx) => {
    const declared = doc.modules && new Map(doc.modules.map((m) => [m.type, new Set(m.versions)]));
    const check = (type: ModuleTypeName, v: string | undefined, path: (string | number)[]) => {
      if (!declared) return;
      const versions = declared.get(type);
      if (!versions) ctx.addIssue({ code: 'custom', path, message: `module ${type} is not in modules` });
      else if (v && versions.size && !versions.has(v))
        ctx.addIssue({ code: 'custom', path, message: `${type} has no version ${v} in modules` });
    };
    doc.routes?.forEach((r, i) => check(r.module, undefined, ['routes', i, 'module']));
    doc.rateLimits?.forEach((r, i) => check(r.module, r.version, ['rateLimits', i, 'module']));
    doc.scalingPolicies?.forEach((s, i) => check(s.module, s.version, ['scalingPolicies', i, 'module']));
    doc.deployments?.forEach((d, i) => {
      for (const v of Object.keys(d.weights)) check(d.module, v, ['deployments', i, 'weights', v]);
      const sum = Object.values(d.weights).reduce((a, b) => a + b, 0);
      if (sum !== 100)
        ctx.addIssue({
          code: 'custom',
          path: ['deployments', i, 'weights'],
          message: `weights add up to ${sum}, not 100`,
        });
    });
    // One limit per key and scope: a controller holds one limit id per key (rate-limits.ts).
    const limits = new Set<string>();
    doc.rateLimits?.forEach((r, i) => {
      const scope = `${r.module}${r.version ? `@${r.version}` : ''} key ${JSON.stringify(r.key)}`;
      if (limits.has(scope))
        ctx.addIssue({
          code: 'custom',
          path: ['rateLimits', i, 'key'],
          message: `${scope} appears twice`,
        });
      limits.add(scope);
    });
    const ids = new Set<string>();
    doc.routes?.forEach((r, i) => {
      if (ids.has(r.id))
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'id'],
          message: `route id ${r.id} appears twice`,
        });
      ids.add(r.id);
    });
  });

export type ManagerDocument = z.output<typeof managerDocumentSchema>;
export type ManagerRateLimit = z.output<typeof managerRateLimitSchema>;

/** Route ids the Manager owns carry this prefix, so they never collide with operator routes. */
export const MANAGER_ROUTE_PREFIX = 'manager:';

/** A Manager route as the NLB's RouteSpec (an operator route tagged source=manager). */
export function toRouteSpec(r: z.output<typeof managerRouteSchema>): RouteSpec {
  return {
    routeId: `${MANAGER_ROUTE_PREFIX}${r.id}`,
    protocol: r.protocol ?? null,
    sourcePattern: r.source,
    destinationPattern: r.host,
    sourcePort: 0,
    destinationPort: r.port,
    headers: r.headers,
    pathPattern: r.path,
    priority: r.priority,
    metadata: { module_type: r.module, source: 'manager' },
  };
}

/** Scaling overrides keyed "ALB" or "ALB@2.0", as the scaling section wants them. */
export function toScalingOverrides(
  doc: ManagerDocument,
  defaults: Record<string, unknown>,
): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const p of doc.scalingPolicies ?? []) {
    const { module, version: v, ...rest } = p;
    const fields = Object.fromEntries(Object.entries(rest).filter(([, x]) => x !== undefined));
    out[v ? `${module}@${v}` : module] = { ...defaults, ...fields };
  }
  return out;
}

/** "routes.3.module: module RTMP is not in modules" lines from a zod error. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.slice(0, 20).map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`);
}
