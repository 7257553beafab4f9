/**
 * Pushes the Manager's rate limits to the module controllers (ModuleService GetRateLimits,
 * SetRateLimit, RemoveRateLimit) and keeps them there: each controller the NLB knows (the
 * `address` its instances registered with) is reconciled on its own — its Manager-owned limits
 * made equal to the Manager's for its module type and version (rate-limits.ts) — when the
 * document changes, on every sync (drift check), and when one of its instances registers (a
 * restarted controller). A controller that cannot be reached or refuses a change is retried with
 * exponential backoff until it converges or its instances leave the registry.
 */
import { backoffDelay } from '../../shared/backoff.js';
import { Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { StatusCode } from '../../../proto/gen/marchproxy/types.js';
import { unaryCall } from '../../shared/grpc/client.js';
import type { Logger } from '../../shared/logger.js';
import type { ModuleTypeName } from '../domain/types.js';
import type { Nlb } from '../nlb.js';
import type { ModuleClientPool } from '../transport/module-port.js';
import type { ManagerRateLimit } from './document.js';
import { desiredLimitsFor, planRateLimits, type ControllerRateLimit } from './rate-limits.js';

/** One module controller, as the NLB's registry knows it. */
export interface RateLimitController {
  address: string;
  moduleType: ModuleTypeName;
  version: string;
}

/** The three ModuleService calls the push needs (gRPC in production; tests may fake it). */
export interface ControllerRateLimitClient {
  list(address: string, timeoutMs: number): Promise<ControllerRateLimit[]>;
  set(address: string, limit: ControllerRateLimit, timeoutMs: number): Promise<void>;
  remove(address: string, limitId: string, timeoutMs: number): Promise<void>;
  close(): void;
}

/** The controllers the NLB knows: one per distinct registered controller address. */
export function controllersOf(nlb: Nlb): RateLimitController[] {
  const out = new Map<string, RateLimitController>();
  for (const r of nlb.registry.all())
    if (r.address && !out.has(r.address))
      out.set(r.address, { address: r.address, moduleType: r.moduleType, version: r.version });
  return [...out.values()];
}

/**
 * ModuleService over gRPC through `pool`: the one CanHandle and Scale use (the NLB's), so a
 * controller has one channel. The pool's owner closes it; `close()` here does not.
 */
export function createGrpcRateLimitClient(pool: ModuleClientPool): ControllerRateLimitClient {
  const client = (address: string) => pool.get(address);
  const settings = (timeoutMs: number) => ({ timeoutMs, metadata: new Metadata() });
  return {
    async list(address, timeoutMs) {
      const r = await unaryCall(
        client(address),
        'getRateLimits',
        { instanceId: '', target: '' },
        settings(timeoutMs),
      );
      return r.limits.map((l) => ({ ...l, metadata: { ...l.metadata } }));
    },
    async set(address, limit, timeoutMs) {
      const r = await unaryCall(
        client(address),
        'setRateLimit',
        { instanceId: '', limit },
        settings(timeoutMs),
      );
      // success=false without an error: stored, but not yet pushed to every instance (the
      // controller pushes again itself); an error is a refusal.
      if (!r.success && r.error) throw new Error(`SetRateLimit ${limit.limitId} refused: ${r.error.message}`);
    },
    async remove(address, limitId, timeoutMs) {
      const r = await unaryCall(
        client(address),
        'removeRateLimit',
        { instanceId: '', limitId },
        settings(timeoutMs),
      );
      if (!r.success && r.error && r.error.code !== StatusCode.STATUS_CODE_NOT_FOUND)
        throw new Error(`RemoveRateLimit ${limitId} refused: ${r.error.message}`);
    },
    close() {
      // The pool is shared with the module port: its owner closes it.
    },
  };
}

export type ControllerSyncState = 'pending' | 'in_sync' | 'retrying';

export interface RateLimitControllerStatus extends RateLimitController {
  state: ControllerSyncState;
  /** Manager-owned limits the controller holds as desired (after the last successful pass). */
  managed: number;
  /** Limits an operator set directly (never touched). */
  operator: number;
  /** Manager limit ids held by an operator-set limit (left alone). */
  conflicts: string[];
  /** Failed attempts in a row. */
  attempts: number;
  lastError?: string;
  nextRetryAtMs?: number;
  lastSyncedAtMs?: number;
}

export interface RateLimitSyncStatus {
  /** Limits in the last good Manager document; null until a document with rateLimits arrived. */
  limits: number | null;
  controllers: RateLimitControllerStatus[];
}

export interface RateLimitReconcilerOptions {
  controllers: () => RateLimitController[];
  client: ControllerRateLimitClient;
  logger: Logger;
  /** Deadline of each ModuleService call [default 5000]. */
  callTimeoutMs?: number;
  /** First retry delay after a failure; doubles per failure up to retryMaxMs [500, 30000]. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Each SetRateLimit/RemoveRateLimit outcome (metrics). */
  onChange?: (e: { moduleType: string; op: 'set' | 'remove'; ok: boolean }) => void;
}

interface Entry {
  controller: RateLimitController;
  status: RateLimitControllerStatus;
  running?: Promise<void>;
  again: boolean;
  timer?: NodeJS.Timeout;
}

const who = (c: RateLimitController) => `${c.moduleType} ${c.version} controller ${c.address}`;
/** "UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:50051" rather than grpc-js's long form. */
function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const { code, details } = e as Error & { code?: number; details?: string };
  if (typeof code !== 'number' || !details) return e.message;
  const text = details
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/^No connection established\. Last error: (Error: )?/, '');
  return `${grpcStatus[code] ?? code}: ${text}`;
}

