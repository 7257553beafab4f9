/**
 * The ModuleService gRPC implementation for one controller: 25 thin handlers over the
 * controller, its instances and the NLB (blue/green RPCs forward to NLBService.UpdateDeployment).
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import type { ModuleServiceServer } from '../../../proto/gen/marchproxy/module.js';
import type { UpdateDeploymentResponse } from '../../../proto/gen/marchproxy/nlb.js';
import {
  DeploymentAction,
  HealthStatus,
  StatusCode,
  type DeploymentState,
  type ModuleInstance,
  type RateLimit,
} from '../../../proto/gen/marchproxy/types.js';
import { DomainError, invalidArgument, Problems } from '../../shared/errors.js';
import {
  serverStream,
  unary,
  unaryEnvelope,
  type Envelope,
  type HandlerDeps,
} from '../../shared/grpc/handlers.js';
import { applyQuery } from '../../nlb/domain/query.js';
import { checkVersion, checkWeight } from '../../nlb/domain/validate.js';
import * as c from '../../nlb/transport/convert.js';
import type { ModuleController } from './controller.js';
import { aggregateStats, type ModuleMetricsSampler } from './module-metrics.js';
import type { NlbApi } from './nlb-api.js';
import type { RateLimitSpec } from './token-bucket.js';

export interface ModuleServiceDeps extends HandlerDeps {
  controller: ModuleController;
  sampler: ModuleMetricsSampler;
  nlb: NlbApi;
  /** Ends the controller process after Shutdown of the whole module. */
  onShutdown: () => void;
}

const failed =
  <T>(rest: T) =>
  (e: Envelope): T & Envelope => ({ ...rest, ...e });

function rateLimitFromProto(l: RateLimit | undefined): RateLimitSpec {
  if (!l) throw invalidArgument('limit is required');
  return { ...l, metadata: { ...l.metadata } };
}

const seconds = (n: number, field: string, dflt: number) => {
  if (!Number.isInteger(n) || n < 0 || n > 86_400)
    throw invalidArgument(`${field} ${n} is out of range: use 0 (default) to 86400`);
  return (n || dflt) * 1000;
};

