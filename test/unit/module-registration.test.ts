import { describe, expect, it } from 'vitest';
import type {
  HeartbeatRequest,
  HeartbeatResponse,
  RegisterModuleRequest,
  RegisterModuleResponse,
  UnregisterModuleRequest,
} from '../../proto/gen/marchproxy/nlb.js';
import { HealthStatus, ModuleType, type ModuleStats } from '../../proto/gen/marchproxy/types.js';
import { createManualClock, type ManualClock } from '../../services/shared/clock.js';
import { memoryLogger } from '../../services/shared/logger.js';
import type { NlbApi } from '../../services/modules/runtime/nlb-api.js';
import {
  createRegistrationAgent,
  type RegistrationOptions,
} from '../../services/modules/runtime/registration.js';

const INTERVAL_MS = 1000;

/** One scripted answer: a response, a failure (the NLB unreachable), or a call the test settles. */
type Step<T> = T | Error | (() => Promise<T>);

const registered = (registrationId: string): RegisterModuleResponse => ({
  success: true,
  message: 'registered',
  registrationId,
});

const refused = (message: string): RegisterModuleResponse => ({
  success: false,
  message,
  registrationId: '',
});

const ack = (over: Partial<HeartbeatResponse> = {}): HeartbeatResponse => ({
  acknowledged: true,
  message: 'ok',
  shouldReload: false,
  shouldScale: false,
  instructions: {},
  ...over,
});

const unknownInstance = (): HeartbeatResponse =>
  ack({
    acknowledged: false,
    message: 'instance alb-1 is not registered',
    instructions: { action: 'reregister' },
  });

/**
 * An NlbApi whose answers are scripted per method (consumed in order, then the fallback), and
 * which records every call with the clock time it was made at.
 */
function fakeNlb(clock: ManualClock) {
  let regSeq = 0;
  const script = {
    register: [] as Step<RegisterModuleResponse>[],
    heartbeat: [] as Step<HeartbeatResponse>[],
  };
  const fallback = {
    register: (): Step<RegisterModuleResponse> => registered(`reg-${++regSeq}`),
    heartbeat: (): Step<HeartbeatResponse> => ack(),
  };
  const calls = {
    register: [] as Array<{ at: number; req: RegisterModuleRequest }>,
    heartbeat: [] as Array<{ at: number; req: HeartbeatRequest }>,
    unregister: [] as Array<{ at: number; req: UnregisterModuleRequest }>,
  };
  const answer = <T>(step: Step<T>): Promise<T> => {
    if (step instanceof Error) return Promise.reject(step);
    if (typeof step === 'function') return (step as () => Promise<T>)();
    return Promise.resolve(step);
  };
  const api: NlbApi = {
    target: 'fake-nlb:50050',
    register(req) {
      calls.register.push({ at: clock.now(), req });
      return answer(script.register.shift() ?? fallback.register());
    },
    heartbeat(req) {
      calls.heartbeat.push({ at: clock.now(), req });
      return answer(script.heartbeat.shift() ?? fallback.heartbeat());
    },
    unregister(req) {
      calls.unregister.push({ at: clock.now(), req });
      return Promise.resolve({ success: true, message: 'ok', activeConnectionsDrained: 0 });
    },
    updateRouting: () => Promise.reject(new Error('not used')),
    updateDeployment: () => Promise.reject(new Error('not used')),
    close() {},
  };
  return { api, script, fallback, calls };
}

const stats = (totalRequests: number): ModuleStats => ({
  instanceId: 'alb-1',
  totalRequests,
  successfulRequests: totalRequests,
  failedRequests: 0,
  activeConnections: 1,
  totalConnections: totalRequests,
  avgLatencyMs: 1,
  p50LatencyMs: 1,
  p95LatencyMs: 2,
  p99LatencyMs: 3,
  bytesReceived: 0,
  bytesSent: 0,
  cpuUsagePercent: 0,
  memoryUsageMb: 0,
  customStats: {},
});

function setup(over: Partial<RegistrationOptions> = {}) {
  const clock = createManualClock(0);
  const logger = memoryLogger();
  const nlb = fakeNlb(clock);
  let requests = 0;
  const instructions: Array<Record<string, string>> = [];
  const agent = createRegistrationAgent({
    clock,
    logger,
    nlb: nlb.api,
    request: () => ({
      instance: {
        instanceId: 'alb-1',
        moduleType: ModuleType.MODULE_TYPE_ALB,
        address: '127.0.0.1:50051',
        healthStatus: HealthStatus.HEALTH_STATUS_HEALTHY,
        metadata: {},
        currentConnections: 0,
        maxConnections: 0,
        version: '1.0',
        trafficWeight: 0,
        trafficAddress: '127.0.0.1:9001',
        proxyProtocol: 0,
        draining: false,
        protocols: [],
      },
      initialRoutes: [],
      capabilities: {},
    }),
    stats: () => stats(++requests),
    status: () => HealthStatus.HEALTH_STATUS_HEALTHY,
    heartbeatIntervalMs: INTERVAL_MS,
    initialBackoffMs: 100,
    random: () => 0.5,
    onInstructions: (ins) => instructions.push(ins),
    ...over,
  });
  return { clock, logger, nlb, agent, instructions };
}