/** Keeps every known controller's Manager-owned rate limits equal to the Manager's. */
export class RateLimitReconciler {
  private desired: ManagerRateLimit[] | undefined;
  private readonly entries = new Map<string, Entry>();
  private stopped = false;

  constructor(private readonly o: RateLimitReconcilerOptions) {}

  /** Takes the Manager's limits and reconciles every controller once; returns the failures. */
  async apply(limits: ManagerRateLimit[]): Promise<string[]> {
    this.desired = limits;
    return this.reconcileAll();
  }

  /** One pass over every known controller (drift check); returns the failures as warnings. */
  async reconcileAll(): Promise<string[]> {
    if (this.desired === undefined || this.stopped) return [];
    const live = this.o.controllers();
    const addresses = new Set(live.map((c) => c.address));
    for (const [address, e] of this.entries)
      if (!addresses.has(address)) {
        clearTimeout(e.timer);
        this.entries.delete(address);
      }
    await Promise.all(live.map((c) => this.reconcile(c)));
    return live
      .map((c) => this.entries.get(c.address)?.status)
      .filter((s): s is RateLimitControllerStatus => s?.state === 'retrying')
      .map(
        (s) =>
          `rateLimits: ${who(s)}: ${s.lastError}; retrying in ${(Math.max(0, (s.nextRetryAtMs ?? 0) - Date.now()) / 1000).toFixed(1)} s`,
      );
  }

  /** A controller's instance registered (or the controller came back): reconcile it now. */
  controllerSeen(address: string): void {
    if (this.desired === undefined || this.stopped) return;
    const c = this.o.controllers().find((x) => x.address === address);
    if (c) void this.reconcile(c);
  }

  status(): RateLimitSyncStatus {
    return {
      limits: this.desired?.length ?? null,
      controllers: [...this.entries.values()]
        .map((e) => structuredClone(e.status))
        .sort((a, b) => a.address.localeCompare(b.address)),
    };
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.o.client.close();
  }

