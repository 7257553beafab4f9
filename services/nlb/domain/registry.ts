/**
 * The instance registry: TTL leases renewed by heartbeats (Consul-style), a small health state
 * machine, graceful draining and eviction. Pure: time comes in as `nowMs`, ids from `newId`.
 */
import { alreadyExists, failedPrecondition, notFound } from '../../shared/errors.js';
import {
  emptyStats,
  type Health,
  type InstanceRecord,
  type InstanceSpec,
  type InstanceStats,
} from './types.js';

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

/** The answer to a heartbeat when nothing is queued (shared: most heartbeats carry nothing back). */
const NO_INSTRUCTIONS: Record<string, string> = Object.freeze({});

export class Registry {
  private readonly instances = new Map<string, InstanceRecord>();
  /** The same records ordered by instance id (code-point order), kept up to date on every change. */
  private readonly byId: InstanceRecord[] = [];
  private readonly strings = new Interner(4096);

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

  /** Every instance in registration order, without copying (do not register or remove meanwhile). */
  values(): IterableIterator<InstanceRecord> {
    return this.instances.values();
  }

  /** Every instance, in registration order (a copy). */
  all(): InstanceRecord[] {
    return [...this.instances.values()];
  }

  /**
   * Every instance ordered by instance id (code-point order, as query sorts strings), without a
   * copy: a live view that the next registration or removal changes. Do not modify it or keep it.
   */
  sortedById(): readonly InstanceRecord[] {
    return this.byId;
  }

  /**
   * The spec as the registry keeps it: the strings that many instances repeat (controller
   * address, version, metadata and capability values) point to one copy each (every
   * registration decodes its own, and at 10k instances the duplicates were megabytes of heap).
   */
  private shared(spec: InstanceSpec): InstanceSpec {
    const share = (m: Record<string, string>) =>
      Object.fromEntries(Object.entries(m).map(([k, v]) => [k, this.strings.get(v)]));
    // Only the spec's own fields (a spec object may carry more), in one order.
    return {
      instanceId: spec.instanceId,
      moduleType: spec.moduleType,
      address: this.strings.get(spec.address),
      trafficAddress: spec.trafficAddress,
      version: this.strings.get(spec.version),
      maxConnections: spec.maxConnections,
      metadata: share(spec.metadata),
      protocols: spec.protocols,
      proxyProtocol: spec.proxyProtocol,
      startedAtMs: spec.startedAtMs,
      capabilities: share(spec.capabilities),
    };
  }

  /** Where `instanceId` is, or would go, in `byId`. */
  private position(instanceId: string): number {
    let lo = 0;
    let hi = this.byId.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.byId[mid].instanceId < instanceId) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Stores a record (new, or replacing the one with its id) in both orders. */
  private put(record: InstanceRecord): void {
    this.instances.set(record.instanceId, record);
    const at = this.position(record.instanceId);
    if (this.byId[at]?.instanceId === record.instanceId) this.byId[at] = record;
    else this.byId.splice(at, 0, record);
  }

  private remove(instanceId: string): void {
    this.instances.delete(instanceId);
    const at = this.position(instanceId);
    if (this.byId[at]?.instanceId === instanceId) this.byId.splice(at, 1);
  }

  /** Whether new connections may go to this instance. */
  static routable(r: InstanceRecord): boolean {
    return (
      r.health === 'HEALTHY' && !r.draining && (r.maxConnections <= 0 || r.connections < r.maxConnections)
    );
  }

  /** Registers (or idempotently refreshes) an instance. Validation happens before this call. */
  register(
    given: InstanceSpec,
    initialHealth: Health,
    nowMs: number,
  ): { record: InstanceRecord; events: RegistryEvent[] } {
    const spec = this.shared(given);
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
    // Every field spelled out, in one order: all records share one hidden class, so the code that
    // reads them stays monomorphic (a spread here gave each of 10k records a class of its own).
    const record: InstanceRecord = {
      instanceId: spec.instanceId,
      moduleType: spec.moduleType,
      address: spec.address,
      trafficAddress: spec.trafficAddress,
      version: spec.version,
      maxConnections: spec.maxConnections,
      metadata: spec.metadata,
      protocols: spec.protocols,
      proxyProtocol: spec.proxyProtocol,
      startedAtMs: spec.startedAtMs,
      capabilities: spec.capabilities,
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
    this.put(record);
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
      this.remove(instanceId);
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
    // Copied into the record's own stats object: a heartbeat leaves no new object behind that
    // lives until the next one (at fleet scale those all reached the old generation as garbage).
    if (stats) {
      if (r.stats) copyStats(r.stats, stats);
      else r.stats = copyStats(emptyStats(), stats);
    }
    const events: RegistryEvent[] = [];
    if (reported && REPORTABLE.has(reported)) r.reportedHealth = reported;
    if (!r.draining) {
      const to = r.reportedHealth;
      if (to !== r.health) {
        events.push({ type: 'health', instance: r, from: r.health, to, reason: 'heartbeat' });
        r.health = to;
      }
    }
    let instructions = r.pendingInstructions;
    if (r.draining) r.pendingInstructions = { drain: 'true' };
    else if (isEmpty(instructions)) instructions = NO_INSTRUCTIONS;
    else r.pendingInstructions = {};
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
          this.remove(r.instanceId);
          events.push({ type: 'removed', instance: r, reason: 'drained' });
        } else if (r.drainDeadlineMs !== null && nowMs >= r.drainDeadlineMs) {
          this.remove(r.instanceId);
          events.push({ type: 'removed', instance: r, reason: 'drain-timeout' });
        }
        continue;
      }
      if (silentMs >= evictAfterMs) {
        this.remove(r.instanceId);
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

/** Copies `from` into `into` field by field (`custom` too, as long as its keys stay the same). */
function copyStats(into: InstanceStats, from: InstanceStats): InstanceStats {
  into.totalRequests = from.totalRequests;
  into.successfulRequests = from.successfulRequests;
  into.failedRequests = from.failedRequests;
  into.activeConnections = from.activeConnections;
  into.totalConnections = from.totalConnections;
  into.avgLatencyMs = from.avgLatencyMs;
  into.p50LatencyMs = from.p50LatencyMs;
  into.p95LatencyMs = from.p95LatencyMs;
  into.p99LatencyMs = from.p99LatencyMs;
  into.bytesReceived = from.bytesReceived;
  into.bytesSent = from.bytesSent;
  into.cpuUsagePercent = from.cpuUsagePercent;
  into.memoryUsageMb = from.memoryUsageMb;
  into.sinceMs = from.sinceMs;
  if (sameKeys(into.custom, from.custom)) {
    for (const k of Object.keys(from.custom)) into.custom[k] = from.custom[k];
  } else {
    into.custom = { ...from.custom };
  }
  return into;
}

/** Whether both have the same own keys. Keys only: the values are then copied one by one. */
function sameKeys(a: Record<string, string>, b: Record<string, string>): boolean {
  let n = 0;
  for (const k of Object.keys(b)) {
    if (!Object.hasOwn(a, k) || k === '__proto__') return false;
    n++;
  }
  return n === Object.keys(a).length;
}

function isEmpty(o: Record<string, string>): boolean {
  for (const _ in o) return false;
  return true;
}

/** One copy per distinct short string, up to `max` distinct strings (then strings pass through). */
class Interner {
  private readonly known = new Map<string, string>();

  constructor(private readonly max: number) {}

  get(s: string): string {
    const known = this.known.get(s);
    if (known !== undefined) return known;
    if (this.known.size < this.max && s.length <= 256) this.known.set(s, s);
    return s;
  }
}
