/**
 * Instance providers start module instances for a controller: `inprocess` (same process; tests
 * and the simulator) and `process` (a child process each). A `kubernetes` provider can implement
 * the same small interface later.
 */
import type { InstanceSnapshot, InstanceStatus } from '../instance.js';
import type { StatsSnapshot } from '../stats.js';

export interface InstanceLaunch {
  id: string;
  version: string;
  controllerAddress: string;
  host: string;
  heartbeatIntervalMs: number;
  snapshot: InstanceSnapshot;
}

export interface InstanceHandle {
  readonly id: string;
  readonly trafficAddress: string;
  /** OS process id for the process provider. */
  readonly pid: number | null;
  readonly startedAtMs: number;
  status(): Promise<{ status: InstanceStatus; lease: string; heartbeats: number }>;
  stats(reset: boolean): Promise<StatsSnapshot>;
  apply(snapshot: InstanceSnapshot): Promise<void>;
  /** Stops new connections, unregisters gracefully, waits; returns connections still open. */
  drain(timeoutMs: number): Promise<number>;
  stop(graceful: boolean, timeoutMs: number): Promise<void>;
  /** Called once when the instance ends on its own (crash, kill) — not after stop(). */
  onUnexpectedExit(listener: (reason: string) => void): void;
}

export interface InstanceProvider {
  readonly kind: 'inprocess' | 'process' | 'kubernetes';
  start(launch: InstanceLaunch): Promise<InstanceHandle>;
  /** Called when the controller asks a running instance to reload. */
  onReloadRequested?: (id: string) => void;
}
