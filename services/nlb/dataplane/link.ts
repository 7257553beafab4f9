/**
 * What a listener needs from the control plane (docs/dataplane.md "Workers"): routing (the
 * RouteRequest code path), outlier state, and the connection counts that least-connections and
 * drains read. In one process the link calls the NLB directly (`localLink`); in a data-plane
 * worker it routes over a replica of the routing state and reports back (worker-link.ts).
 */
import type { Logger } from '../../shared/logger.js';
import type { InstanceRecord, RouteSpec } from '../domain/types.js';
import type { Nlb } from '../nlb.js';
import type { RouteDecision, RouteOptions, RoutingService } from '../nlb-routing.js';
import type { OutlierDetector } from './outlier.js';

export interface ControlLink {
  /** RoutingService.route: match → CanHandle → version weight → least connections. */
  route(
    route: RouteSpec,
    context: Record<string, string>,
    dryRun: boolean,
    opts: RouteOptions,
  ): Promise<RouteDecision>;
  /** Whether new connections must skip the instance now (outlier ejection). */
  ejected(instanceId: string): boolean;
  /** A connect to the instance succeeded (ends its failure streak). */
  connectSucceeded(inst: InstanceRecord): void;
  /** A connect to the instance failed; may eject it. */
  connectFailed(inst: InstanceRecord, reason: string): void;
  /** A connection to `inst` (matched by `routeId`) is open; pass the result to `closed`. */
  opened(inst: InstanceRecord, routeId: string | undefined): ConnectionToken;
  closed(token: ConnectionToken): void;
}

/** What `closed` needs to undo `opened`. */
export interface ConnectionToken {
  instanceId: string;
  registrationId: string;
  routeId: string | undefined;
  /** The route's incarnation at open (RoutingTable.countConnection). */
  routeIncarnation: number;
}

/** Reports an ejection to the observer (Prometheus). */
export type OnEjected = (moduleType: string, instanceId: string) => void;

/**
 * Records a connect failure in the outlier detector and logs an ejection. Shared by the local
 * link and by the primary when it replays its workers' reports.
 */
export function recordConnectFailure(
  nlb: Nlb,
  outlier: OutlierDetector,
  logger: Logger,
  onEjected: OnEjected,
  inst: { instanceId: string; moduleType: string },
  reason: string,
): boolean {
  // Counted only when a streak reaches the threshold: not a registry walk per failed connect.
  const poolSize = () => {
    let n = 0;
    for (const r of nlb.registry.values()) if (r.moduleType === inst.moduleType) n++;
    return n;
  };
  const ev = outlier.failure(inst.instanceId, inst.moduleType, poolSize, nlb.deps.clock.now());
  if (ev?.type !== 'ejected') return false;
  onEjected(inst.moduleType, inst.instanceId);
  logger.warn(
    `instance ejected for ${Math.round(outlier.policy.ejectionMs / 1000)} s after ${ev.failures} failed connects`,
    { instance: inst.instanceId, module_type: inst.moduleType, err: reason },
  );
  return true;
}

/** The link of listeners running in the NLB's own process. */
export function localLink(
  nlb: Nlb,
  routing: RoutingService,
  outlier: OutlierDetector,
  logger: Logger,
  onEjected: OnEjected,
): ControlLink {
  return {
    route: (route, context, dryRun, opts) => routing.route(route, context, dryRun, opts),
    ejected: (id) => outlier.ejected(id, nlb.deps.clock.now()),
    connectSucceeded: (inst) => outlier.success(inst.instanceId),
    connectFailed: (inst, reason) => {
      recordConnectFailure(nlb, outlier, logger, onEjected, inst, reason);
    },
    opened: (inst, routeId) => {
      nlb.registry.addConnections(inst.instanceId, 1);
      const routeIncarnation = routeId ? nlb.routes.connectionOpened(routeId) : 0;
      return { instanceId: inst.instanceId, registrationId: inst.registrationId, routeId, routeIncarnation };
    },
    closed: (t) => {
      // The same registration only: a re-registered instance starts counting afresh.
      if (nlb.registry.get(t.instanceId)?.registrationId === t.registrationId)
        nlb.registry.addConnections(t.instanceId, -1);
      if (t.routeId) nlb.routes.countConnection(t.routeId, t.routeIncarnation, -1);
    },
  };
}