  /** One controller; a call while one is in flight runs once more after it (coalesced). */
  private reconcile(c: RateLimitController): Promise<void> {
    let e = this.entries.get(c.address);
    if (!e) {
      e = {
        controller: c,
        again: false,
        status: { ...c, state: 'pending', managed: 0, operator: 0, conflicts: [], attempts: 0 },
      };
      this.entries.set(c.address, e);
    }
    e.controller = c;
    if (e.running) {
      e.again = true;
      return e.running;
    }
    const entry = e;
    entry.running = (async () => {
      do {
        entry.again = false;
        await this.pass(entry);
      } while (entry.again && !this.stopped);
    })().finally(() => (entry.running = undefined));
    return entry.running;
  }

  private async pass(e: Entry): Promise<void> {
    if (this.desired === undefined || this.stopped) return;
    clearTimeout(e.timer);
    e.timer = undefined;
    const c = e.controller;
    const s = e.status;
    const t = this.o.callTimeoutMs ?? 5000;
    const log = this.o.logger;
    const desired = desiredLimitsFor(this.desired, c.moduleType, c.version);
    try {
      const plan = planRateLimits(await this.o.client.list(c.address, t), desired);
      const failures: string[] = [];
      const run = async (op: 'set' | 'remove', id: string, f: () => Promise<void>) => {
        try {
          await f();
          this.o.onChange?.({ moduleType: c.moduleType, op, ok: true });
        } catch (err) {
          this.o.onChange?.({ moduleType: c.moduleType, op, ok: false });
          failures.push(`${op} ${id}: ${errorText(err)}`);
        }
      };
      for (const l of plan.set) await run('set', l.limitId, () => this.o.client.set(c.address, l, t));
      for (const id of plan.remove) await run('remove', id, () => this.o.client.remove(c.address, id, t));
      if (failures.length) throw new Error(failures.join('; '));
      const recovered = s.attempts > 0;
      const newConflicts = plan.conflicts.filter((id) => !s.conflicts.includes(id));
      Object.assign(s, {
        state: 'in_sync',
        managed: desired.length - plan.conflicts.length,
        operator: plan.operator,
        conflicts: plan.conflicts,
        attempts: 0,
        lastError: undefined,
        nextRetryAtMs: undefined,
        lastSyncedAtMs: Date.now(),
      });
      if (plan.set.length || plan.remove.length)
        log.info(
          `Manager rate limits on ${who(c)}: set ${plan.set.map((l) => l.limitId).join(', ') || 'none'}; removed ${plan.remove.join(', ') || 'none'}`,
          { managed: s.managed, operator: s.operator },
        );
      if (recovered) log.info(`Manager rate limits on ${who(c)} are in sync again`);
      if (newConflicts.length)
        log.warn(
          `Manager rate limits on ${who(c)}: ${newConflicts.join(', ')} already exist as operator-set limits; left alone (remove them to let the Manager own them)`,
        );
    } catch (err) {
      const message = errorText(err);
      s.attempts++;
      const delay = backoffDelay(s.attempts, {
        initialMs: this.o.retryInitialMs ?? 500,
        maxMs: this.o.retryMaxMs ?? 30_000,
        jitter: 0.2,
      });
      const first = s.attempts === 1 || message !== s.lastError;
      Object.assign(s, { state: 'retrying', lastError: message, nextRetryAtMs: Date.now() + delay });
      const line = `Manager rate limits on ${who(c)} not applied (attempt ${s.attempts}): ${message}; retrying in ${(delay / 1000).toFixed(1)} s`;
      if (first || s.attempts % 10 === 0) log.warn(line);
      else log.debug(line);
      if (this.stopped) return;
      e.timer = setTimeout(() => this.retry(c.address), delay);
      e.timer.unref();
    }
  }

  private retry(address: string): void {
    const e = this.entries.get(address);
    if (!e || this.stopped) return;
    e.timer = undefined;
    const c = this.o.controllers().find((x) => x.address === address);
    if (!c) {
      this.entries.delete(address);
      this.o.logger.info(`Manager rate limits: ${who(e.controller)} left the registry; no longer retrying`);
      return;
    }
    void this.reconcile(c);
  }
}
