/**
 * Virtual time over real I/O. Every component runs on one ManualClock; the engine moves it from
 * one due timer to the next and, after each step, waits until every tracked operation (gRPC
 * calls both ways, instance starts and stops, NLB restarts) has finished, so that what a timer
 * started completes "at" the time it fired. An hour of simulated time then costs only the work
 * done in it.
 */
import { settle, type ManualClock } from '../../services/shared/clock.js';

/** Counts operations that do real I/O, by kind, and says when none is left. */
export interface Inflight {
  track<T>(kind: string, work: Promise<T>): Promise<T>;
  readonly count: number;
  /** Operations in flight by kind (for stall reports). */
  byKind(): Record<string, number>;
  /** Resolves when the count is (or next drops to) zero. */
  idle(): Promise<void>;
}

export function createInflight(): Inflight {
  let count = 0;
  const kinds = new Map<string, number>();
  let waiters: Array<() => void> = [];
  const done = (kind: string) => {
    count--;
    kinds.set(kind, (kinds.get(kind) ?? 1) - 1);
    if (count === 0) {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
  };
  return {
    track(kind, work) {
      count++;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      return work.finally(() => done(kind));
    },
    get count() {
      return count;
    },
    byKind: () => Object.fromEntries([...kinds].filter(([, n]) => n > 0)),
    idle: () => (count === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
  };
}

/** The simulation stopped making progress (an operation never finished). */
export class StallError extends Error {
  override readonly name = 'StallError';
}

/**
 * Waits until nothing is in flight and a few event-loop turns pass without new work, or throws
 * after `stallMs` of wall time naming what is stuck.
 */
export async function quiesce(inflight: Inflight, stallMs = 60_000): Promise<void> {
  const deadline = Date.now() + stallMs;
  let calm = 0;
  while (calm < 2) {
    if (inflight.count > 0) {
      calm = 0;
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<'stalled'>((resolve) => {
        timer = setTimeout(() => resolve('stalled'), Math.max(1, deadline - Date.now()));
      });
      const r = await Promise.race([inflight.idle(), stalled]);
      clearTimeout(timer);
      if (r === 'stalled')
        throw new StallError(
          `the simulation stalled: still waiting after ${stallMs} ms of wall time for ${JSON.stringify(inflight.byKind())}`,
        );
    }
    await settle();
    calm = inflight.count === 0 ? calm + 1 : 0;
  }
}

/** Advances the clock to `targetMs`, one due timer time at a time, settling after each step. */
export async function advanceTo(
  clock: ManualClock,
  inflight: Inflight,
  targetMs: number,
  stallMs?: number,
): Promise<void> {
  await quiesce(inflight, stallMs);
  for (;;) {
    const next = clock.nextTimerAt();
    if (next === undefined || next > targetMs) break;
    // Fires every timer due at `next` (and any they add for the same instant), then lets the
    // calls they started finish before time moves on.
    clock.advance(Math.max(0, next - clock.now()));
    await quiesce(inflight, stallMs);
  }
  if (clock.now() < targetMs) clock.advance(targetMs - clock.now());
  await quiesce(inflight, stallMs);
}
