/** Prometheus series of the Manager sync (on the NLB's registry, served on /metrics). */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { SyncStatus } from './sync.js';

export interface ManagerSyncMetrics {
  synced(outcome: 'applied' | 'unchanged' | 'failed'): void;
  rateLimitChange(e: { moduleType: string; op: 'set' | 'remove'; ok: boolean }): void;
}

export function createManagerSyncMetrics(registry: Registry, status: () => SyncStatus): ManagerSyncMetrics {
  const syncs = new Counter({
    name: 'mp_nlb_manager_syncs_total',
    help: 'Manager syncs by outcome (applied, unchanged, failed: the last good config stayed)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const changes = new Counter({
    name: 'mp_nlb_manager_rate_limit_changes_total',
    help: 'SetRateLimit/RemoveRateLimit calls the Manager sync made on module controllers, by outcome',
    labelNames: ['module_type', 'op', 'outcome'],
    registers: [registry],
  });
  new Gauge({
    name: 'mp_nlb_manager_rate_limit_controllers',
    help: 'Module controllers by Manager rate-limit sync state (in_sync, retrying, pending)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const state of ['in_sync', 'retrying', 'pending']) this.set({ state }, 0);
      for (const c of status().rateLimits?.controllers ?? []) this.inc({ state: c.state });
    },
  });
  new Gauge({
    name: 'mp_nlb_manager_last_success_timestamp_seconds',
    help: 'When the last good Manager document was applied (0 = never)',
    registers: [registry],
    collect() {
      this.set((status().lastGood?.at ?? 0) / 1000);
    },
  });
  return {
    synced: (outcome) => syncs.inc({ outcome }),
    rateLimitChange: (e) =>
      changes.inc({ module_type: e.moduleType, op: e.op, outcome: e.ok ? 'ok' : 'error' }),
  };
}
