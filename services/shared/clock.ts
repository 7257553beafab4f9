/**
 * Injected time (DESIGN.md §6). Every timer, TTL, interval and timestamp in the services goes
 * through a Clock, so the simulator and tests can run the real code in virtual time.
 */
export interface TimerHandle {
  /** Stops the timer; calling it again is harmless. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  nowDate(): Date;
  /** Runs `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Runs `fn` every `ms` until cancelled. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function sleepWith(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      t.cancel();
      reject(signal?.reason as Error);
    };
    const t = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The wall clock. Timers are unref'd so that they never keep a process alive by themselves. */
export function createSystemClock(): Clock {
  const clock: Clock = {
    now: () => Date.now(),
    nowDate: () => new Date(),
    setTimeout(fn, ms) {
      const t = setTimeout(fn, Math.max(0, ms));
      t.unref();
      return { cancel: () => clearTimeout(t) };
    },
    setInterval(fn, ms) {
      const t = setInterval(fn, Math.max(1, ms));
      t.unref();
      return { cancel: () => clearInterval(t) };
    },
    sleep: (ms, signal) => sleepWith(clock, ms, signal),
  };
  return clock;
}

interface PendingTimer {
  id: number;
  at: number;
  everyMs: number | null;
  fn: () => void;
  cancelled: boolean;
}

/** A clock that moves only when told to: for tests and the simulator's virtual time. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing due timers in time order (synchronously). */
  advance(ms: number): void;
  /**
   * Moves time forward by `ms`, firing due timers in order and letting promise callbacks and
   * I/O callbacks run after each one, so async work started by a timer settles before the next.
   */
  advanceAsync(ms: number): Promise<void>;
  /** Moves to an absolute time (never backwards). */
  set(nowMs: number): void;
  /** Number of live timers. */
  pendingTimers(): number;
  /** Time of the next timer, or undefined. */
  nextTimerAt(): number | undefined;
}

/** Yields to the event loop so pending promise and I/O callbacks run. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** NaN counts as 0 (Node runs it at once); kept as NaN it would never fire and poison nextTimerAt. */
const delayOf = (ms: number): number => (Number.isNaN(ms) ? 0 : Math.max(0, ms));

/** Earlier first; at the same time, created (or armed) first. */
const before = (a: PendingTimer, b: PendingTimer) => a.at < b.at || (a.at === b.at && a.id < b.id);

/**
 * A binary min-heap of timers by (time, id). Cancelled timers stay in it until they reach the
 * top (or a compaction), so cancel is O(1) and the next due timer O(log n): simulations keep
 * thousands of timers (every instance's heartbeat, sweepers, health checks).
 */
class TimerHeap {
  private items: PendingTimer[] = [];

  get size(): number {
    return this.items.length;
  }

  push(t: PendingTimer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  /** The earliest live timer, dropping cancelled ones on the way. */
  peek(): PendingTimer | undefined {
    while (this.items.length > 0 && this.items[0].cancelled) this.pop();
    return this.items[0];
  }

  pop(): PendingTimer | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l], a[m])) m = l;
        if (r < a.length && before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }

  /** Rebuilds without cancelled timers. */
  compact(): void {
    const live = this.items.filter((t) => !t.cancelled);
    this.items = [];
    for (const t of live) this.push(t);
  }
}

/** Creates a manual clock starting at `startMs` (default 2026-01-01T00:00:00Z). */
export function createManualClock(startMs = Date.UTC(2026, 0, 1)): ManualClock {
  let now = startMs;
  let nextId = 1;
  const timers = new Map<number, PendingTimer>();
  const heap = new TimerHeap();

  const add = (fn: () => void, ms: number, everyMs: number | null): TimerHandle => {
    const t: PendingTimer = { id: nextId++, at: now + delayOf(ms), everyMs, fn, cancelled: false };
    timers.set(t.id, t);
    heap.push(t);
    return {
      cancel: () => {
        t.cancelled = true;
        timers.delete(t.id);
        if (heap.size > 1024 && heap.size > 4 * timers.size) heap.compact();
      },
    };
  };

  const nextDue = (limit: number): PendingTimer | undefined => {
    const t = heap.peek();
    return t && t.at <= limit ? t : undefined;
  };

  const fire = (t: PendingTimer) => {
    now = Math.max(now, t.at);
    heap.pop(); // `t` is the top: nextDue just returned it
    if (t.everyMs === null) timers.delete(t.id);
    else {
      t.at += t.everyMs;
      heap.push(t);
    }
    t.fn();
  };

  const clock: ManualClock = {
    now: () => now,
    nowDate: () => new Date(now),
    setTimeout: (fn, ms) => add(fn, ms, null),
    setInterval: (fn, ms) => add(fn, ms, Math.max(1, delayOf(ms))),
    sleep: (ms, signal) => sleepWith(clock, ms, signal),
    advance(ms) {
      const target = now + delayOf(ms);
      for (let t = nextDue(target); t; t = nextDue(target)) fire(t);
      // A timer callback may itself have moved the clock further; time never goes backwards.
      now = Math.max(now, target);
    },
    async advanceAsync(ms) {
      const target = now + delayOf(ms);
      await settle();
      for (let t = nextDue(target); t; t = nextDue(target)) {
        fire(t);
        await settle();
      }
      now = Math.max(now, target);
      await settle();
    },
    set(nowMs) {
      if (nowMs > now) clock.advance(nowMs - now);
    },
    pendingTimers: () => timers.size,
    nextTimerAt: () => heap.peek()?.at,
  };
  return clock;
}
