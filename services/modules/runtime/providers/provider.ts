/**
 * Instance providers start module instances for a controller: `inprocess` (same process; tests
 * and the simulator), `process` (a child process each) and `kubernetes` (replicas of a
 * Deployment). Providers whose instances outlive their controller (process, kubernetes) also
 * describe each instance in an AdoptionRecord, which the controller persists, and can `adopt`
 * it again after a controller restart.
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
  /** How a restarted controller finds this instance again (providers whose instances outlive it). */
  readonly adoption?: AdoptionRecord;
}

/**
 * What a controller persists about a running instance so that, restarted after a crash, it can
 * re-attach instead of starting a second set. `secret` proves to the instance that the one
 * connecting is its controller (the file holding it is 0600).
 */
export type AdoptionRecord =
  | {
      kind: 'process';
      id: string;
      version: string;
      pid: number;
      /** Unix domain socket the instance serves its control protocol on. */
      controlSocket: string;
      secret: string;
      trafficAddress: string;
      startedAtMs: number;
    }
  | { kind: 'kubernetes'; id: string; version: string; startedAtMs: number };

export interface InstanceProvider {
  readonly kind: 'inprocess' | 'process' | 'kubernetes';
  start(launch: InstanceLaunch): Promise<InstanceHandle>;
  /**
   * Re-attaches to an instance a previous controller started (after a controller restart):
   * verifies it is that instance and healthy, hands it the current snapshot, and returns its
   * handle. Rejects when it is gone, not that instance, or unfit (it is then told to stop), so
   * that the controller starts a replacement.
   */
  adopt?(record: AdoptionRecord, launch: InstanceLaunch): Promise<InstanceHandle>;
  /** Called when the controller asks a running instance to reload. */
  onReloadRequested?: (id: string) => void;
}