const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]);

describe('registration agent', () => {
  it('registers at start, then heartbeats every interval with fresh stats', async () => {
    const { clock, nlb, agent } = setup();
    expect(agent.state).toBe('idle');
    agent.start();
    await clock.advanceAsync(0);
    expect(nlb.calls.register).toHaveLength(1);
    expect(nlb.calls.register[0].req.instance?.instanceId).toBe('alb-1');
    expect(agent.state).toBe('registered');
    expect(agent.registrationId).toBe('reg-1');

    await clock.advanceAsync(3 * INTERVAL_MS);
    expect(nlb.calls.heartbeat.map((c) => c.at)).toEqual([1000, 2000, 3000]);
    const hb = nlb.calls.heartbeat.map((c) => c.req);
    expect(hb.map((r) => r.registrationId)).toEqual(['reg-1', 'reg-1', 'reg-1']);
    expect(hb.map((r) => r.currentStats?.totalRequests)).toEqual([1, 2, 3]);
    expect(hb[0]).toMatchObject({ instanceId: 'alb-1', status: HealthStatus.HEALTH_STATUS_HEALTHY });
    expect(hb[2].timestamp?.getTime()).toBe(3000);
    expect(agent.counts).toEqual({ heartbeats: 3, registrations: 1, failures: 0 });
  });

  it('start() twice registers once', async () => {
    const { clock, nlb, agent } = setup();
    agent.start();
    agent.start();
    await clock.advanceAsync(0);
    agent.start();
    await clock.advanceAsync(10);
    expect(nlb.calls.register).toHaveLength(1);
  });

  it('retries an unreachable NLB with a doubling backoff capped by the heartbeat interval', async () => {
    const { clock, nlb, agent } = setup();
    nlb.fallback.register = () => new Error('connect ECONNREFUSED');
    agent.start();
    await clock.advanceAsync(8000);
    const delays = gaps(nlb.calls.register.map((c) => c.at));
    // random() = 0.5 means no jitter: 100, 200, 400, 800, then the interval.
    expect(delays.slice(0, 6)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(agent.state).toBe('registering');
    expect(agent.counts.failures).toBe(nlb.calls.register.length);

    nlb.fallback.register = () => registered('reg-back');
    await clock.advanceAsync(INTERVAL_MS);
    expect(agent.state).toBe('registered');
    expect(agent.registrationId).toBe('reg-back');
  });

  it('never waits longer than the heartbeat interval between retries, whatever the jitter', async () => {
    for (const r of [0, 0.999_999]) {
      const { clock, nlb, agent } = setup({ random: () => r });
      nlb.fallback.register = () => new Error('unreachable');
      agent.start();
      await clock.advanceAsync(10_000);
      const delays = gaps(nlb.calls.register.map((c) => c.at));
      expect(delays.length).toBeGreaterThan(6);
      // (Times are sums of fractional delays; allow for float rounding only.)
      for (const d of delays) expect(d).toBeLessThanOrEqual(INTERVAL_MS + 1e-6);
      // Jitter still spreads retries: at most ±20 %.
      expect(delays[0]).toBeGreaterThanOrEqual(80);
      agent.abandon();
    }
  });

  it('backs off heartbeats while the NLB is away, then resumes at the interval', async () => {
    const { clock, nlb, agent } = setup();
    agent.start();
    await clock.advanceAsync(0);
    nlb.script.heartbeat.push(new Error('unavailable'), new Error('unavailable'), new Error('unavailable'));
    await clock.advanceAsync(1000 + 100 + 200 + 400 + 3000);
    expect(nlb.calls.heartbeat.map((c) => c.at)).toEqual([1000, 1100, 1300, 1700, 2700, 3700, 4700]);
    expect(agent.counts.failures).toBe(3);
    expect(agent.counts.heartbeats).toBe(4);
    expect(agent.state).toBe('registered');
  });

  it('re-registers at once when the NLB does not know the instance', async () => {
    const { clock, nlb, agent, instructions } = setup();
    agent.start();
    await clock.advanceAsync(0);
    nlb.script.heartbeat.push(unknownInstance());
    await clock.advanceAsync(INTERVAL_MS);
    expect(nlb.calls.register.map((c) => c.at)).toEqual([0, 1000]);
    expect(agent.registrationId).toBe('reg-2');
    expect(agent.counts.registrations).toBe(2);
    // The reregister instruction is carried out, not handed on.
    expect(instructions).toEqual([]);

    await clock.advanceAsync(INTERVAL_MS);
    expect(nlb.calls.heartbeat.map((c) => [c.at, c.req.registrationId])).toEqual([
      [1000, 'reg-1'],
      [2000, 'reg-2'],
    ]);
  });

  it('hands reload and other instructions to onInstructions, without the action key', async () => {
    const { clock, nlb, agent, instructions } = setup();
    agent.start();
    await clock.advanceAsync(0);
    nlb.script.heartbeat.push(
      ack({ shouldReload: true }),
      ack({ instructions: { drain: 'true', action: 'noop' } }),
      ack({ instructions: { action: 'noop' } }),
    );
    await clock.advanceAsync(3 * INTERVAL_MS);
    expect(instructions).toEqual([{ reload: 'true' }, { drain: 'true' }]);
    expect(agent.counts.heartbeats).toBe(3);
  });

  it('retries a refused registration later (not sooner than 1 s)', async () => {
    const { clock, nlb, agent, logger } = setup();
    nlb.script.register.push(refused('instance id in use'));
    agent.start();
    await clock.advanceAsync(0);
    expect(agent.state).toBe('registering');
    expect(agent.registrationId).toBe('');
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('instance id in use'))).toBe(true);

    await clock.advanceAsync(999);
    expect(nlb.calls.register).toHaveLength(1);
    await clock.advanceAsync(1);
    expect(nlb.calls.register.map((c) => c.at)).toEqual([0, 1000]);
    expect(agent.state).toBe('registered');
    expect(agent.counts).toMatchObject({ registrations: 1, failures: 1 });
  });

  it('stop(graceful) unregisters with graceful=true and stops heartbeats', async () => {
    const { clock, nlb, agent } = setup();
    agent.start();
    await clock.advanceAsync(1500);
    await agent.stop(true, 7);
    expect(nlb.calls.unregister.map((c) => c.req)).toEqual([
      { instanceId: 'alb-1', registrationId: 'reg-1', graceful: true, drainTimeoutSeconds: 7 },
    ]);
    expect(agent.state).toBe('stopped');
    await clock.advanceAsync(5 * INTERVAL_MS);
    expect(nlb.calls.heartbeat).toHaveLength(1);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('stop(false) unregisters with graceful=false', async () => {
    const { clock, nlb, agent } = setup();
    agent.start();
    await clock.advanceAsync(0);
    await agent.stop(false);
    expect(nlb.calls.unregister.map((c) => c.req.graceful)).toEqual([false]);
    expect(nlb.calls.unregister[0].req.drainTimeoutSeconds).toBe(0);
  });

  it('stop() before registering does not unregister', async () => {
    const { clock, nlb, agent } = setup();
    nlb.fallback.register = () => new Error('unreachable');
    agent.start();
    await clock.advanceAsync(500);
    await agent.stop(true);
    expect(nlb.calls.unregister).toHaveLength(0);
    const attempts = nlb.calls.register.length;
    await clock.advanceAsync(5000);
    expect(nlb.calls.register).toHaveLength(attempts);
  });

  it('stop() during an in-flight registration unregisters what the NLB just registered', async () => {
    const { clock, nlb, agent } = setup();
    let answer: (r: RegisterModuleResponse) => void = () => undefined;
    nlb.script.register.push(() => new Promise((resolve) => (answer = resolve)));
    agent.start();
    await clock.advanceAsync(0);
    expect(agent.state).toBe('registering');
    const stopping = agent.stop(true, 3);
    answer(registered('reg-late'));
    await stopping;
    expect(nlb.calls.unregister.map((c) => c.req)).toEqual([
      { instanceId: 'alb-1', registrationId: 'reg-late', graceful: true, drainTimeoutSeconds: 3 },
    ]);
    await clock.advanceAsync(5 * INTERVAL_MS);
    expect(nlb.calls.heartbeat).toHaveLength(0);
  });

  it('abandon() stops heartbeats without unregistering', async () => {
    const { clock, nlb, agent } = setup();
    agent.start();
    await clock.advanceAsync(2000);
    expect(nlb.calls.heartbeat).toHaveLength(2);
    agent.abandon();
    expect(agent.state).toBe('stopped');
    await clock.advanceAsync(5 * INTERVAL_MS);
    expect(nlb.calls.heartbeat).toHaveLength(2);
    expect(nlb.calls.unregister).toHaveLength(0);
    // A later stop() does not unregister an abandoned lease either.
    await agent.stop(true);
    expect(nlb.calls.unregister).toHaveLength(0);
  });

  it('reregister() registers again now and keeps heartbeating with the new id', async () => {
    const { clock, nlb, agent } = setup();
    agent.start();
    await clock.advanceAsync(500);
    await agent.reregister();
    expect(nlb.calls.register.map((c) => c.at)).toEqual([0, 500]);
    expect(agent.registrationId).toBe('reg-2');
    await clock.advanceAsync(1000);
    expect(nlb.calls.heartbeat.map((c) => [c.at, c.req.registrationId])).toEqual([[1500, 'reg-2']]);
  });
});
