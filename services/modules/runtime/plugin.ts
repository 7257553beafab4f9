/**
 * What a module type plugs into the shared runtime (issue: module runtime): its CanHandle
 * scorer, its config schema, its health checks and its traffic handler (the data plane).
 */
import type { Socket } from 'node:net';
import type { z } from 'zod';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { ModuleTypeName, ProtocolName, RouteSpec } from '../../nlb/domain/types.js';
import type { StatsCollector } from './stats.js';

export interface CanHandleAnswer {
  canHandle: boolean;
  /** Higher = better match. */
  priority: number;
  reason: string;
  metadata?: Record<string, string>;
}

/** What a traffic handler is told about a connection. */
export interface ConnectionInfo {
  /** The client's address: from the PROXY header when present, else the peer. */
  clientAddress: string;
  clientPort: number;
  /** Whether the address came from a PROXY header (else it is the TCP peer's). */
  proxied: boolean;
  /** The port the client connected to (the NLB listener's, from the PROXY header), else ours. */
  destinationPort: number;
}

export interface HandlerContext {
  logger: Logger;
  stats: StatsCollector;
  now(): number;
  /** Timers (health checks, idle sweeps) run on the instance's clock. */
  clock: Clock;
  /** The module's routes as last pushed by the controller (read again in applyConfig). */
  routes(): readonly RouteSpec[];
  /** Rate-limit check for a request from these keys (client address first). */
  rateLimit(keys: readonly string[]): { limitId: string; retryAfterMs: number } | null;
}

/** A module's data plane inside one instance. */
export interface TrafficHandler {
  /** Takes over an accepted connection (already counted as opened by the runtime). */
  handleConnection(socket: Socket, info: ConnectionInfo): void;
  /**
   * Applies a new snapshot live: called on every push from the controller (config, routes or
   * rate limits changed); `ctx.routes()` already returns the new routes.
   */
  applyConfig(config: unknown): void;
  /**
   * The instance is draining (it has left the NLB, which sends it no new connections): wind
   * down what can end early. HTTP handlers close idle keep-alive connections at once and the
   * others after their current response, so a drain takes as long as the slowest request, not
   * the drain timeout. Handlers of long sessions (database, streaming) let them finish.
   */
  drain?(): void;
  /** Releases handler resources (pools, health-check timers). */
  close(): Promise<void>;
}

export interface HealthCheckResult {
  ok: boolean;
  message: string;
}

export interface ModuleTypePlugin<C = unknown> {
  type: ModuleTypeName;
  /** The controller's default gRPC port (DESIGN.md §8). */
  defaultPort: number;
  protocols: ProtocolName[];
  /** The module's config (backends, limits…), validated by UpdateConfig. */
  configSchema: z.ZodType<C>;
  /** True while the data plane is only a connection counter, so status output can say so. */
  placeholderDataPlane: boolean;
  /** Scores a route against the module's routes and config. */
  canHandle(
    route: RouteSpec,
    context: Record<string, string>,
    state: { routes: RouteSpec[]; config: C },
  ): CanHandleAnswer;
  /** Checks the module's backends (deep) or just its config (shallow). */
  healthChecks(config: C, deep: boolean): Promise<Record<string, HealthCheckResult>>;
  /** Capabilities advertised at registration (e.g. models served). */
  capabilities(config: C): Record<string, string>;
  createHandler(ctx: HandlerContext, config: C): TrafficHandler;
}
