/**
 * RouteRequest and ValidateRoute: the selection the data plane uses (DESIGN.md §2.3-2.4),
 * with CanHandle answers cached per controller and route shape, invalidated by any registry or
 * routing change (no gRPC call on a cached path).
 */
import { Problems } from '../shared/errors.js';
import { Registry } from './domain/registry.js';
import { sameShape, type RequestFacts, type RouteEntry } from './domain/routes.js';
import { selectInstance } from './domain/selection.js';
import type { InstanceRecord, ModuleTypeName, RouteSpec } from './domain/types.js';
import { validateRoute } from './domain/validate.js';
import type { Nlb } from './nlb.js';
import { routeModuleType } from './route-identity.js';

interface CacheEntry {
  expiresMs: number;
  canHandle: boolean;
  priority: number;
  reason: string;
}

export interface RouteDecision {
  routed: boolean;
  instance?: InstanceRecord;
  moduleType?: ModuleTypeName;
  address: string;
  priority: number;
  message: string;
  /** Set when not routed: why, as a domain error kind. */
  failure?: 'not_found' | 'unavailable';
  /** The route that matched (when routed). */
  routeId?: string;
}

export interface RouteOptions {
  /** Instances to leave out (the data plane: ejected outliers, instances already tried). */
  exclude?: (r: InstanceRecord) => boolean;
}

interface Capable {
  instances: InstanceRecord[];
  reasons: string[];
}

function capableOf(
  routable: InstanceRecord[],
  answers: ReadonlyArray<readonly [string, CacheEntry]>,
): Capable {
  const ok = new Set(answers.filter(([, e]) => e.canHandle).map(([a]) => a));
  return {
    instances: routable.filter((r) => ok.has(r.address)),
    reasons: answers.filter(([, e]) => !e.canHandle).map(([a, e]) => `${a}: ${e.reason}`),
  };
}

export class RoutingService {
  private readonly cache = new Map<string, CacheEntry>();
  canHandleCalls = 0;

  constructor(private readonly nlb: Nlb) {}

  /** Facts of a request described by a Route plus context overrides. */
  static facts(route: RouteSpec, context: Record<string, string>): RequestFacts {
    return {
      protocol: route.protocol,
      host: context.host ?? route.destinationPattern,
      destinationPort: route.destinationPort,
      path: context.path ?? route.pathPattern,
      headers: route.headers,
      sourceAddress: context.client_address ?? route.sourcePattern,
      sourcePort: route.sourcePort,
    };
  }

  private cacheKey(address: string, route: RouteSpec, context: Record<string, string>): string {
    // The client address is a per-connection fact: keying on it would put a CanHandle call on
    // nearly every new connection's path (DESIGN.md §2.3).
    const ctx = Object.entries(context)
      .filter(([k]) => k !== 'client_address')
      .sort();
    return JSON.stringify([
      address,
      this.nlb.registryRevision,
      this.nlb.routes.revision,
      route.protocol,
      route.destinationPattern,
      route.destinationPort,
      route.pathPattern,
      route.headers,
      ctx,
    ]);
  }

  /** CanHandle of one controller, cached; a controller that cannot answer is not excluded. */
  async canHandle(address: string, route: RouteSpec, context: Record<string, string>): Promise<CacheEntry> {
    const now = this.nlb.deps.clock.now();
    const key = this.cacheKey(address, route, context);
    const hit = this.cache.get(key);
    if (hit && hit.expiresMs > now) return hit;
    const { canHandleTimeoutMs, canHandleCacheTtlMs } = this.nlb.config.routing;
    let entry: CacheEntry;
    try {
      this.canHandleCalls++;
      const r = await this.nlb.deps.modules.canHandle(address, route, context, canHandleTimeoutMs);
      entry = {
        expiresMs: now + canHandleCacheTtlMs,
        canHandle: r.canHandle,
        priority: r.priority,
        reason: r.reason,
      };
    } catch (e) {
      // Unknown is not "no": route by the table alone, and ask again soon.
      entry = {
        expiresMs: now + Math.min(canHandleCacheTtlMs, 5000),
        canHandle: true,
        priority: 0,
        reason: `CanHandle unavailable (${(e as Error).message})`,
      };
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, entry);
    return entry;
  }

  /** A cached, unexpired CanHandle answer, or undefined. */
  private cached(address: string, route: RouteSpec, context: Record<string, string>): CacheEntry | undefined {
    const hit = this.cache.get(this.cacheKey(address, route, context));
    return hit && hit.expiresMs > this.nlb.deps.clock.now() ? hit : undefined;
  }

