/**
 * The NLBService gRPC implementation: 21 thin handlers that convert, call the core, convert
 * back. Validation and decisions live in the domain and core; errors map at one edge.
 */
import { createHash } from 'node:crypto';
import type { NLBServiceServer } from '../../../proto/gen/marchproxy/nlb.js';
import type { ConfigUpdate, MetricDataPoint, ModuleMetrics } from '../../../proto/gen/marchproxy/types.js';
import { invalidArgument, permissionDenied, Problems, resourceExhausted } from '../../shared/errors.js';
import {
  serverStream,
  unary,
  unaryEnvelope,
  type Envelope,
  type HandlerDeps,
} from '../../shared/grpc/handlers.js';
import { parse as parseYaml } from 'yaml';
import type { SeriesData } from '../domain/metrics-store.js';
import { SECTION_NAMES } from '../domain/nlb-config.js';
import { OPERATOR } from '../domain/routes.js';
import type { Nlb } from '../nlb.js';
import { checkHealth, groupSeries, loadDistribution, rebalance, status, triggerScaling } from '../nlb-ops.js';
import type { RoutingService } from '../nlb-routing.js';
import type { ModuleTypeName } from '../domain/types.js';
import * as c from './convert.js';

export interface NlbServiceDeps extends HandlerDeps {
  nlb: Nlb;
  routing: RoutingService;
  /** Runs the autoscaler on demand (TriggerScaling "auto"), when one is running. */
  autoscale?: (type: ModuleTypeName | null) => Promise<{ message: string; current: number; target: number }>;
}

const failed =
  <T>(rest: T) =>
  (e: Envelope): T & Envelope => ({ ...rest, ...e });

function seriesToPoints(series: SeriesData[]): MetricDataPoint[] {
  return series.flatMap((s) =>
    s.points.map((p) => ({
      name: s.name,
      value: p.value,
      labels: { ...s.labels },
      timestamp: new Date(p.tsMs),
    })),
  );
}

function moduleMetricsMap(
  nlb: Nlb,
  groups: Map<string, SeriesData[]>,
  collectedAt: Date,
): Record<string, ModuleMetrics> {
  const out: Record<string, ModuleMetrics> = {};
  for (const [key, series] of groups) {
    const r = nlb.registry.get(key);
    const type = r?.moduleType ?? (key.split('@')[0] as ModuleTypeName);
    out[key] = {
      instanceId: r ? key : '',
      moduleType: c.moduleTypeEnum(type),
      metrics: seriesToPoints(series),
      collectedAt,
    };
  }
  return out;
}

function timeRange(start: Date | undefined, end: Date | undefined, now: number): [number, number] {
  const to = end ? end.getTime() : now;
  const from = start ? start.getTime() : to - 3_600_000;
  if (from > to) throw invalidArgument('start_time is after end_time');
  return [from, to];
}

