/**
 * Messages between the NLB (primary) and its data-plane worker processes (docs/dataplane.md
 * "Workers"). The primary owns the control plane; a worker serves the listeners' connections
 * with a replica of the routing state (a snapshot with a version, pushed on every change) and
 * reports back what happened in batches.
 */
import type { LogLevel } from '../../shared/logger.js';
import type { Strategy } from '../domain/selection.js';
import type { InstanceRecord, ModuleTypeName, RouteSpec } from '../domain/types.js';
import type { ListenerConfig } from './listener.js';
import type { RelayMode } from './native-relay.js';

/** Everything RoutingService.route reads from the NLB, as of one version. */
export interface RoutingSnapshot {
  version: number;
  /** The primary's revisions: the workers' CanHandle cache keys on them. */
  registryRevision: number;
  routesRevision: number;
  /** Without stats and queued instructions; `connections` is not used (see `loads`). */
  instances: InstanceRecord[];
  routes: Array<{ route: RouteSpec; owner: string; moduleType: ModuleTypeName; incarnation: number }>;
  /** Deployment version weights per module type. */
  weights: Record<string, Record<string, number>>;
  strategy: Strategy;
  offsets: Array<[instanceId: string, offset: number]>;
  routing: { canHandleTimeoutMs: number; canHandleCacheTtlMs: number };
}

export interface WorkerInit {
  type: 'init';
  index: number;
  logLevel: LogLevel;
  connectTimeoutMs: number;
  connectRetries: number;
  relay: RelayMode;
  /** How often open connections' byte counts are reported (the metrics resolution). */
  bytesEveryMs: number;
}

/** Primary → worker. Messages marked "+ handle" carry a listening server or a client socket. */
export type ToWorker =
  | WorkerInit
  | { type: 'state'; snapshot: RoutingSnapshot }
  /** Connections other processes have open per instance (least connections sees the sum). */
  | { type: 'loads'; others: Array<[instanceId: string, connections: number]>; full: boolean }
  | { type: 'eject'; instanceId: string; forMs: number }
  /**
   * + handle: a listening server bound by the primary. `gen` tells this listener apart from one
   * of the same name removed before (its connections may still be draining): reports carry it.
   */
  | { type: 'listen'; config: ListenerConfig; gen: number }
  | { type: 'retune'; config: ListenerConfig }
  | { type: 'unlisten'; name: string; graceMs: number }
  /** + handle: a client socket the primary accepted (paused, nothing read). */
  | { type: 'adopt'; name: string }
  /** Send the listener's server back (to share it with a replacement worker). */
  | { type: 'lend'; name: string }
  | { type: 'can-handle-result'; id: number; answer: CanHandleAnswer }
  /** Connections open through each listener in the other workers (for max_connections). */
  | { type: 'peers'; active: Array<[name: string, active: number]> }
  /** Connections from client addresses in the other workers (for max_connections_per_client). */
  | { type: 'peer-clients'; counts: Array<[listener: string, address: string, open: number]> }
  /** Report now (tests, and before the metrics are read at stop). */
  | { type: 'flush' }
  /** Answered with 'pong': everything sent before it has been applied. */
  | { type: 'ping' }
  | { type: 'stop'; graceMs: number };

export type CanHandleAnswer =
  { ok: true; canHandle: boolean; priority: number; reason: string } | { ok: false; message: string };

/** Worker → primary. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'state-applied'; version: number }
  | { type: 'listening'; name: string }
  | { type: 'listen-failed'; name: string; message: string }
  /** The worker no longer accepts on the listener (its connections may still be draining). */
  | { type: 'unlistening'; name: string }
  | { type: 'unlistened'; name: string }
  | { type: 'flushed' }
  | { type: 'pong' }
  /** + handle (or none when the worker does not serve that listener). */
  | { type: 'lent'; name: string }
  | {
      type: 'can-handle';
      id: number;
      address: string;
      route: RouteSpec;
      context: Record<string, string>;
      timeoutMs: number;
    }
  | { type: 'report'; report: WorkerReport }
  | { type: 'stopped' };

/** What a worker saw since its last report. */
export interface WorkerReport {
  /** Observer calls without a value, by key (worker-report.ts), with how many. */
  counts: Array<[key: string, n: number]>;
  /** Connect latencies of opened connections, by labels key. */
  connectMs: Array<[labelsKey: string, ms: number[]]>;
  bytes: Array<[labelsKey: string, bytesIn: number, bytesOut: number]>;
  /** RouteRequest outcomes (counters and routing events), by result, module type and version. */
  routing: Array<
    [result: 'routed' | 'no_route' | 'no_instance', moduleType: string, version: string, n: number]
  >;
  /** Routes used (lastUsedMs). */
  touched: string[];
  /** Connection count changes per instance registration and route. */
  conns: Array<
    [instanceId: string, registrationId: string, routeId: string, routeIncarnation: number, delta: number]
  >;
  /** Connect outcomes in order (successes of one instance in a row collapsed). */
  connects: Array<[instanceId: string, moduleType: string, ok: boolean, reason: string]>;
  /** Per listener (and its `gen`): connections open now and bytes in Node's buffers. */
  listeners: Array<[name: string, gen: number, active: number, buffered: number]>;
  /** Per-client counts that changed, on listeners with max_connections_per_client. */
  clients: Array<[listener: string, gen: number, address: string, open: number]>;
}
