/**
 * A controller's durable state: desired instance count and bounds, routes, rate limits and
 * module config, in `<dataDir>/controller-<type>-<version>.json`, written atomically; and the
 * running instances a restarted controller adopts (AdoptionRecord: pid, control socket, secret)
 * in `<dataDir>/controller-<type>-<version>.instances.json`. Both files are 0600. The instance
 * list is separate because it is a fact about running processes, not configuration: Reload must
 * not roll it back, and losing it only costs a replacement of the instances.
 */
import { join } from 'node:path';
import { readJsonFile, writeFileAtomic } from '../../shared/atomic-file.js';
import type { RouteSpec } from '../../nlb/domain/types.js';
import type { AdoptionRecord } from './providers/provider.js';
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
  /** The instances the last controller ran ([] when none or unreadable: they are then replaced). */
  loadInstances(): AdoptionRecord[];
  saveInstances(records: AdoptionRecord[]): void;
  readonly location: string;
}

/** Keeps the records that have the fields adoption needs; a damaged entry is dropped, not fatal. */
function validRecords(raw: unknown): AdoptionRecord[] {
  const list = (raw as { version?: number; instances?: unknown } | undefined)?.instances;
  if (!Array.isArray(list)) return [];
  return list.filter((r): r is AdoptionRecord => {
    const x = r as Record<string, unknown>;
    if (typeof x !== 'object' || x === null || typeof x.id !== 'string' || typeof x.version !== 'string')
      return false;
    if (x.kind === 'kubernetes') return true;
    return (
      x.kind === 'process' &&
      Number.isInteger(x.pid) &&
      typeof x.controlSocket === 'string' &&
      typeof x.secret === 'string' &&
      typeof x.trafficAddress === 'string'
    );
  });
}

/** File store in the data dir. */
export function createControllerFileStore(dataDir: string, type: string, version: string): ControllerStore {
  const base = join(dataDir, `controller-${type.toLowerCase()}-${version.replace(/[^A-Za-z0-9._-]/g, '_')}`);
  const path = `${base}.json`;
  const instancesPath = `${base}.instances.json`;
  return {
    location: path,
    loadInstances: () => {
      try {
        return validRecords(readJsonFile(instancesPath));
      } catch {
        return [];
      }
    },
    saveInstances: (records) =>
      writeFileAtomic(instancesPath, `${JSON.stringify({ version: 1, instances: records }, null, 2)}\n`),
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
  let instances: AdoptionRecord[] = [];
  const store = {
    location: 'memory',
    fail: undefined as Error | undefined,
    loadInstances: () => structuredClone(instances),
    saveInstances: (records: AdoptionRecord[]) => {
      instances = structuredClone(records);
    },
    load: () => (s ? structuredClone(s) : undefined),
    save: (next: ControllerState) => {
      if (store.fail) throw store.fail;
      s = structuredClone(next);
    },
  };
  return store;
}