/** Parses a ConfigUpdate's body (JSON or YAML) after checking its checksum. */
function configBody(cfg: ConfigUpdate): unknown {
  const text = Buffer.from(cfg.configData).toString('utf8');
  if (cfg.checksum) {
    const sum = createHash('sha256').update(cfg.configData).digest('hex');
    if (sum !== cfg.checksum.toLowerCase())
      throw invalidArgument(`checksum ${cfg.checksum} does not match the sha256 of config_data (${sum})`);
  }
  if (!text.trim()) return {};
  try {
    return parseYaml(text) as unknown;
  } catch (e) {
    throw invalidArgument(`config_data is neither JSON nor YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Builds the NLBService implementation. */
export function createNlbService(d: NlbServiceDeps): NLBServiceServer {
  const { nlb, routing } = d;
  const now = () => d.clock.nowDate();
  const P = '/marchproxy.NLBService/';
  const streams = createStreamSlots((message) => nlb.noteLimit({ limit: 'stream_subscribers', message }));
  return {
    registerModule: unaryEnvelope(
      d,
      `${P}RegisterModule`,
      (req, ctx) => {
        const spec = c.instanceSpecFromProto(req.instance, req.capabilities);
        const routes = req.initialRoutes.map((r, i) => c.routeFromProto(r, `initial_routes[${i}]`));
        const health = c.healthName(req.instance!.healthStatus, 'instance.health_status');
        const initial = health === 'STARTING' || health === 'DEGRADED' ? health : 'HEALTHY';
        const r = nlb.register(spec, routes, initial, ctx);
        return {
          success: true,
          message: `registered ${r.instanceId} (${r.moduleType} ${r.version})`,
          registrationId: r.registrationId,
          registeredAt: new Date(r.registeredAtMs),
        };
      },
      failed({ registrationId: '', registeredAt: undefined }),
    ),

    unregisterModule: unaryEnvelope(
      d,
      `${P}UnregisterModule`,
      (req, ctx) => {
        const r = nlb.instance(req.instanceId);
        const open = nlb.unregister(
          req.instanceId,
          req.registrationId,
          req.graceful,
          req.drainTimeoutSeconds,
          ctx,
        );
        const stillThere = nlb.registry.get(req.instanceId);
        return {
          success: true,
          message: stillThere
            ? `${r.instanceId} is draining ${open} connection(s)`
            : `${r.instanceId} unregistered`,
          activeConnectionsDrained: open,
        };
      },
      failed({ activeConnectionsDrained: 0 }),
    ),

    heartbeat: unary(d, `${P}Heartbeat`, (req, ctx) => {
      if (!req.instanceId) throw invalidArgument('instance_id is required');
      const out = nlb.heartbeat(
        req.instanceId,
        req.registrationId,
        c.healthName(req.status, 'status'),
        c.statsFromProto(req.currentStats),
        ctx,
      );
      return {
        acknowledged: out.acknowledged,
        message: out.acknowledged ? 'ok' : out.reason,
        serverTime: now(),
        shouldReload: out.instructions.reload === 'true',
        shouldScale: out.instructions.scale !== undefined,
        instructions: out.instructions,
      };
    }),

    listModules: unary(d, `${P}ListModules`, (req) => {
      const page = nlb.listModules(
        c.moduleTypeName(req.moduleTypeFilter, 'module_type_filter'),
        c.healthName(req.statusFilter, 'status_filter'),
        c.queryFromProto(req.query),
      );
      return {
        modules: page.items.map((r) => c.instanceToProto(r, nlb.weightOf(r))),
        totalModules: page.total,
        pagination: {
          page: page.page,
          pageSize: page.pageSize,
          totalItems: page.total,
          totalPages: page.totalPages,
        },
      };
    }),

    getModuleInfo: unary(d, `${P}GetModuleInfo`, (req) => {
      const r = nlb.instance(req.instanceId);
      const dep = nlb.deployments.get(r.moduleType);
      return {
        instance: c.instanceToProto(r, nlb.weightOf(r)),
        routes: nlb.routes
          .all()
          .filter((e) => e.owner === r.instanceId)
          .map((e) => c.routeToProto(e.route)),
        stats: c.statsToProto(r.instanceId, r.stats),
        deploymentConfig: c.blueGreen(dep),
        details: {
          registration_id: r.registrationId,
          registered_at: new Date(r.registeredAtMs).toISOString(),
          last_heartbeat: new Date(r.lastHeartbeatAtMs).toISOString(),
          reported_status: r.reportedHealth,
          draining: String(r.draining),
          nlb_connections: String(r.connections),
          ...(dep
            ? {
                rollout_phase: dep.phase,
                version_weights: Object.entries(dep.weights)
                  .map(([v, w]) => `${v}=${w}`)
                  .join(','),
              }
            : {}),
          ...Object.fromEntries(Object.entries(r.capabilities).map(([k, v]) => [`capability.${k}`, v])),
        },
      };
    }),

    updateRouting: unaryEnvelope(
      d,
      `${P}UpdateRouting`,
      (req, ctx) => {
        const owner = req.sourceInstanceId || OPERATOR;
        if (ctx.role !== 'admin' && owner === OPERATOR)
          throw permissionDenied(
            `token '${ctx.principal}' (role ${ctx.role}) may only update its instances' routes: set source_instance_id, or use an admin token for operator routes`,
          );
        if (owner !== OPERATOR) nlb.owners.checkAct(ctx, owner, 'update the routes of');
        const specs = req.routes.map((r, i) => c.routeFromProto(r, `routes[${i}]`));
        const checked = nlb.checkRoutes(specs, owner);
        if (checked.problems.length) {
          return {
            success: false,
            message: `${checked.problems.length} problem(s); nothing was applied`,
            routesUpdated: 0,
            validationErrors: checked.problems,
            error: { code: 5, message: checked.problems[0], details: {}, occurredAt: now() },
          };
        }
        if (req.validateOnly) {
          return {
            success: true,
            message: `${specs.length} route(s) valid; nothing applied (validate_only)`,
            routesUpdated: 0,
            validationErrors: [],
          };
        }
        const n = nlb.applyRoutes(checked.routes, checked.moduleTypes, owner, req.replaceAll);
        return {
          success: true,
          message: `${n} route(s) applied${req.replaceAll ? ', others of the same owner removed' : ''}`,
          routesUpdated: n,
          validationErrors: [],
        };
      },
      failed({ routesUpdated: 0, validationErrors: [] as string[] }),
    ),

    getRoutingTable: unary(d, `${P}GetRoutingTable`, (req) => {
      const page = nlb.routingTable(
        c.protocolName(req.protocolFilter, 'protocol_filter'),
        req.destinationFilter,
        c.queryFromProto(req.query),
      );
      return {
        entries: page.items.map((e) => ({
          route: c.routeToProto(e.route),
          targetInstanceId: e.owner,
          targetModuleType: c.moduleTypeEnum(e.moduleType),
          currentConnections: e.connections,
          createdAt: new Date(e.createdAtMs),
          lastUsed: e.lastUsedMs ? new Date(e.lastUsedMs) : undefined,
        })),
        totalEntries: page.total,
        pagination: {
          page: page.page,
          pageSize: page.pageSize,
          totalItems: page.total,
          totalPages: page.totalPages,
        },
      };
    }),

    routeRequest: unary(d, `${P}RouteRequest`, async (req) => {
      if (!req.route)
        throw invalidArgument(
          'route is required: describe the request (protocol, destination_pattern, path_pattern, …)',
        );
      const dec = await routing.route(c.routeFromProto(req.route), req.context, req.dryRun);
      return {
        routed: dec.routed,
        targetInstanceId: dec.instance?.instanceId ?? '',
        targetModuleType: dec.moduleType ? c.moduleTypeEnum(dec.moduleType) : 0,
        targetAddress: dec.address,
        priority: dec.priority,
        message: dec.message,
        error: dec.routed
          ? undefined
          : {
              code: dec.failure === 'not_found' ? 3 : 4,
              message: dec.message,
              details: {},
              occurredAt: now(),
            },
      };
    }),

    validateRoute: unary(d, `${P}ValidateRoute`, async (req) => {
      if (!req.route) throw invalidArgument('route is required');
      const v = await routing.validate(c.routeFromProto(req.route));
      return {
        valid: v.valid,
        hasHandler: v.hasHandler,
        capableInstances: v.capable,
        validationErrors: v.errors,
        details: v.details,
      };
    }),

    reportMetrics: unary(d, `${P}ReportMetrics`, (req, ctx) => {
      if (!req.instanceId) throw invalidArgument('instance_id is required');
      if (req.metrics && req.metrics.instanceId && req.metrics.instanceId !== req.instanceId) {
        throw invalidArgument(
          `metrics.instance_id ${req.metrics.instanceId} differs from instance_id ${req.instanceId}`,
        );
      }
      const n = nlb.reportMetrics(
        req.instanceId,
        (req.metrics?.metrics ?? []).map((m) => ({
          name: m.name,
          value: m.value,
          labels: m.labels,
          tsMs: m.timestamp?.getTime() ?? 0,
        })),
        ctx,
      );
      return { acknowledged: true, message: `${n} data point(s) stored`, processedAt: now() };
    }),

    getNlbMetrics: unary(d, `${P}GetNLBMetrics`, (req) => {
      const [from, to] = timeRange(req.startTime, req.endTime, d.clock.now());
      const { nlb: own, modules } = groupSeries(
        nlb.allMetrics(req.metricNames, from, to, !req.aggregate),
        req.aggregate,
      );
      const collectedAt = now();
      return {
        metrics: seriesToPoints(own),
        moduleMetrics: moduleMetricsMap(nlb, modules, collectedAt),
        collectedAt,
      };
    }),

    getModuleMetrics: unary(d, `${P}GetModuleMetrics`, (req) => {
      const r = nlb.instance(req.instanceId);
      const [from, to] = timeRange(req.startTime, req.endTime, d.clock.now());
      const series = nlb.instanceMetrics(r.instanceId, req.metricNames, from, to);
      const collectedAt = now();
      return {
        metrics: {
          instanceId: r.instanceId,
          moduleType: c.moduleTypeEnum(r.moduleType),
          metrics: seriesToPoints(series),
          collectedAt,
        },
        collectedAt,
      };
    }),

    streamNlbMetrics: serverStream(d, `${P}StreamNLBMetrics`, async (req, send, ctx) => {
      const p = new Problems();
      if (req.intervalSeconds < 0 || req.intervalSeconds > 3600)
        p.add(`interval_seconds ${req.intervalSeconds} is out of range: use 1 to 3600 (0 = default)`);
      p.check('stream request');
      const intervalMs = (req.intervalSeconds || nlb.config.metrics.defaultStreamIntervalSeconds) * 1000;
      const release = streams.acquire(nlb.config.metrics.maxStreamSubscribers);
      try {
        while (!ctx.signal.aborted) {
          const series = nlb.metrics.latest(req.metricNames, {});
          const asData: SeriesData[] = series.map((s) => ({
            name: s.name,
            labels: s.labels,
            points: [s.point],
          }));
          const { nlb: own, modules } = groupSeries(asData, true);
          const ts = now();
          await send({
            metrics: seriesToPoints(own),
            moduleMetrics: req.includeModules ? moduleMetricsMap(nlb, modules, ts) : {},
            timestamp: ts,
          });
          await d.clock.sleep(intervalMs, ctx.signal).catch(() => undefined);
        }
      } finally {
        release();
      }
    }),

    checkHealth: unary(d, `${P}CheckHealth`, async (req) => {
      const h = await checkHealth(nlb, req.deepCheck, req.checkModules);
      return {
        status: c.healthEnum(h.status),
        message: h.message,
        moduleHealth: Object.fromEntries(
          Object.entries(h.moduleHealth).map(([k, v]) => [k, c.healthEnum(v)]),
        ),
        checks: h.checks,
        checkedAt: new Date(h.checkedAtMs),
      };
    }),

    getNlbStatus: unary(d, `${P}GetNLBStatus`, (req) => {
      const s = status(nlb);
      return {
        status: c.healthEnum(s.status),
        version: s.version,
        startedAt: new Date(s.startedAtMs),
        totalRequests: s.totalRequests,
        activeConnections: s.activeConnections,
        registeredModules: s.registeredModules,
        modulesByType: s.modulesByType,
        modules: req.includeModules ? s.modules.map((r) => c.instanceToProto(r, nlb.weightOf(r))) : [],
        details: s.details,
      };
    }),

    updateNlbConfig: unaryEnvelope(
      d,
      `${P}UpdateNLBConfig`,
      (req) => {
        if (!req.config?.configType)
          throw invalidArgument(`config.config_type is required: one of ${SECTION_NAMES.join(', ')}`);
        const r = nlb.updateConfig(req.config.configType, configBody(req.config), req.validateOnly);
        if (r.requiresRestart && !req.validateOnly && !req.restartRequired) {
          d.logger.warn(`config section ${r.section} changed; it applies after a restart`);
        }
        return {
          success: true,
          message: req.validateOnly
            ? `section ${r.section} is valid; nothing applied (validate_only)`
            : r.requiresRestart
              ? `section ${r.section} saved; restart the NLB to apply it`
              : `section ${r.section} applied`,
          validationPassed: true,
          validationErrors: [],
          requiresRestart: r.requiresRestart,
        };
      },
      (e) => ({
        ...e,
        validationPassed: false,
        validationErrors: (e.error?.details?.problems ?? e.message).split('\n'),
        requiresRestart: false,
      }),
    ),

    getNlbConfig: unary(d, `${P}GetNLBConfig`, (req) => {
      const names = req.configType ? [req.configType.toLowerCase()] : SECTION_NAMES;
      const unknown = names.filter((n) => !(SECTION_NAMES as string[]).includes(n));
      if (unknown.length)
        throw invalidArgument(
          `unknown config_type "${req.configType}"; use one of ${SECTION_NAMES.join(', ')}`,
        );
      const updatedAt = now();
      return {
        configs: names.map((n) => {
          const data = Buffer.from(JSON.stringify((nlb.config as Record<string, unknown>)[n], null, 2));
          return {
            configId: n,
            configType: n,
            configData: data,
            checksum: createHash('sha256').update(data).digest('hex'),
            updatedAt,
            metadata: {},
          };
        }),
        lastUpdated: updatedAt,
      };
    }),

    rebalanceLoad: unaryEnvelope(
      d,
      `${P}RebalanceLoad`,
      (req) => {
        const r = rebalance(nlb, req.force, req.targetInstances, req.strategy);
        return {
          success: true,
          message: r.message,
          previousDistribution: Object.fromEntries(r.previous),
          newDistribution: Object.fromEntries(r.next),
        };
      },
      failed({ previousDistribution: {}, newDistribution: {} }),
    ),

    getLoadDistribution: unary(d, `${P}GetLoadDistribution`, (req) => {
      const r = loadDistribution(nlb, c.moduleTypeName(req.moduleTypeFilter, 'module_type_filter'));
      return {
        distribution: r.distribution,
        balanceScore: r.balanceScore,
        measuredAt: new Date(r.measuredAtMs),
      };
    }),

    triggerScaling: unaryEnvelope(
      d,
      `${P}TriggerScaling`,
      async (req) => {
        const r = await triggerScaling(
          nlb,
          {
            instanceId: req.instanceId,
            moduleType: c.moduleTypeName(req.moduleType, 'module_type'),
            action: req.scalingAction,
            targetInstances: req.targetInstances,
            config: c.scalingFromProto(req.config),
          },
          d.autoscale,
        );
        return {
          success: true,
          message: r.message,
          currentInstances: r.current,
          targetInstances: r.target,
          scalingAction: r.action,
        };
      },
      failed({ currentInstances: 0, targetInstances: 0, scalingAction: '' }),
    ),

    updateDeployment: unaryEnvelope(
      d,
      `${P}UpdateDeployment`,
      (req, ctx) => {
        const t = c.moduleTypeName(req.moduleType, 'module_type', false)!;
        nlb.owners.checkModuleType(ctx, t.toLowerCase(), 'change the deployment of');
        const r = nlb.updateDeployment(t, c.deploymentAction(req.action), {
          version: req.version,
          weight: req.weight,
          promotionRate: req.promotionRate,
          immediate: req.immediate,
          validateOnly: req.validateOnly,
          reason: req.reason,
          requestedBy: req.requestedBy,
        });
        return { success: true, message: r.message, deployment: c.deploymentToProto(r.deployment) };
      },
      failed({ deployment: undefined }),
    ),
  };
}

/** Counts one service's stream subscribers against the configured maximum. */
function createStreamSlots(onLimit: (message: string) => void) {
  let active = 0;
  return {
    acquire(max: number): () => void {
      if (active >= max) {
        const message = `too many metric streams (${max}); close one or raise metrics.maxStreamSubscribers`;
        onLimit(message);
        throw resourceExhausted(message);
      }
      active++;
      let released = false;
      return () => {
        if (!released) {
          released = true;
          active--;
        }
      };
    },
  };
}
