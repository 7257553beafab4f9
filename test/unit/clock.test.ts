import { describe, expect, it } from 'vitest';
import { createManualClock, createSystemClock, settle } from '../../services/shared/clock.js';

const START = Date.UTC(2026, 0, 1);

describe('createManualClock', () => {
  it('starts at 2026-01-01T00:00:00Z by default, or at the given time', () => {
    expect(createManualClock().now()).toBe(START);
    expect(createManualClock().nowDate().toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(createManualClock(1_000).now()).toBe(1_000);
  });

  it('fires timers in time order, ties in creation order, each seeing its own due time', () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    const at = (label: string) => () => fired.push(`${label}@${clock.now()}`);
    clock.setTimeout(at('c'), 30);
    clock.setTimeout(at('a'), 10);
    clock.setTimeout(at('b1'), 20);
    clock.setTimeout(at('b2'), 20);
    clock.setTimeout(at('late'), 101);
    clock.advance(100);
    expect(fired).toEqual(['a@10', 'b1@20', 'b2@20', 'c@30']);
    expect(clock.now()).toBe(100);
    clock.advance(1);
    expect(fired.at(-1)).toBe('late@101');
  });

  it('does not fire a timer before its time, and fires it exactly at it', () => {
    const clock = createManualClock(0);
    let fired = 0;
    clock.setTimeout(() => fired++, 50);
    clock.advance(49);
    expect(fired).toBe(0);
    clock.advance(1);
    expect(fired).toBe(1);
    clock.advance(1_000);
    expect(fired).toBe(1);
  });

  it('fires a zero or negative delay on the next advance, even advance(0)', () => {
    const clock = createManualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 0);
    clock.setTimeout(() => fired.push(clock.now()), -5);
    expect(fired).toEqual([]);
    clock.advance(0);
    expect(fired).toEqual([0, 0]);
  });

  it('runs timers that a timer schedules within the same advance when they fall due', () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => {
      fired.push(`outer@${clock.now()}`);
      clock.setTimeout(() => fired.push(`inner@${clock.now()}`), 15);
      clock.setTimeout(() => fired.push(`beyond@${clock.now()}`), 500);
    }, 10);
    clock.advance(100);
    expect(fired).toEqual(['outer@10', 'inner@25']);
    expect(clock.pendingTimers()).toBe(1);
  });

  it('repeats intervals at a fixed period', () => {
    const clock = createManualClock(0);
    const ticks: number[] = [];
    clock.setInterval(() => ticks.push(clock.now()), 25);
    clock.advance(100);
    expect(ticks).toEqual([25, 50, 75, 100]);
    clock.advance(24);
    expect(ticks).toHaveLength(4);
  });

  it('lets an interval cancel itself from inside its callback', () => {
    const clock = createManualClock(0);
    const ticks: number[] = [];
    const handle = clock.setInterval(() => {
      ticks.push(clock.now());
      if (ticks.length === 3) handle.cancel();
    }, 10);
    clock.advance(1_000);
    expect(ticks).toEqual([10, 20, 30]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('treats a zero-period interval as 1 ms instead of looping forever', () => {
    const clock = createManualClock(0);
    let ticks = 0;
    clock.setInterval(() => ticks++, 0);
    clock.advance(5);
    expect(ticks).toBe(6); // at 0, 1, 2, 3, 4, 5
  });

  it('cancel stops a timer, is idempotent, and is harmless after the timer fired', () => {
    const clock = createManualClock(0);
    let a = 0;
    let b = 0;
    const ha = clock.setTimeout(() => a++, 10);
    const hb = clock.setTimeout(() => b++, 10);
    ha.cancel();
    ha.cancel();
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(10);
    expect([a, b]).toEqual([0, 1]);
    hb.cancel();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('lets one timer cancel another that is due at the same time', () => {
    const clock = createManualClock(0);
    let victimRan = false;
    clock.setTimeout(() => victim.cancel(), 10);
    const victim = clock.setTimeout(() => {
      victimRan = true;
    }, 10);
    clock.advance(10);
    expect(victimRan).toBe(false);
  });

  it('reports pending timers and the next due time', () => {
    const clock = createManualClock(0);
    expect(clock.pendingTimers()).toBe(0);
    expect(clock.nextTimerAt()).toBeUndefined();
    clock.setTimeout(() => {}, 40);
    const interval = clock.setInterval(() => {}, 15);
    expect(clock.pendingTimers()).toBe(2);
    expect(clock.nextTimerAt()).toBe(15);
    clock.advance(15);
    expect(clock.nextTimerAt()).toBe(30); // the interval moved on
    interval.cancel();
    expect(clock.nextTimerAt()).toBe(40);
    clock.advance(100);
    expect(clock.pendingTimers()).toBe(0);
    expect(clock.nextTimerAt()).toBeUndefined();
  });

  it('treats a NaN delay as 0 rather than a timer that never fires', () => {
    const clock = createManualClock(0);
    let fired = false;
    clock.setTimeout(() => {
      fired = true;
    }, Number.NaN);
    clock.setTimeout(() => {}, 5);
    expect(clock.nextTimerAt()).toBe(0);
    clock.advance(0);
    expect(fired).toBe(true);
  });

  it('set() moves forward firing due timers, and never goes backwards', () => {
    const clock = createManualClock(1_000);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 500);
    clock.set(1_600);
    expect(clock.now()).toBe(1_600);
    expect(fired).toEqual([1_500]);
    clock.set(1_200);
    expect(clock.now()).toBe(1_600);
    clock.advance(-50);
    expect(clock.now()).toBe(1_600);
  });

  it('never goes backwards when a timer callback moves the clock further than the advance', () => {
    const clock = createManualClock(0);
    clock.setTimeout(() => clock.set(300), 5);
    clock.advance(100);
    expect(clock.now()).toBe(300);
  });
});

describe('sleep', () => {
  it('resolves at the requested virtual time, not before', async () => {
    const clock = createManualClock(0);
    let wokeAt: number | undefined;
    const sleeping = clock.sleep(100).then(() => (wokeAt = clock.now()));
    await clock.advanceAsync(99);
    expect(wokeAt).toBeUndefined();
    await clock.advanceAsync(1);
    await sleeping;
    expect(wokeAt).toBe(100);
  });

  it('rejects with the abort reason and drops its timer when aborted', async () => {
    const clock = createManualClock(0);
    const controller = new AbortController();
    const sleeping = clock.sleep(100, controller.signal);
    expect(clock.pendingTimers()).toBe(1);
    const reason = new Error('stopping');
    controller.abort(reason);
    await expect(sleeping).rejects.toBe(reason);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('rejects at once, without a timer, when the signal is already aborted', async () => {
    const clock = createManualClock(0);
    const reason = new Error('already');
    await expect(clock.sleep(100, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('ignores an abort that comes after it resolved', async () => {
    const clock = createManualClock(0);
    const controller = new AbortController();
    const sleeping = clock.sleep(10, controller.signal);
    await clock.advanceAsync(10);
    controller.abort(new Error('late'));
    await expect(sleeping).resolves.toBeUndefined();
  });
});

describe('advanceAsync', () => {
  it('lets async work started by a timer finish before the next timer fires', async () => {
    const clock = createManualClock(0);
    const log: string[] = [];
    clock.setTimeout(() => {
      void (async () => {
        log.push('first:start');
        // A chain of promise steps, as a store write or an RPC handler would make.
        for (let i = 0; i < 20; i++) await Promise.resolve(i);
        await (async () => Promise.resolve())();
        log.push('first:end');
      })();
    }, 10);
    clock.setTimeout(() => log.push('second'), 20);
    await clock.advanceAsync(50);
    expect(log).toEqual(['first:start', 'first:end', 'second']);
  });

  it('fires timers that async work schedules after awaiting, when they fall due', async () => {
    const clock = createManualClock(0);
    const wokeAt: number[] = [];
    const loop = async () => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(10);
        wokeAt.push(clock.now());
      }
    };
    const done = loop();
    await clock.advanceAsync(30);
    await done;
    expect(wokeAt).toEqual([10, 20, 30]);
    expect(clock.now()).toBe(30);
  });

  it('differs from advance(), which fires the whole batch before promise callbacks run', async () => {
    const clock = createManualClock(0);
    const wokeAt: number[] = [];
    const done = (async () => {
      await clock.sleep(10);
      wokeAt.push(clock.now());
      await clock.sleep(10);
      wokeAt.push(clock.now());
    })();
    clock.advance(30);
    await settle();
    // The first sleep resolved at 10 but its continuation ran after the clock reached 30.
    expect(wokeAt).toEqual([30]);
    clock.advance(10);
    await done;
    expect(wokeAt).toEqual([30, 40]);
  });
});

describe('createSystemClock', () => {
  it('reads the wall clock and runs real timers that can be cancelled', async () => {
    const clock = createSystemClock();
    const before = Date.now();
    expect(clock.now()).toBeGreaterThanOrEqual(before);
    expect(Math.abs(clock.nowDate().getTime() - Date.now())).toBeLessThan(1_000);
    let cancelledRan = false;
    clock.setTimeout(() => (cancelledRan = true), 5).cancel();
    const started = Date.now();
    await clock.sleep(20);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    expect(cancelledRan).toBe(false);
  });

  it('repeats intervals until cancelled', async () => {
    const clock = createSystemClock();
    let ticks = 0;
    const handle = clock.setInterval(() => ticks++, 5);
    await new Promise((resolve) => setTimeout(resolve, 60));
    handle.cancel();
    const seen = ticks;
    expect(seen).toBeGreaterThanOrEqual(2);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(ticks).toBe(seen);
  });
});