/** Builds the ModuleService implementation. */
export function createModuleService(d: ModuleServiceDeps): ModuleServiceServer {
  const ctl = d.controller;
  const type = ctl.plugin.type;
  const P = '/marchproxy.ModuleService/';
  const now = () => d.clock.nowDate();

  const instanceProto = async (id: string): Promise<ModuleInstance> => {
    const m = ctl.instance(id);
    const st = await m.handle
      .status()
      .catch(() => ({ status: 'UNHEALTHY' as const, lease: 'unknown', heartbeats: 0 }));
    const stats = await m.handle.stats(false).catch(() => null);
    return {
      instanceId: id,
      moduleType: c.moduleTypeEnum(type),
      address: ctl.controllerAddress,
      healthStatus:
        m.draining && st.status === 'HEALTHY'
          ? HealthStatus.HEALTH_STATUS_STOPPING
          : c.healthEnum(st.status === 'STOPPED' ? 'STOPPED' : st.status),
      metadata: {
        lease: st.lease,
        heartbeats: String(st.heartbeats),
        pid: String(m.handle.pid ?? process.pid),
        data_plane: ctl.plugin.placeholderDataPlane ? 'placeholder' : 'real',
      },
      startedAt: new Date(m.handle.startedAtMs),
      currentConnections: stats?.activeConnections ?? 0,
      maxConnections: ctl.snapshot().maxConnections,
      version: ctl.version,
      trafficWeight: 0,
      trafficAddress: m.handle.trafficAddress,
      proxyProtocol: 0,
      draining: m.draining,
      protocols: ctl.plugin.protocols.map(c.protocolEnum),
    };
  };

  /** Forwards a blue/green action to the NLB; a refusal there becomes this RPC's failure. */
  const deployment = async (
    action: DeploymentAction,
    a: { version?: string; weight?: number; promotionRate?: number; immediate?: boolean; reason?: string },
  ): Promise<UpdateDeploymentResponse & { deployment: DeploymentState }> => {
    let res: UpdateDeploymentResponse;
    try {
      res = await d.nlb.updateDeployment({
        moduleType: c.moduleTypeEnum(type),
        action,
        version: a.version ?? '',
        weight: a.weight ?? 0,
        promotionRate: a.promotionRate ?? 0,
        immediate: a.immediate ?? false,
        validateOnly: false,
        requestedBy: `${type.toLowerCase()}-controller ${ctl.version} ${ctl.controllerAddress}`,
        reason: a.reason ?? '',
      });
    } catch (e) {
      throw new DomainError(
        'unavailable',
        `cannot reach the NLB at ${d.nlb.target} to change the deployment: ${(e as Error).message}`,
      );
    }
    if (!res.success || !res.deployment) {
      const kind =
        res.error?.code === StatusCode.STATUS_CODE_NOT_FOUND
          ? 'not_found'
          : res.error?.code === StatusCode.STATUS_CODE_UNAVAILABLE
            ? 'unavailable'
            : 'failed_precondition';
      throw new DomainError(kind, res.message || 'the NLB refused the deployment change');
    }
    return res as UpdateDeploymentResponse & { deployment: DeploymentState };
  };

  const pushed = (what: string, failures: string[]) =>
    failures.length ? `${what}; not yet applied on: ${failures.join('; ')}` : what;

  return {
    getStatus: unary(d, `${P}GetStatus`, async (req) => {
      if (req.instanceId) {
        const inst = await instanceProto(req.instanceId);
        return {
          instance: inst,
          status: inst.healthStatus,
          message: `${req.instanceId} is ${c.healthName(inst.healthStatus, 'status')}`,
          lastUpdated: now(),
          details: inst.metadata,
        };
      }
      const live = ctl.liveInstances().length;
      const status = ctl.isStopped
        ? HealthStatus.HEALTH_STATUS_STOPPED
        : live >= ctl.desired
          ? HealthStatus.HEALTH_STATUS_HEALTHY
          : live > 0
            ? HealthStatus.HEALTH_STATUS_DEGRADED
            : HealthStatus.HEALTH_STATUS_UNHEALTHY;
      return {
        instance: undefined,
        status,
        message: `${type} ${ctl.version}: ${live}/${ctl.desired} instances running`,
        lastUpdated: now(),
        details: {
          module_type: type,
          version: ctl.version,
          address: ctl.controllerAddress,
          desired_instances: String(ctl.desired),
          running_instances: String(live),
          min_instances: String(ctl.scaling.minInstances),
          max_instances: String(ctl.scaling.maxInstances),
          routes: String(ctl.routes.length),
          rate_limits: String(ctl.rateLimits.length),
          data_plane: ctl.plugin.placeholderDataPlane
            ? 'placeholder (counts connections; the real data plane is a later issue)'
            : 'real',
          state: ctl.storeLocation,
          nlb: d.nlb.target,
          ...(ctl.lastError ? { last_error: ctl.lastError } : {}),
        },
      };
    }),

    reload: unaryEnvelope(
      d,
      `${P}Reload`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        seconds(req.timeoutSeconds, 'timeout_seconds', 30);
        const failures = await ctl.reload();
        return {
          success: failures.length === 0,
          message: pushed(
            `configuration reloaded from ${ctl.storeLocation} and pushed to ${ctl.instances.size} instance(s)${req.graceful ? '; open connections kept' : ''}`,
            failures,
          ),
        };
      },
      failed({}),
    ),

    shutdown: unaryEnvelope(
      d,
      `${P}Shutdown`,
      async (req) => {
        const timeoutMs = seconds(req.timeoutSeconds, 'timeout_seconds', 30);
        if (req.instanceId) {
          await ctl.shutdownInstance(req.instanceId, req.graceful, timeoutMs);
          return {
            success: true,
            message: `instance ${req.instanceId} stopped; desired count is now ${ctl.desired}`,
          };
        }
        const n = ctl.instances.size;
        setImmediate(() => {
          void ctl.stop(req.graceful, timeoutMs).finally(() => d.onShutdown());
        });
        return {
          success: true,
          message: `${type} ${ctl.version} controller shutting down ${n} instance(s)${req.graceful ? ' gracefully' : ''}`,
        };
      },
      failed({}),
    ),

    canHandle: unary(d, `${P}CanHandle`, (req) => {
      if (!req.route) throw invalidArgument('route is required');
      const p = new Problems();
      if (Object.keys(req.context).length > 64) p.add('context has more than 64 entries');
      p.check('CanHandle request');
      const a = ctl.plugin.canHandle(c.routeFromProto(req.route), req.context, {
        routes: ctl.routes,
        config: ctl.config,
      });
      return { canHandle: a.canHandle, priority: a.priority, reason: a.reason, metadata: a.metadata ?? {} };
    }),

    getRoutes: unary(d, `${P}GetRoutes`, (req) => {
      ctl.requireInstanceOrController(req.instanceId);
      const page = applyQuery(
        ctl.routes,
        c.queryFromProto(req.query),
        {
          route_id: (r) => r.routeId,
          protocol: (r) => r.protocol ?? '',
          destination_pattern: (r) => r.destinationPattern,
          path_pattern: (r) => r.pathPattern,
          priority: (r) => r.priority,
        },
        'route_id',
      );
      return {
        routes: page.items.map(c.routeToProto),
        totalRoutes: page.total,
        pagination: {
          page: page.page,
          pageSize: page.pageSize,
          totalItems: page.total,
          totalPages: page.totalPages,
        },
      };
    }),

    updateRoutes: unaryEnvelope(
      d,
      `${P}UpdateRoutes`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        const r = await ctl.updateRoutes(
          req.routes.map((x, i) => c.routeFromProto(x, `routes[${i}]`)),
          req.replaceAll,
        );
        return {
          success: r.failures.length === 0,
          message: pushed(`${r.updated} route(s) saved and sent to the NLB`, r.failures),
          routesUpdated: r.updated,
        };
      },
      failed({ routesUpdated: 0 }),
    ),

    deleteRoute: unaryEnvelope(
      d,
      `${P}DeleteRoute`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        if (!req.routeId) throw invalidArgument('route_id is required');
        const failures = await ctl.deleteRoute(req.routeId);
        return {
          success: failures.length === 0,
          message: pushed(`route ${req.routeId} deleted here and from the NLB`, failures),
        };
      },
      failed({}),
    ),

    getRateLimits: unary(d, `${P}GetRateLimits`, (req) => {
      ctl.requireInstanceOrController(req.instanceId);
      const limits = ctl.rateLimits.filter((l) => !req.target || l.target === req.target);
      return { limits: limits.map((l) => ({ ...l })), totalLimits: limits.length };
    }),

    setRateLimit: unaryEnvelope(
      d,
      `${P}SetRateLimit`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        const l = rateLimitFromProto(req.limit);
        const failures = await ctl.setRateLimit(l);
        return {
          success: failures.length === 0,
          message: pushed(`rate limit ${l.limitId} set for ${l.target || '*'}`, failures),
        };
      },
      failed({}),
    ),

    removeRateLimit: unaryEnvelope(
      d,
      `${P}RemoveRateLimit`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        if (!req.limitId) throw invalidArgument('limit_id is required');
        const failures = await ctl.removeRateLimit(req.limitId);
        return {
          success: failures.length === 0,
          message: pushed(`rate limit ${req.limitId} removed`, failures),
        };
      },
      failed({}),
    ),

    getMetrics: unary(d, `${P}GetMetrics`, (req) => {
      ctl.requireInstanceOrController(req.instanceId);
      const to = req.endTime?.getTime() ?? d.clock.now();
      const from = req.startTime?.getTime() ?? to - 3_600_000;
      if (from > to) throw invalidArgument('start_time is after end_time');
      const series = d.sampler.store.query(
        req.metricNames,
        req.instanceId ? { instance: req.instanceId } : { scope: 'module' },
        from,
        to,
      );
      const collectedAt = now();
      return {
        metrics: {
          instanceId: req.instanceId,
          moduleType: c.moduleTypeEnum(type),
          metrics: series.flatMap((s) =>
            s.points.map((p) => ({
              name: s.name,
              value: p.value,
              labels: { ...s.labels, version: ctl.version },
              timestamp: new Date(p.tsMs),
            })),
          ),
          collectedAt,
        },
        collectedAt,
      };
    }),

    scale: unaryEnvelope(
      d,
      `${P}Scale`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        // scalingFromProto reads an all-zero config as "unset"; but desired 0 with an all-zero
        // config present (bounds 0-0) is how the NLB retires an old version: scale it to zero.
        const retire =
          req.desiredInstances === 0 && !!req.config && Object.values(req.config).every((v) => !v);
        const bounds = retire
          ? { ...ctl.scaling, minInstances: 0, maxInstances: 0, autoScalingEnabled: false }
          : c.scalingFromProto(req.config);
        const r = await ctl.scale(req.desiredInstances, bounds, req.immediate);
        return {
          success: true,
          message: `${type} ${ctl.version}: desired ${r.desired}, running ${r.current}${r.startProblem ? `; ${r.startProblem}` : ''}`,
          currentInstances: r.current,
          desiredInstances: r.desired,
        };
      },
      failed({ currentInstances: 0, desiredInstances: 0 }),
    ),

    getInstances: unary(d, `${P}GetInstances`, async (req) => {
      ctl.checkType(c.moduleTypeName(req.moduleType, 'module_type'));
      const want = c.healthName(req.statusFilter, 'status_filter');
      const all = await Promise.all([...ctl.instances.keys()].map(instanceProto));
      const instances = all.filter((i) => !want || c.healthName(i.healthStatus, 'status') === want);
      return { instances, totalInstances: instances.length };
    }),

    setTrafficWeight: unaryEnvelope(
      d,
      `${P}SetTrafficWeight`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        const p = new Problems();
        checkVersion(p, 'version', req.version);
        checkWeight(p, 'weight', req.weight);
        p.check('traffic weight');
        const r = await deployment(DeploymentAction.DEPLOYMENT_ACTION_SET_WEIGHT, {
          version: req.version,
          weight: req.weight,
        });
        return {
          success: true,
          message: r.message,
          currentConfig: r.deployment.config,
          deployment: r.deployment,
        };
      },
      failed({ currentConfig: undefined, deployment: undefined }),
    ),

    getActiveVersion: unary(d, `${P}GetActiveVersion`, async (req) => {
      ctl.requireInstanceOrController(req.instanceId);
      const r = await deployment(DeploymentAction.DEPLOYMENT_ACTION_STATUS, {});
      return {
        activeVersion: r.deployment.config?.activeVersion ?? '',
        config: r.deployment.config,
        versionWeights: r.deployment.versionWeights,
        deployment: r.deployment,
      };
    }),

    rollback: unaryEnvelope(
      d,
      `${P}Rollback`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        if (req.targetVersion) {
          const p = new Problems();
          checkVersion(p, 'target_version', req.targetVersion);
          p.check('rollback');
        }
        const r = await deployment(DeploymentAction.DEPLOYMENT_ACTION_ROLLBACK, {
          version: req.targetVersion,
          reason: 'Rollback RPC',
        });
        const previous = /rolled back from (\S+)/.exec(r.message)?.[1] ?? '';
        return {
          success: true,
          message: r.message,
          previousVersion: previous,
          currentVersion: r.deployment.stableVersion,
        };
      },
      failed({ previousVersion: '', currentVersion: '' }),
    ),

    promoteVersion: unaryEnvelope(
      d,
      `${P}PromoteVersion`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        const p = new Problems();
        checkVersion(p, 'version', req.version);
        if (!Number.isInteger(req.promotionRate) || req.promotionRate < 0 || req.promotionRate > 100)
          p.add(
            `promotion_rate ${req.promotionRate} is out of range: use 1 to 100, or 0 for the default steps`,
          );
        p.check('promotion');
        const r = await deployment(DeploymentAction.DEPLOYMENT_ACTION_PROMOTE, {
          version: req.version,
          immediate: req.immediate,
          promotionRate: req.promotionRate,
        });
        return { success: true, message: r.message, promotedVersion: req.version, deployment: r.deployment };
      },
      failed({ promotedVersion: '', deployment: undefined }),
    ),

    healthCheck: unary(d, `${P}HealthCheck`, async (req) => {
      const checks: Record<string, string> = {};
      let bad = 0;
      let critical = false;
      const targets = req.instanceId ? [ctl.instance(req.instanceId)] : [...ctl.instances.values()];
      for (const m of targets) {
        const st = await m.handle.status().catch((e: unknown) => ({
          status: `unreachable (${(e as Error).message})`,
          lease: '?',
          heartbeats: 0,
        }));
        const ok = st.status === 'HEALTHY';
        checks[`instance:${m.handle.id}`] = ok ? `ok (lease ${st.lease})` : String(st.status);
        if (!ok && !m.draining) {
          bad++;
          critical = true;
        }
      }
      if (!req.instanceId && ctl.liveInstances().length < ctl.desired) {
        checks.instances = `${ctl.liveInstances().length}/${ctl.desired} running`;
        bad++;
      }
      const backend = await ctl.plugin.healthChecks(ctl.config, req.deepCheck);
      for (const [k, v] of Object.entries(backend)) {
        checks[k] = v.ok ? `ok: ${v.message}` : v.message;
        if (!v.ok) bad++;
      }
      const status =
        critical && targets.length > 0 && bad >= targets.length
          ? HealthStatus.HEALTH_STATUS_UNHEALTHY
          : bad > 0
            ? HealthStatus.HEALTH_STATUS_DEGRADED
            : HealthStatus.HEALTH_STATUS_HEALTHY;
      return {
        status,
        message: bad ? `${bad} check(s) failed` : 'all checks passed',
        checks,
        checkedAt: now(),
      };
    }),

    getStats: unary(d, `${P}GetStats`, async (req) => {
      if (req.instanceId) {
        const s = await ctl.instance(req.instanceId).handle.stats(req.resetCounters);
        return { stats: c.statsToProto(req.instanceId, s) };
      }
      const all = await Promise.all(
        [...ctl.instances.values()].map((m) => m.handle.stats(req.resetCounters).catch(() => null)),
      );
      return {
        stats: c.statsToProto(
          '',
          aggregateStats(
            all.filter((s) => s !== null),
            ctl.startedAtMs,
          ),
        ),
      };
    }),

    streamMetrics: serverStream(d, `${P}StreamMetrics`, async (req, send, ctx) => {
      ctl.requireInstanceOrController(req.instanceId);
      if (req.intervalSeconds < 0 || req.intervalSeconds > 3600)
        throw invalidArgument(
          `interval_seconds ${req.intervalSeconds} is out of range: use 1 to 3600 (0 = 5)`,
        );
      const intervalMs = (req.intervalSeconds || 5) * 1000;
      while (!ctx.signal.aborted) {
        const all = await d.sampler.collect();
        const pick = req.instanceId
          ? [all.get(req.instanceId)].filter((s) => s !== undefined)
          : [...all.values()];
        const s = aggregateStats(pick, ctl.startedAtMs);
        const ts = now();
        const points = Object.entries(c.statsToProto(req.instanceId, s) ?? {})
          .filter(
            ([k, v]) => typeof v === 'number' && (!req.metricNames.length || req.metricNames.includes(k)),
          )
          .map(([k, v]) => ({
            name: k,
            value: v as number,
            labels: { version: ctl.version, ...(req.instanceId ? { instance: req.instanceId } : {}) },
            timestamp: ts,
          }));
        await send({
          metrics: {
            instanceId: req.instanceId,
            moduleType: c.moduleTypeEnum(type),
            metrics: points,
            collectedAt: ts,
          },
          timestamp: ts,
        });
        await d.clock.sleep(intervalMs, ctx.signal).catch(() => undefined);
      }
    }),

    getConfig: unary(d, `${P}GetConfig`, (req) => {
      ctl.requireInstanceOrController(req.instanceId);
      const sections: Record<string, unknown> = {
        module: ctl.config,
        scaling: ctl.scaling,
        limits: { maxConnectionsPerInstance: ctl.snapshot().maxConnections },
      };
      const names = req.configType ? [req.configType] : Object.keys(sections);
      const unknown = names.filter((n) => !Object.hasOwn(sections, n)); // own keys: "valueOf" is no section
      if (unknown.length)
        throw invalidArgument(`unknown config_type "${req.configType}"; use module, scaling or limits`);
      const updatedAt = new Date(ctl.configUpdatedAtMs);
      return {
        configs: names.map((n) => {
          const data = Buffer.from(JSON.stringify(sections[n], null, 2));
          return {
            configId: `${type.toLowerCase()}-${ctl.version}-${n}`,
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

    updateConfig: unaryEnvelope(
      d,
      `${P}UpdateConfig`,
      async (req) => {
        ctl.requireInstanceOrController(req.instanceId);
        if (!req.config) throw invalidArgument('config is required');
        const kind = req.config.configType || 'module';
        if (kind !== 'module' && kind !== 'limits')
          throw invalidArgument(
            `config_type "${kind}" cannot be updated here; use module or limits (scaling changes go through Scale)`,
          );
        if (req.config.checksum) {
          const sum = createHash('sha256').update(req.config.configData).digest('hex');
          if (sum !== req.config.checksum.toLowerCase())
            throw invalidArgument(
              `checksum ${req.config.checksum} does not match the sha256 of config_data (${sum})`,
            );
        }
        let body: unknown;
        try {
          const text = Buffer.from(req.config.configData).toString('utf8');
          body = text.trim() ? parseYaml(text) : {};
        } catch (e) {
          throw invalidArgument(
            `config_data is neither JSON nor YAML: ${(e as Error).message.split('\n')[0]}`,
          );
        }
        if (kind === 'limits') {
          const m = (body as { maxConnectionsPerInstance?: unknown } | null)?.maxConnectionsPerInstance;
          if (typeof m !== 'number' || !Number.isInteger(m) || m < 0 || m > 10_000_000) {
            return {
              success: false,
              message: 'invalid limits',
              validationPassed: false,
              validationErrors: [
                'limits.maxConnectionsPerInstance must be an integer from 0 (no limit) to 10000000',
              ],
              error: {
                code: 5,
                message: 'limits.maxConnectionsPerInstance must be an integer from 0 to 10000000',
                details: {},
                occurredAt: now(),
              },
            };
          }
          if (req.validateOnly)
            return {
              success: true,
              message: 'limits are valid; nothing applied (validate_only)',
              validationPassed: true,
              validationErrors: [],
            };
          const failures = await ctl.updateConfig(ctl.config, m);
          return {
            success: failures.length === 0,
            message: pushed('limits applied', failures),
            validationPassed: true,
            validationErrors: [],
          };
        }
        const v = ctl.validateConfig(body);
        if (!v.ok) {
          return {
            success: false,
            message: `${v.problems.length} problem(s); nothing applied`,
            validationPassed: false,
            validationErrors: v.problems,
            error: { code: 5, message: v.problems[0], details: {}, occurredAt: now() },
          };
        }
        if (req.validateOnly)
          return {
            success: true,
            message: 'config is valid; nothing applied (validate_only)',
            validationPassed: true,
            validationErrors: [],
          };
        const failures = await ctl.updateConfig(v.config);
        return {
          success: failures.length === 0,
          message: pushed(`config applied to ${ctl.instances.size} instance(s)`, failures),
          validationPassed: true,
          validationErrors: [],
        };
      },
      (e) => ({ ...e, validationPassed: false, validationErrors: [e.message] }),
    ),

    pauseRollout: unaryEnvelope(
      d,
      `${P}PauseRollout`,
      async (req) => {
        // Blue/green is per module type, but a named instance must still be one of ours.
        ctl.requireInstanceOrController(req.instanceId);
        if (req.version) {
          const p = new Problems();
          checkVersion(p, 'version', req.version);
          p.check('pause');
        }
        const r = await deployment(DeploymentAction.DEPLOYMENT_ACTION_PAUSE, {
          version: req.version,
          reason: req.reason,
        });
        return { success: true, message: r.message, deployment: r.deployment };
      },
      failed({ deployment: undefined }),
    ),

    resumeRollout: unaryEnvelope(
      d,
      `${P}ResumeRollout`,
      async (req) => {
        // Blue/green is per module type, but a named instance must still be one of ours.
        ctl.requireInstanceOrController(req.instanceId);
        if (req.version) {
          const p = new Problems();
          checkVersion(p, 'version', req.version);
          p.check('resume');
        }
        const r = await deployment(DeploymentAction.DEPLOYMENT_ACTION_RESUME, {
          version: req.version,
          reason: req.reason,
        });
        return { success: true, message: r.message, deployment: r.deployment };
      },
      failed({ deployment: undefined }),
    ),

    drain: unaryEnvelope(
      d,
      `${P}Drain`,
      async (req) => {
        const timeoutMs = seconds(req.timeoutSeconds, 'timeout_seconds', 30);
        const r = await ctl.drain(req.instanceId, timeoutMs);
        return {
          success: true,
          message: r.remaining
            ? `${r.drained} instance(s) draining; ${r.remaining} connection(s) still open after ${timeoutMs / 1000} s`
            : `${r.drained} instance(s) drained`,
          connectionsRemaining: r.remaining,
          instancesDrained: r.drained,
        };
      },
      failed({ connectionsRemaining: 0, instancesDrained: 0 }),
    ),
  };
}
