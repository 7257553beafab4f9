/**
 * A controller's durable state: desired instance count and bounds, routes, rate limits and
 * module config, in `<dataDir>/controller-<type>-<version>.json`, written atomically.
 */
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../../shared/atomic-file.js';
import type { RouteSpec } from '../../nlb/domain/types.js';
import type { RateLimitSpec } from './token-bucket.js';

export interface ScalingBounds {
  minInstances: number;
  maxInstances: number;
  targetCpuPercent: number;
  targetMemoryPercent: number;
  targetConnections: number;
  cooldownSeconds: number;
  autoScalingEnabled: boolean;
}

export interface ControllerState {
  desired: number;
  scaling: ScalingBounds;
  routes: RouteSpec[];
  rateLimits: RateLimitSpec[];
  config: unknown;
  maxConnectionsPerInstance: number;
  configUpdatedAtMs: number;
}

export interface ControllerStore {
  load(): ControllerState | undefined;
  save(s: ControllerState): void;
  readonly location: string;
}

/** File store in the data dir. */
export function createControllerFileStore(dataDir: string, type: string, version: string): ControllerStore {
  const path = join(
    dataDir,
    `controller-${type.toLowerCase()}-${version.replace(/[^A-Za-z0-9._-]/g, '_')}.json`,
  );
  return {
    location: path,
    load: () => {
      const raw = readJsonFile(path) as { version?: number; state?: ControllerState } | undefined;
      if (raw === undefined) return undefined;
      if (raw.version !== 1 || typeof raw.state !== 'object' || raw.state === null) {
        throw new Error(`${path} does not look like controller state; move it away to start empty`);
      }
      return raw.state;
    },
    save: (s) => writeFileAtomic(path, `${JSON.stringify({ version: 1, state: s }, null, 2)}\n`),
  };
}

/** In-memory store (tests, simulator). `fail` makes the next saves throw. */
export function createControllerMemoryStore(initial?: ControllerState): ControllerStore & { fail?: Error } {
  let s = initial ? structuredClone(initial) : undefined;
  const store = {
    location: 'memory',
    fail: undefined as Error | undefined,
    load: () => (s ? structuredClone(s) : undefined),
    save: (next: ControllerState) => {
      if (store.fail) throw store.fail;
      s = structuredClone(next);
    },
  };
  return store;
}
