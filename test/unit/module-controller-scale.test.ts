/**
 * The controller's scale path: a scale-up of N starts its instances concurrently (bounded),
 * a failed start does not cancel the others, and partial success is reported.
 */
import { describe, expect, it } from 'vitest';
import { albPlugin } from '../../services/modules/alb/plugin.js';
import { createControllerMemoryStore } from '../../services/modules/runtime/controller-state.js';
import {
  DEFAULT_SCALING,
  DEFAULT_START_CONCURRENCY,
  ModuleController,
} from '../../services/modules/runtime/controller.js';
import type {
  InstanceHandle,
  InstanceLaunch,
  InstanceProvider,
} from '../../services/modules/runtime/providers/provider.js';
import { createManualClock, settle, type ManualClock } from '../../services/shared/clock.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { createRng } from '../../services/shared/rng.js';

const ADDRESS = '127.0.0.1:50051';
const BOUNDS = { ...DEFAULT_SCALING, minInstances: 0, maxInstances: 100 };

interface PendingStart {
  launch: InstanceLaunch;
  succeed(): void;
  fail(message: string): void;
}

/** A provider whose starts finish when the test says so (or after `bootMs` of the clock). */
function slowProvider(clock: ManualClock, bootMs = 0) {
  const pending: PendingStart[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let attempts = 0;
  let failNext = 0;
  const handle = (l: InstanceLaunch): InstanceHandle => ({
    id: l.id,
    trafficAddress: '127.0.0.1:9000',
    pid: null,
    startedAtMs: clock.now(),
    status: () => Promise.resolve({ status: 'HEALTHY', lease: 'registered', heartbeats: 0 }),
    stats: () => Promise.reject(new Error('not used')),
    apply: () => Promise.resolve(),
    drain: () => Promise.resolve(0),
    stop: () => Promise.resolve(),
    onUnexpectedExit: () => undefined,
  });
  const provider: InstanceProvider = {
    kind: 'inprocess',
    start(launch) {
      attempts++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return new Promise<InstanceHandle>((resolve, reject) => {
        const done = () => inFlight--;
        const p: PendingStart = {
          launch,
          succeed: () => (done(), resolve(handle(launch))),
          fail: (m) => (done(), reject(new Error(m))),
        };
        if (failNext > 0) {
          failNext--;
          p.fail('no capacity');
        } else if (bootMs > 0) clock.setTimeout(() => p.succeed(), bootMs);
        else pending.push(p);
      });
    },
  };
  return {
    provider,
    pending,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    get attempts() {
      return attempts;
    },
    /** The next `n` starts fail at once. */
    failing(n: number) {
      failNext = n;
    },
  };
}

async function setup(o: { bootMs?: number; startConcurrency?: number } = {}) {
  const clock = createManualClock(0);
  const fake = slowProvider(clock, o.bootMs);
  const logger = memoryLogger();
  const controller = new ModuleController({
    plugin: albPlugin,
    version: '1.0',
    clock,
    rng: createRng('controller-scale-test'),
    logger,
    provider: fake.provider,
    store: createControllerMemoryStore(),
    host: '127.0.0.1',
    heartbeatIntervalMs: 1000,
    initialInstances: 0,
    ...(o.startConcurrency ? { startConcurrency: o.startConcurrency } : {}),
  });
  await controller.start(ADDRESS);
  return { clock, fake, controller, logger };
}

describe('ModuleController scale path', () => {
  it(`starts a scale-up's instances ${DEFAULT_START_CONCURRENCY} at a time, not one after another`, async () => {
    const { fake, controller } = await setup();
    await controller.scale(20, BOUNDS, false);
    await settle();
    expect(fake.inFlight).toBe(DEFAULT_START_CONCURRENCY);
    // Each finished start makes room for the next.
    fake.pending.shift()!.succeed();
    await settle();
    expect(fake.inFlight).toBe(DEFAULT_START_CONCURRENCY);
    while (fake.pending.length) {
      for (const p of fake.pending.splice(0)) p.succeed();
      await settle();
    }
    expect(controller.liveInstances()).toHaveLength(20);
    expect(fake.maxInFlight).toBe(DEFAULT_START_CONCURRENCY);
    expect(new Set([...controller.instances.keys()]).size).toBe(20);
  });

  it('boot times overlap: 16 instances that take 5 s each are all up after 10 s', async () => {
    const { clock, controller } = await setup({ bootMs: 5_000 });
    const scaled = controller.scale(16, BOUNDS, true);
    await clock.advanceAsync(5_000);
    expect(controller.liveInstances()).toHaveLength(8);
    await clock.advanceAsync(5_000);
    expect(await scaled).toEqual({ current: 16, desired: 16 });
  });

  it('the concurrency is configurable', async () => {
    const { fake, controller } = await setup({ startConcurrency: 3 });
    await controller.scale(10, BOUNDS, false);
    await settle();
    expect(fake.inFlight).toBe(3);
    while (fake.pending.length) {
      for (const p of fake.pending.splice(0)) p.succeed();
      await settle();
    }
    expect(controller.liveInstances()).toHaveLength(10);
    expect(fake.maxInFlight).toBe(3);
  });

  it('a failed start cancels none of the others; Scale reports the partial success and the retry completes it', async () => {
    const { clock, fake, controller, logger } = await setup({ bootMs: 1_000 });
    fake.failing(2);
    const scaled = controller.scale(6, BOUNDS, true);
    await clock.advanceAsync(1_000);
    const r = await scaled;
    expect(r).toMatchObject({ current: 4, desired: 6 });
    expect(r.startProblem).toMatch(
      /^started 4 of 6 instance\(s\); 2 failed: alb-1\.0-1-[0-9a-f]{4}: no capacity; alb-1\.0-2-[0-9a-f]{4}: no capacity; retrying with backoff$/,
    );
    expect(controller.lastError).toBe(r.startProblem);
    expect(logger.lines.some((l) => l.msg.startsWith('could not start instance alb-1.0-1-'))).toBe(true);
    // The retry (0.2 s backoff, then a 1 s boot) starts the two missing ones.
    await clock.advanceAsync(1_200);
    expect(controller.liveInstances()).toHaveLength(6);
    expect(controller.lastError).toBeNull();
    expect(fake.attempts).toBe(8);
  });

  it('after as many failures in a row as run at once, no more are launched: the provider is not flooded', async () => {
    const { fake, controller } = await setup({ startConcurrency: 4 });
    fake.failing(1000);
    const r = await controller.scale(50, BOUNDS, true);
    // The fourth failure in a row stops the launches; three launched meanwhile fail too.
    expect(fake.attempts).toBe(7);
    expect(r).toMatchObject({ current: 0, desired: 50 });
    expect(r.startProblem).toMatch(
      /^started 0 of 50 instance\(s\); 7 failed: .+ and 4 more; 43 not attempted after the failures in a row; retrying with backoff$/,
    );
  });

  it('stop() during a scale-up launches no more instances and stops the ones that did start', async () => {
    const { fake, controller } = await setup();
    await controller.scale(20, BOUNDS, false);
    await settle();
    const stopping = controller.stop(false, 1_000);
    for (const p of fake.pending.splice(0)) p.succeed();
    await stopping;
    expect(fake.attempts).toBe(DEFAULT_START_CONCURRENCY);
    expect(controller.instances.size).toBe(0);
  });
});
