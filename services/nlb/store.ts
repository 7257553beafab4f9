/**
 * The NLB's durable state (DESIGN.md §6): config sections, operator routes and deployments,
 * one JSON document in the data dir, written atomically. The registry is soft state and is
 * not stored: modules re-register after a restart.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../shared/atomic-file.js';
import type { Deployment } from './domain/deployments.js';
import type { NlbConfig } from './domain/nlb-config.js';
import type { ModuleTypeName, RouteSpec } from './domain/types.js';

export interface DurableState {
  config: Partial<NlbConfig>;
  routes: Array<{ route: RouteSpec; moduleType: ModuleTypeName; createdAtMs: number }>;
  deployments: Deployment[];
}

export interface StatePort {
  load(): DurableState | undefined;
  save(state: DurableState): void;
  /** Where the state lives, for status output. */
  readonly location: string;
}

const FILE_VERSION = 1;
const fileSchema = z.object({
  version: z.literal(FILE_VERSION),
  savedAt: z.string(),
  state: z.object({
    config: z.record(z.string(), z.unknown()),
    routes: z.array(
      z.object({ route: z.record(z.string(), z.unknown()), moduleType: z.string(), createdAtMs: z.number() }),
    ),
    deployments: z.array(z.record(z.string(), z.unknown())),
  }),
});

/** State in `<dataDir>/nlb-state.json`. */
export function createFileStatePort(dataDir: string): StatePort {
  const path = join(dataDir, 'nlb-state.json');
  return {
    location: path,
    load() {
      const raw = readJsonFile(path);
      if (raw === undefined) return undefined;
      const parsed = fileSchema.safeParse(raw);
      if (!parsed.success) {
        throw new Error(
          `${path} does not look like NLB state (${parsed.error.issues[0]?.message ?? 'bad shape'}); move it away to start empty`,
        );
      }
      return parsed.data.state as unknown as DurableState;
    },
    save(state) {
      writeFileAtomic(
        path,
        `${JSON.stringify({ version: FILE_VERSION, savedAt: new Date().toISOString(), state }, null, 2)}\n`,
      );
    },
  };
}

/** State kept in memory only (tests, simulator). */
export function createMemoryStatePort(initial?: DurableState): StatePort & { saved: number; fail?: Error } {
  let current = initial ? structuredClone(initial) : undefined;
  const port = {
    location: 'memory',
    saved: 0,
    fail: undefined as Error | undefined,
    load: () => (current ? structuredClone(current) : undefined),
    save(state: DurableState) {
      if (port.fail) throw port.fail;
      current = structuredClone(state);
      port.saved++;
    },
  };
  return port;
}
