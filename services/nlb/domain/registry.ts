/**
 * The instance registry: TTL leases renewed by heartbeats (Consul-style), a small health state
 * machine, graceful draining and eviction. Pure: time comes in as `nowMs`, ids from `newId`.
 */
import { alreadyExists, failedPrecondition, notFound } from '../../shared/errors.js';
import type { Health, InstanceRecord, InstanceSpec, InstanceStats } from './types.js';

export interface LeaseTimings {
  heartbeatIntervalMs: number;
  /** Missed heartbeats before an instance is UNHEALTHY. */
  missedHeartbeats: number;
  /** Silence after which an instance is removed. */
  evictAfterMs: number;
  /** Drain timeout when UnregisterModule gives none. */
  defaultDrainTimeoutMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = {
  heartbeatIntervalMs: 10_000,
  missedHeartbeats: 3,
  evictAfterMs: 300_000,
  defaultDrainTimeoutMs: 30_000,
};

export type RegistryEvent =
  | { type: 'registered'; instance: InstanceRecord; replaced: boolean }
  | { type: 'refreshed'; instance: InstanceRecord }
  | { type: 'health'; instance: InstanceRecord; from: Health; to: Health; reason: string }
  | { type: 'draining'; instance: InstanceRecord }
  | {
      type: 'removed';
      instance: InstanceRecord;
      reason: 'unregistered' | 'drained' | 'drain-timeout' | 'evicted';
    };

export type HeartbeatOutcome =
  | { acknowledged: true; instance: InstanceRecord; instructions: Record<string, string> }
  | { acknowledged: false; reason: string; instructions: Record<string, string> };

/** Health an instance may report that the registry accepts as-is. */
const REPORTABLE: ReadonlySet<Health> = new Set(['HEALTHY', 'DEGRADED', 'UNHEALTHY', 'STARTING', 'STOPPING']);

export class Registry {
  private readonly instances = new Map<string, InstanceRecord>();

  constructor(
    private timings: LeaseTimings,
    private readonly newId: () => string,
  ) {}

  /** Changes lease timings live (config update). */
  setTimings(timings: LeaseTimings): void {
    this.timings = timings;
  }

  getTimings(): LeaseTimings {
    return this.timings;
  }

  get size(): number {
    return this.instances.size;
  }

  get(instanceId: string): InstanceRecord | undefined {
    return this.instances.get(instanceId);
  }

  /** Every instance, in registration order. */
  all(): InstanceRecord[] {
    return [...this.instances.values()];
  }

  /** Whether new connections may go to this instance. */
  static routable(r: InstanceRecord): boolean {
    return (
      r.health === 'HEALTHY' && !r.draining && (r.maxConnections <= 0 || r.connections < r.maxConnections)
    );
  }

  /** Registers (or idempotently refreshes) an instance. Validation happens before this call. */
  register(
    spec: InstanceSpec,
    initialHealth: Health,
    nowMs: number,
  ): { record: InstanceRecord; events: RegistryEvent[] } {
    const existing = this.instances.get(spec.instanceId);
    if (existing) {
      const sameOwner =
        existing.address === spec.address &&
        existing.version === spec.version &&
        existing.moduleType === spec.moduleType;
      // Judged by time, not by health: a live instance reporting UNHEALTHY still holds its lease.
      const leaseLive =
        nowMs - existing.lastHeartbeatAtMs <
          this.timings.missedHeartbeats * this.timings.heartbeatIntervalMs && !existing.draining;
      if (!sameOwner && leaseLive) {
        throw alreadyExists(
          `instance ${spec.instanceId} is already registered as ${existing.moduleType} ${existing.version} by ${existing.address}; ` +
            'unregister it first or choose another instance id',
          { instance_id: spec.instanceId },
        );
      }
      if (sameOwner) {
        const from = existing.health;
        if (existing.draining) delete existing.pendingInstructions.drain; // the drain is over
        Object.assign(existing, spec, {
          lastHeartbeatAtMs: nowMs,
          health: initialHealth,
          reportedHealth: initialHealth,
          draining: false,
          drainDeadlineMs: null,
        });
        const events: RegistryEvent[] = [{ type: 'refreshed', instance: existing }];
        if (from !== initialHealth)
          events.push({
            type: 'health',
            instance: existing,
            from,
            to: initialHealth,
            reason: 're-registered',
          });
        return { record: existing, events };
      }
    }
    const record: InstanceRecord = {
      ...spec,
      registrationId: this.newId(),
      registeredAtMs: nowMs,
      lastHeartbeatAtMs: nowMs,
      health: initialHealth,
      reportedHealth: initialHealth,
      draining: false,
      drainDeadlineMs: null,
      stats: null,
      connections: existing?.connections ?? 0,
      pendingInstructions: {},
    };
    this.instances.set(spec.instanceId, record);
    return { record, events: [{ type: 'registered', instance: record, replaced: existing !== undefined }] };
  }