  /**
   * Instances of a type whose controllers say they can handle the route. When every answer is
   * cached (the data plane's steady state) the result comes back without a promise.
   */
  private capable(
    t: ModuleTypeName,
    route: RouteSpec,
    context: Record<string, string>,
    exclude?: (r: InstanceRecord) => boolean,
  ): Capable | Promise<Capable> {
    const routable = this.nlb.registry
      .all()
      .filter((r) => r.moduleType === t && Registry.routable(r) && !exclude?.(r));
    const addresses = [...new Set(routable.map((r) => r.address))];
    const hits = addresses.map((a) => [a, this.cached(a, route, context)] as const);
    if (hits.every(([, e]) => e)) return capableOf(routable, hits as Array<readonly [string, CacheEntry]>);
    return Promise.all(
      hits.map(async ([a, e]) => [a, e ?? (await this.canHandle(a, route, context))] as const),
    ).then((answers) => capableOf(routable, answers));
  }

  /** RouteRequest: match → CanHandle → version weight → least connections. */
  async route(
    route: RouteSpec,
    context: Record<string, string>,
    dryRun: boolean,
    opts: RouteOptions = {},
  ): Promise<RouteDecision> {
    const p = new Problems();
    validateRoute(p, route, 'route');
    p.check('route request');
    const facts = RoutingService.facts(route, context);
    const matches: RouteEntry[] = this.nlb.routes.match(facts);
    const describe = `${facts.protocol ?? 'any protocol'}${facts.host ? ` host ${facts.host}` : ''}${facts.destinationPort ? ` port ${facts.destinationPort}` : ''}${facts.path ? ` path ${facts.path}` : ''}`;
    if (matches.length === 0) {
      this.nlb.counters.routingFailures++;
      this.nlb.emit({ type: 'routing', result: 'no_route', moduleType: '', version: '' });
      return {
        routed: false,
        address: '',
        priority: 0,
        message: `no route matches ${describe}; add one with mpctl routes apply`,
        failure: 'not_found',
      };
    }
    const tried: string[] = [];
    for (const m of matches) {
      if (tried.includes(m.moduleType)) continue;
      tried.push(m.moduleType);
      const c = this.capable(m.moduleType, route, context, opts.exclude);
      const { instances, reasons } = c instanceof Promise ? await c : c;
      const choice = selectInstance(
        instances,
        this.nlb.deployments.get(m.moduleType)?.weights,
        this.nlb.selection,
        this.nlb.deps.rng,
      );
      if (!choice) {
        if (reasons.length) tried[tried.length - 1] += ` (${reasons.join('; ')})`;
        continue;
      }
      if (!dryRun) {
        this.nlb.counters.routed++;
        this.nlb.routes.touch(m.route.routeId, this.nlb.deps.clock.now());
        this.nlb.emit({
          type: 'routing',
          result: 'routed',
          moduleType: m.moduleType,
          version: choice.version,
        });
      }
      const i = choice.instance;
      return {
        routed: true,
        instance: i,
        moduleType: m.moduleType,
        address: i.trafficAddress || i.address,
        priority: m.route.priority,
        routeId: m.route.routeId,
        message: `route ${m.route.routeId} → ${m.moduleType} ${choice.version} instance ${i.instanceId}${choice.fallback ? ' (no weighted version available; used a 0-weight version)' : ''}${dryRun ? ' (dry run)' : ''}`,
      };
    }
    this.nlb.counters.routingFailures++;
    this.nlb.emit({ type: 'routing', result: 'no_instance', moduleType: tried.join(','), version: '' });
    return {
      routed: false,
      address: '',
      priority: matches[0].route.priority,
      message: `routes match ${describe} but no healthy instance can take it: ${tried.join(', ')}`,
      failure: 'unavailable',
    };
  }

  /** ValidateRoute: syntax, conflicts, and which healthy instances could handle it. */
  async validate(route: RouteSpec): Promise<{
    valid: boolean;
    hasHandler: boolean;
    capable: string[];
    errors: string[];
    details: Record<string, string>;
  }> {
    const p = new Problems();
    validateRoute(p, route, 'route');
    const mt = routeModuleType(route);
    if (!mt && route.metadata.module_type === undefined)
      p.add('route: say which module type serves it with metadata.module_type or a protocol');
    const details: Record<string, string> = {};
    if (mt) details.module_type = mt;
    for (const e of this.nlb.routes.all()) {
      if (e.route.routeId === route.routeId) {
        details.replaces = e.route.routeId;
        continue;
      }
      if (sameShape(e.route, route) && e.route.priority === route.priority && mt && e.moduleType !== mt) {
        p.add(
          `conflicts with route ${e.route.routeId}: same match and priority ${route.priority}, but it goes to ${e.moduleType}; change the priority or the match`,
        );
      } else if (sameShape(e.route, route)) {
        details[`overlaps_${e.route.routeId}`] = `same match, priority ${e.route.priority} → ${e.moduleType}`;
      }
    }
    if (!p.empty || !mt) return { valid: false, hasHandler: false, capable: [], errors: p.list, details };
    const { instances, reasons } = await Promise.resolve(this.capable(mt, route, {}));
    if (reasons.length) details.refused = reasons.join('; ');
    return {
      valid: true,
      hasHandler: instances.length > 0,
      capable: instances.map((r) => r.instanceId).sort(),
      errors: [],
      details,
    };
  }
}
