/**
 * A data-plane worker's side of the control plane (docs/dataplane.md "Workers"): a replica of
 * the routing state built from the primary's snapshots, routed over by the same RoutingService
 * as in one process (one code path), plus what the worker must report back: connection count
 * changes, connect outcomes, routing outcomes. Least connections sees every process's
 * connections: the primary's count of the others' plus this worker's own, exact.
 */
import type { Clock } from '../../shared/clock.js';
import type { Rng } from '../../shared/rng.js';
import { RoutingTable, type RequestFacts, type RouteEntry } from '../domain/routes.js';
import { newSelectionState, type SelectionState } from '../domain/selection.js';
import type { InstanceRecord, RouteSpec } from '../domain/types.js';
import type { Nlb } from '../nlb.js';
import { RoutingService } from '../nlb-routing.js';
import type { ModulePort } from '../ports.js';
import type { ConnectionToken, ControlLink } from './link.js';
import type { RoutingSnapshot, WorkerReport } from './worker-protocol.js';

type CanHandle = ModulePort['canHandle'];

/** The parts of `Nlb` that RoutingService.route reads and writes, over a snapshot. */
class ReplicaNlb {
  registryRevision = 0;
  readonly counters = { routed: 0, routingFailures: 0 };
  readonly selection: SelectionState = newSelectionState();
  config = { routing: { canHandleTimeoutMs: 1000, canHandleCacheTtlMs: 30_000 } };
  records: InstanceRecord[] = [];
  table = new RoutingTable();
  routesRevision = 0;
  weights: Record<string, Record<string, number>> = {};
  readonly registry = { all: () => this.records };
  readonly routes: {
    match(f: RequestFacts): RouteEntry[];
    get(id: string): RouteEntry | undefined;
    touch(id: string): void;
    readonly revision: number;
  };
  readonly deployments = {
    get: (t: string) => (this.weights[t] ? { weights: this.weights[t] } : undefined),
  };

  constructor(
    readonly deps: { clock: Clock; rng: Rng; modules: Pick<ModulePort, 'canHandle'> },
    readonly emit: (e: { type: 'routing'; result: string; moduleType: string; version: string }) => void,
    onTouch: (routeId: string) => void,
  ) {
    // The routes' revision is the primary's, not the rebuilt table's own: CanHandle answers are
    // cached under it, and a rebuilt table restarts its count.
    const revision = () => this.routesRevision;
    this.routes = {
      match: (f) => this.table.match(f),
      get: (id) => this.table.get(id),
      touch: (id) => onTouch(id),
      get revision() {
        return revision();
      },
    };
  }
}

export interface WorkerLinkOptions {
  clock: Clock;
  rng: Rng;
  /** CanHandle through the primary (its ModulePort). */
  canHandle: CanHandle;
  /** A connect failed (the worker reports it at once). */
  onConnectFailed?: () => void;
}

export class WorkerLink implements ControlLink {
  private readonly replica: ReplicaNlb;
  private readonly routing: RoutingService;
  private readonly byId = new Map<string, InstanceRecord>();
  /** Connections open through other processes, per instance (from the primary). */
  private readonly others = new Map<string, number>();
  /** This worker's open connections per instance (its current registration). */
  private readonly own = new Map<string, { registrationId: string; n: number }>();
  /** Ejected instances until (wall clock ms). */
  private readonly ejectedUntil = new Map<string, number>();
  private stateVersion = 0;
  // The next report's parts.
  private conns = new Map<string, [string, string, string, number, number]>();
  /** Each route's incarnation in the current snapshot (connections are counted under it). */
  private routeIncarnations = new Map<string, number>();
  private connects: WorkerReport['connects'] = [];
  private lastConnectOk = new Set<string>();
  private routingOutcomes = new Map<string, WorkerReport['routing'][number]>();
  private touched = new Set<string>();

  constructor(private readonly opts: WorkerLinkOptions) {
    this.replica = new ReplicaNlb(
      { clock: opts.clock, rng: opts.rng, modules: { canHandle: opts.canHandle } },
      (e) => this.onRouting(e.result as 'routed', e.moduleType, e.version),
      (id) => this.touched.add(id),
    );
    this.routing = new RoutingService(this.replica as unknown as Nlb);
  }

  /** The snapshot version routing runs on now. */
  get version(): number {
    return this.stateVersion;
  }

  /** Replaces the routing state with a snapshot (counts and ejections carry over). */
  applySnapshot(s: RoutingSnapshot): void {
    const r = this.replica;
    r.registryRevision = s.registryRevision;
    r.routesRevision = s.routesRevision;
    r.weights = s.weights;
    r.config = { routing: s.routing };
    r.selection.strategy = s.strategy;
    r.selection.offsets = new Map(s.offsets);
    this.byId.clear();
    for (const rec of s.instances) {
      const own = this.own.get(rec.instanceId);
      if (own && own.registrationId !== rec.registrationId) this.own.delete(rec.instanceId);
      rec.connections = (this.others.get(rec.instanceId) ?? 0) + (this.own.get(rec.instanceId)?.n ?? 0);
      this.byId.set(rec.instanceId, rec);
    }
    r.records = s.instances;
    for (const id of [...this.others.keys()]) if (!this.byId.has(id)) this.others.delete(id);
    for (const id of [...this.ejectedUntil.keys()]) if (!this.byId.has(id)) this.ejectedUntil.delete(id);
    const table = new RoutingTable();
    const byOwner = new Map<string, RoutingSnapshot['routes']>();
    for (const e of s.routes) {
      const list = byOwner.get(e.owner);
      if (list) list.push(e);
      else byOwner.set(e.owner, [e]);
    }
    for (const [owner, list] of byOwner) {
      const types = new Map(list.map((e) => [e.route.routeId, e.moduleType]));
      table.apply(
        list.map((e) => e.route),
        owner,
        (rt) => types.get(rt.routeId) ?? 'ALB',
        false,
        0,
      );
    }
    r.table = table;
    this.routeIncarnations = new Map(s.routes.map((e) => [e.route.routeId, e.incarnation]));
    this.stateVersion = s.version;
  }