  private requireRegistration(instanceId: string, registrationId: string): InstanceRecord {
    const r = this.instances.get(instanceId);
    if (!r) throw notFound(`instance ${instanceId} is not registered`, { instance_id: instanceId });
    if (registrationId && registrationId !== r.registrationId) {
      throw failedPrecondition(
        `registration id ${registrationId} is not the current registration of ${instanceId}; re-register to get a new one`,
        { instance_id: instanceId },
      );
    }
    return r;
  }

  /**
   * Removes an instance at once, or (graceful) marks it draining until its connections end or
   * the drain timeout passes. Returns the connections open when the call was made.
   */
  unregister(
    instanceId: string,
    registrationId: string,
    graceful: boolean,
    drainTimeoutMs: number,
    nowMs: number,
  ): { openConnections: number; events: RegistryEvent[] } {
    const r = this.requireRegistration(instanceId, registrationId);
    const openConnections = Math.max(r.connections, r.stats?.activeConnections ?? 0);
    if (!graceful || r.connections === 0) {
      this.instances.delete(instanceId);
      return {
        openConnections,
        events: [{ type: 'removed', instance: r, reason: graceful ? 'drained' : 'unregistered' }],
      };
    }
    if (r.draining) return { openConnections, events: [] };
    const from = r.health;
    r.draining = true;
    r.health = 'STOPPING';
    r.drainDeadlineMs = nowMs + (drainTimeoutMs > 0 ? drainTimeoutMs : this.timings.defaultDrainTimeoutMs);
    r.pendingInstructions.drain = 'true';
    return {
      openConnections,
      events: [
        { type: 'draining', instance: r },
        { type: 'health', instance: r, from, to: 'STOPPING', reason: 'graceful unregistration' },
      ],
    };
  }

  /** Renews a lease and records stats; unknown or stale registrations are told to re-register. */
  heartbeat(
    instanceId: string,
    registrationId: string,
    reported: Health | null,
    stats: InstanceStats | null,
    nowMs: number,
  ): { outcome: HeartbeatOutcome; events: RegistryEvent[] } {
    const r = this.instances.get(instanceId);
    if (!r) {
      return {
        outcome: {
          acknowledged: false,
          reason: `instance ${instanceId} is not registered (the NLB may have restarted); register again`,
          instructions: { action: 'reregister' },
        },
        events: [],
      };
    }
    if (registrationId && registrationId !== r.registrationId) {
      return {
        outcome: {
          acknowledged: false,
          reason: `registration ${registrationId} of ${instanceId} is stale; register again`,
          instructions: { action: 'reregister' },
        },
        events: [],
      };
    }
    r.lastHeartbeatAtMs = nowMs;
    if (stats) r.stats = stats;
    const events: RegistryEvent[] = [];
    if (reported && REPORTABLE.has(reported)) r.reportedHealth = reported;
    if (!r.draining) {
      const to = r.reportedHealth;
      if (to !== r.health) {
        events.push({ type: 'health', instance: r, from: r.health, to, reason: 'heartbeat' });
        r.health = to;
      }
    }
    const instructions = r.pendingInstructions;
    r.pendingInstructions = r.draining ? { drain: 'true' } : {};
    return { outcome: { acknowledged: true, instance: r, instructions }, events };
  }

  /** Queues an instruction for the instance's next heartbeat response. */
  queueInstruction(instanceId: string, key: string, value: string): void {
    const r = this.instances.get(instanceId);
    if (!r) throw notFound(`instance ${instanceId} is not registered`, { instance_id: instanceId });
    r.pendingInstructions[key] = value;
  }

  /** Applies lease expiry, eviction and drain completion as of `nowMs`. */
  sweep(nowMs: number): RegistryEvent[] {
    const events: RegistryEvent[] = [];
    const { heartbeatIntervalMs, missedHeartbeats, evictAfterMs } = this.timings;
    for (const r of [...this.instances.values()]) {
      const silentMs = nowMs - r.lastHeartbeatAtMs;
      if (r.draining) {
        if (r.connections <= 0) {
          this.instances.delete(r.instanceId);
          events.push({ type: 'removed', instance: r, reason: 'drained' });
        } else if (r.drainDeadlineMs !== null && nowMs >= r.drainDeadlineMs) {
          this.instances.delete(r.instanceId);
          events.push({ type: 'removed', instance: r, reason: 'drain-timeout' });
        }
        continue;
      }
      if (silentMs >= evictAfterMs) {
        this.instances.delete(r.instanceId);
        events.push({ type: 'removed', instance: r, reason: 'evicted' });
      } else if (silentMs >= missedHeartbeats * heartbeatIntervalMs && r.health !== 'UNHEALTHY') {
        events.push({
          type: 'health',
          instance: r,
          from: r.health,
          to: 'UNHEALTHY',
          reason: `no heartbeat for ${Math.round(silentMs / 1000)} s (${missedHeartbeats} missed)`,
        });
        r.health = 'UNHEALTHY';
      }
    }
    return events;
  }

  /** Adjusts the data plane's connection count for an instance (never below zero). */
  addConnections(instanceId: string, delta: number): void {
    const r = this.instances.get(instanceId);
    if (r) r.connections = Math.max(0, r.connections + delta);
  }
}
