import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createManualClock, settle } from '../../services/shared/clock.js';
import { memoryLogger } from '../../services/shared/logger.js';
import { createShutdown, type ShutdownOptions } from '../../services/shared/shutdown.js';

function setup(overrides: Partial<ShutdownOptions> = {}) {
  const logger = memoryLogger();
  const clock = createManualClock();
  const exits: number[] = [];
  const signals = new EventEmitter();
  const shutdown = createShutdown({
    logger,
    clock,
    timeoutMs: 1_000,
    exit: (code) => exits.push(code),
    signalSource: signals,
    ...overrides,
  });
  const logged = (level: string) => logger.lines.filter((l) => l.level === level);
  return { logger, clock, exits, signals, shutdown, logged };
}

describe('createShutdown', () => {
  it('runs hooks newest-first, one at a time, then exits 0', async () => {
    const { shutdown, exits, clock } = setup();
    const events: string[] = [];
    shutdown.onShutdown('store', () => {
      events.push('store');
    });
    shutdown.onShutdown('server', async () => {
      events.push('server:start');
      await clock.sleep(100);
      events.push('server:end');
    });
    shutdown.onShutdown('health', () => {
      events.push('health');
    });

    const done = shutdown.shutdown('test');
    await clock.advanceAsync(100);
    await done;
    expect(events).toEqual(['health', 'server:start', 'server:end', 'store']);
    expect(exits).toEqual([0]);
  });

  it('logs a failing hook, still runs the others, and exits 1', async () => {
    const { shutdown, exits, logged } = setup();
    const ran: string[] = [];
    shutdown.onShutdown('first', () => {
      ran.push('first');
    });
    shutdown.onShutdown('rejects', () => Promise.reject(new Error('disk gone')));
    shutdown.onShutdown('throws', () => {
      throw new Error('boom');
    });
    shutdown.onShutdown('last', () => {
      ran.push('last');
    });

    await shutdown.shutdown('test');
    expect(ran).toEqual(['last', 'first']);
    expect(exits).toEqual([1]);
    expect(logged('error').map((l) => [l.msg, l.fields?.hook, l.fields?.err])).toEqual([
      ['shutdown hook failed', 'throws', 'boom'],
      ['shutdown hook failed', 'rejects', 'disk gone'],
    ]);
  });

  it('bounds each hook by the time left, skips hooks once the deadline passes, and exits 1', async () => {
    const { shutdown, exits, clock, logged } = setup();
    const ran: string[] = [];
    shutdown.onShutdown('never-reached', () => {
      ran.push('never-reached');
    });
    shutdown.onShutdown('slow', () => clock.sleep(600));
    shutdown.onShutdown('medium', () => clock.sleep(600));

    const start = clock.now();
    let finished = false;
    const done = shutdown.shutdown('test').then(() => (finished = true));
    await clock.advanceAsync(999);
    expect(finished).toBe(false);
    await clock.advanceAsync(1);
    await done;
    // "medium" took 600 ms, so "slow" had 400 left, not a fresh 1000.
    expect(clock.now() - start).toBe(1_000);
    expect(exits).toEqual([1]);
    expect(ran).toEqual([]);
    expect(logged('error').map((l) => [l.msg, l.fields?.hook])).toEqual([
      ['shutdown hook timed out', 'slow'],
      ['shutdown hook skipped: deadline passed', 'never-reached'],
    ]);
    expect(clock.pendingTimers()).toBe(1); // only the abandoned hook's own sleep
  });

  it('cancels its deadline timer when the hooks finish in time', async () => {
    const { shutdown, clock, exits } = setup();
    shutdown.onShutdown('quick', () => clock.sleep(10));
    const done = shutdown.shutdown('test');
    await clock.advanceAsync(10);
    await done;
    expect(exits).toEqual([0]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('is idempotent: concurrent callers share one run and one exit', async () => {
    const { shutdown, exits, clock } = setup();
    let runs = 0;
    shutdown.onShutdown('count', async () => {
      runs += 1;
      await clock.sleep(50);
    });
    const a = shutdown.shutdown('first');
    const b = shutdown.shutdown('second');
    expect(b).toBe(a);
    await clock.advanceAsync(50);
    await Promise.all([a, b]);
    expect(runs).toBe(1);
    expect(exits).toEqual([0]);
    expect(shutdown.shutdown('third')).toBe(a);
  });

  it('ignores hooks registered after shutdown began, with a warning', async () => {
    const { shutdown, logged } = setup();
    let lateRan = false;
    const done = shutdown.shutdown('test');
    shutdown.onShutdown('late', () => {
      lateRan = true;
    });
    await done;
    expect(lateRan).toBe(false);
    expect(logged('warn').map((l) => l.fields?.hook)).toEqual(['late']);
  });
});

describe('signal handling', () => {
  it('starts shutdown on SIGTERM and logs the signal as the reason', async () => {
    const { shutdown, signals, exits, logger } = setup();
    let ran = false;
    shutdown.onShutdown('hook', () => {
      ran = true;
    });
    shutdown.installSignalHandlers();
    signals.emit('SIGTERM', 'SIGTERM');
    await settle();
    expect(ran).toBe(true);
    expect(exits).toEqual([0]);
    expect(logger.lines[0]).toMatchObject({ msg: 'shutting down', fields: { reason: 'signal SIGTERM' } });
  });

  it('exits 1 at once on a second signal, and does not exit again when the hooks end', async () => {
    const { shutdown, signals, exits, clock } = setup();
    shutdown.onShutdown('stuck', () => clock.sleep(500));
    shutdown.installSignalHandlers();
    signals.emit('SIGINT', 'SIGINT');
    await settle();
    expect(exits).toEqual([]);
    signals.emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([1]);
    await clock.advanceAsync(500);
    expect(exits).toEqual([1]);
  });

  it('listens only to the configured signals and stops listening when uninstalled', async () => {
    const { shutdown, signals, exits } = setup({ signals: ['SIGHUP'] });
    const uninstall = shutdown.installSignalHandlers();
    expect(signals.listenerCount('SIGHUP')).toBe(1);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
    uninstall();
    expect(signals.listenerCount('SIGHUP')).toBe(0);
    signals.emit('SIGHUP', 'SIGHUP');
    await settle();
    expect(exits).toEqual([]);
  });

  it('listens on process by default, and removes exactly its own listeners', () => {
    const shutdown = createShutdown({ logger: memoryLogger(), exit: () => {} });
    const before = process.listenerCount('SIGTERM');
    const uninstall = shutdown.installSignalHandlers();
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    uninstall();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});
