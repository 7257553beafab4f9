/**
 * An instance's lease with the NLB: register (with backoff while the NLB is away), heartbeat
 * every interval with fresh stats, re-register at once when the NLB says it does not know the
 * instance (e.g. after an NLB restart), hand other instructions to the instance, and unregister
 * gracefully on stop. Runs on the injected clock.
 */
import { backoffDelay } from '../../shared/backoff.js';
import type { HeartbeatResponse, RegisterModuleRequest } from '../../../proto/gen/marchproxy/nlb.js';
import { HealthStatus, type ModuleStats } from '../../../proto/gen/marchproxy/types.js';
import type { Clock, TimerHandle } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import type { NlbApi } from './nlb-api.js';

export interface RegistrationOptions {
  clock: Clock;
  logger: Logger;
  nlb: NlbApi;
  /** What to register (re-read on every registration, so address and routes stay current). */
  request: () => RegisterModuleRequest;
  stats: () => ModuleStats;
  status: () => HealthStatus;
  heartbeatIntervalMs: number;
  /** First retry delay while the NLB is unreachable; doubles up to the heartbeat interval. */
  initialBackoffMs?: number;
  /**
   * Each successful registration, with the request that made it (the instance sends routes
   * that changed while it was in flight).
   */
  onRegistered?: (sent: RegisterModuleRequest) => void;
  /** Instructions from heartbeat responses other than re-registration. */
  onInstructions?: (instructions: Record<string, string>, response: HeartbeatResponse) => void;
  /** A random number in [0,1) for jitter. */
  random?: () => number;
}

export type RegistrationState = 'idle' | 'registering' | 'registered' | 'stopped';

export interface RegistrationAgent {
  start(): void;
  /** Stops heartbeats and unregisters (graceful = drain first on the NLB side). */
  stop(graceful: boolean, drainTimeoutSeconds?: number): Promise<void>;
  /** Stops heartbeats without telling the NLB (a crash, as the NLB will see it). */
  abandon(): void;
  /** Registers again now (e.g. after routes changed). */
  reregister(): Promise<void>;
  readonly state: RegistrationState;
  readonly registrationId: string;
  /** Heartbeats acknowledged, registrations made, failures seen (for tests and stats). */
  readonly counts: { heartbeats: number; registrations: number; failures: number };
}

export function createRegistrationAgent(o: RegistrationOptions): RegistrationAgent {
  const initialBackoff = o.initialBackoffMs ?? 500;
  const random = o.random ?? Math.random;
  let state: RegistrationState = 'idle';
  let registrationId = '';
  let timer: TimerHandle | null = null;
  /** Failed registration attempts in a row (the backoff's exponent). */
  let retries = 0;
  let inFlight: Promise<void> | null = null;
  const counts = { heartbeats: 0, registrations: 0, failures: 0 };
  const id = () => o.request().instance?.instanceId ?? '?';
  // State may change while a call is in flight (stop()); read it through a function.
  const isStopped = () => state === 'stopped';

  const schedule = (ms: number, fn: () => Promise<void>) => {
    timer?.cancel();
    if (state === 'stopped') return;
    timer = o.clock.setTimeout(() => {
      inFlight = fn().finally(() => (inFlight = null));
    }, ms);
  };

  const retryDelay = () =>
    // Jitter must not push a retry past one interval: the lease is rebuilt within one interval.
    Math.min(
      o.heartbeatIntervalMs,
      backoffDelay(
        ++retries,
        { initialMs: initialBackoff, maxMs: o.heartbeatIntervalMs, jitter: 0.2 },
        random,
      ),
    );

  const register = async (): Promise<void> => {
    if (state === 'stopped') return;
    state = 'registering';
    try {
      const req = o.request();
      const res = await o.nlb.register(req);
      if (isStopped()) {
        // stop() is waiting for this call: let it unregister what the NLB has just registered.
        if (res.success) registrationId = res.registrationId;
        return;
      }
      if (!res.success) {
        counts.failures++;
        o.logger.warn(`NLB refused registration: ${res.message}`, { instance: id(), code: res.error?.code });
        schedule(Math.max(retryDelay(), 1000), register);
        return;
      }
      registrationId = res.registrationId;
      counts.registrations++;
      state = 'registered';
      retries = 0;
      o.logger.info('registered with the NLB', {
        instance: id(),
        nlb: o.nlb.target,
        registration: registrationId,
      });
      schedule(o.heartbeatIntervalMs, heartbeat);
      o.onRegistered?.(req);
    } catch (e) {
      counts.failures++;
      o.logger.debug(`NLB unreachable for registration: ${(e as Error).message}`, { instance: id() });
      schedule(retryDelay(), register);
    }
  };

  const heartbeat = async (): Promise<void> => {
    if (state !== 'registered') return;
    const started = o.clock.now();
    try {
      const res = await o.nlb.heartbeat({
        instanceId: id(),
        registrationId,
        status: o.status(),
        currentStats: o.stats(),
        timestamp: o.clock.nowDate(),
      });
      if (isStopped()) return;
      retries = 0;
      if (!res.acknowledged) {
        o.logger.info(`NLB asks to register again: ${res.message}`, { instance: id() });
        registrationId = '';
        await register();
        return;
      }
      counts.heartbeats++;
      const { action: _action, ...rest } = res.instructions;
      if (Object.keys(rest).length || res.shouldReload)
        o.onInstructions?.(res.shouldReload ? { reload: 'true', ...rest } : rest, res);
      schedule(Math.max(0, o.heartbeatIntervalMs - (o.clock.now() - started)), heartbeat);
    } catch (e) {
      counts.failures++;
      o.logger.debug(`heartbeat failed: ${(e as Error).message}`, { instance: id() });
      schedule(retryDelay(), heartbeat);
    }
  };

  return {
    start() {
      if (state !== 'idle') return;
      schedule(0, register);
    },
    async stop(graceful, drainTimeoutSeconds = 0) {
      // A registration in flight may still succeed; stop() then unregisters it (after the await).
      const wasLive = state === 'registered' || state === 'registering';
      state = 'stopped';
      timer?.cancel();
      await inFlight?.catch(() => undefined);
      if (!wasLive || !registrationId) return;
      try {
        await o.nlb.unregister({ instanceId: id(), registrationId, graceful, drainTimeoutSeconds });
        o.logger.info('unregistered from the NLB', { instance: id(), graceful });
      } catch (e) {
        o.logger.warn(`could not unregister from the NLB: ${(e as Error).message}`, { instance: id() });
      }
    },
    abandon() {
      state = 'stopped';
      timer?.cancel();
    },
    async reregister() {
      if (state === 'stopped') return;
      await inFlight?.catch(() => undefined);
      timer?.cancel();
      await register();
    },
    get state() {
      return state;
    },
    get registrationId() {
      return registrationId;
    },
    counts,
  };
}