  /** Connections other processes have open (all instances when `full`, else changes). */
  applyLoads(others: Array<[string, number]>, full: boolean): void {
    if (full) this.others.clear();
    for (const [id, n] of others) {
      if (n > 0) this.others.set(id, n);
      else this.others.delete(id);
    }
    const total = (id: string) => (this.others.get(id) ?? 0) + (this.own.get(id)?.n ?? 0);
    if (full) for (const [id, rec] of this.byId) rec.connections = total(id);
    else
      for (const [id] of others) {
        const rec = this.byId.get(id);
        if (rec) rec.connections = total(id);
      }
  }

  eject(instanceId: string, forMs: number): void {
    this.ejectedUntil.set(instanceId, Date.now() + forMs);
  }

  // ---- ControlLink ------------------------------------------------------------------------

  route(
    route: RouteSpec,
    context: Record<string, string>,
    dryRun: boolean,
    opts: Parameters<ControlLink['route']>[3],
  ) {
    return this.routing.route(route, context, dryRun, opts);
  }

  ejected(instanceId: string): boolean {
    const until = this.ejectedUntil.get(instanceId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.ejectedUntil.delete(instanceId);
    return false;
  }

  connectSucceeded(inst: InstanceRecord): void {
    // A run of successes says no more than one: the primary only needs to end a streak.
    if (this.lastConnectOk.has(inst.instanceId)) return;
    this.lastConnectOk.add(inst.instanceId);
    this.connects.push([inst.instanceId, inst.moduleType, true, '']);
  }

  connectFailed(inst: InstanceRecord, reason: string): void {
    this.lastConnectOk.delete(inst.instanceId);
    this.connects.push([inst.instanceId, inst.moduleType, false, reason]);
    this.opts.onConnectFailed?.();
  }

  opened(inst: InstanceRecord, routeId: string | undefined): ConnectionToken {
    const routeIncarnation = (routeId && this.routeIncarnations.get(routeId)) || 0;
    const t = { instanceId: inst.instanceId, registrationId: inst.registrationId, routeId, routeIncarnation };
    this.count(t, 1);
    return t;
  }

  closed(t: ConnectionToken): void {
    this.count(t, -1);
  }

  private count(t: ConnectionToken, delta: number): void {
    const { instanceId, registrationId } = t;
    let own = this.own.get(instanceId);
    if (!own || own.registrationId !== registrationId) {
      // A connection of an older registration closing: the primary ignores it too.
      if (delta < 0) {
        this.addConnDelta(t, delta);
        return;
      }
      own = { registrationId, n: 0 };
      this.own.set(instanceId, own);
    }
    own.n = Math.max(0, own.n + delta);
    if (own.n === 0) this.own.delete(instanceId);
    const rec = this.byId.get(instanceId);
    if (rec && rec.registrationId === registrationId)
      rec.connections = (this.others.get(instanceId) ?? 0) + own.n;
    this.addConnDelta(t, delta);
  }

  private addConnDelta(t: ConnectionToken, delta: number): void {
    const routeId = t.routeId ?? '';
    const key = `${t.instanceId}\n${t.registrationId}\n${routeId}\n${t.routeIncarnation}`;
    const c = this.conns.get(key);
    if (c) c[4] += delta;
    else this.conns.set(key, [t.instanceId, t.registrationId, routeId, t.routeIncarnation, delta]);
  }

  private onRouting(
    result: 'routed' | 'no_route' | 'no_instance',
    moduleType: string,
    version: string,
  ): void {
    const key = `${result}\n${moduleType}\n${version}`;
    const o = this.routingOutcomes.get(key);
    if (o) o[3]++;
    else this.routingOutcomes.set(key, [result, moduleType, version, 1]);
  }

  get pending(): boolean {
    return this.conns.size > 0 || this.connects.length > 0 || this.routingOutcomes.size > 0;
  }

  /** Moves the link's part of the next report into `into`. */
  take(into: Pick<WorkerReport, 'routing' | 'touched' | 'conns' | 'connects'>): void {
    into.conns = [...this.conns.values()].filter((c) => c[4] !== 0);
    into.connects = this.connects;
    into.routing = [...this.routingOutcomes.values()];
    into.touched = [...this.touched];
    this.conns = new Map();
    this.connects = [];
    this.lastConnectOk.clear();
    this.routingOutcomes = new Map();
    this.touched = new Set();
  }
}
