/**
 * Graceful shutdown for a service process: on SIGINT/SIGTERM (or a call), run the registered
 * hooks newest-first — so what started last (servers accepting work) stops before what it depends
 * on (stores, loggers) — within one deadline, then exit 0 if every hook finished and 1 otherwise.
 * A second signal while shutting down exits 1 at once. Besides main.ts files, this is the only
 * module that touches `process`; tests inject `exit`, `signalSource` and `clock`.
 */
import type { Clock, TimerHandle } from './clock.js';
import type { Logger } from './logger.js';

export type ShutdownHook = () => Promise<void> | void;

/** Where signals come from: `process` in production, an EventEmitter in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface ShutdownOptions {
  logger: Logger;
  /** Budget for all hooks together; hooks still running when it ends are abandoned. */
  timeoutMs?: number;
  exit?: (code: number) => void;
  signals?: readonly NodeJS.Signals[];
  signalSource?: SignalSource;
  /**
   * Times the deadline. Defaults to a real, ref'd timer rather than the unref'd system Clock:
   * a hook that hangs without holding the event loop open must still end in exit(1) at the
   * deadline, not in a silent exit 0 when the loop drains.
   */
  clock?: Pick<Clock, 'now' | 'setTimeout'>;
}

export interface Shutdown {
  /** Registers a hook; hooks run in reverse registration order. */
  onShutdown(name: string, fn: ShutdownHook): void;
  /** Runs the hooks once and exits; every caller gets the same promise. */
  shutdown(reason: string): Promise<void>;
  /** Listens for the configured signals; returns a function that stops listening. */
  installSignalHandlers(): () => void;
}

const realTimers: Pick<Clock, 'now' | 'setTimeout'> = {
  now: () => Date.now(),
  setTimeout(fn, ms): TimerHandle {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
};

const TIMED_OUT = Symbol('timed out');

/** Creates the shutdown coordinator for one process. */
export function createShutdown(options: ShutdownOptions): Shutdown {
  const { logger, timeoutMs = 10_000, signals = ['SIGINT', 'SIGTERM'] } = options;
  const exitProcess = options.exit ?? ((code: number) => process.exit(code));
  const signalSource: SignalSource = options.signalSource ?? process;
  const clock = options.clock ?? realTimers;
  const hooks: { name: string; fn: ShutdownHook }[] = [];
  let running: Promise<void> | undefined;
  let exited = false;

  const exit = (code: number): void => {
    if (exited) return;
    exited = true;
    exitProcess(code);
  };

  const runHooks = async (reason: string): Promise<void> => {
    const started = clock.now();
    logger.info('shutting down', { reason, hooks: hooks.length, timeoutMs });
    let timer: TimerHandle | undefined;
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = clock.setTimeout(() => resolve(TIMED_OUT), timeoutMs);
    });
    let ok = true;
    for (const hook of [...hooks].reverse()) {
      if (clock.now() - started >= timeoutMs) {
        ok = false;
        logger.error('shutdown hook skipped: deadline passed', { hook: hook.name });
        continue;
      }
      const hookStarted = clock.now();
      try {
        // new Promise(...) turns a synchronous throw into a rejection like any other failure.
        const outcome = await Promise.race([new Promise<void>((resolve) => resolve(hook.fn())), deadline]);
        if (outcome === TIMED_OUT) {
          ok = false;
          logger.error('shutdown hook timed out', { hook: hook.name, timeoutMs });
        } else {
          logger.info('shutdown hook finished', { hook: hook.name, durationMs: clock.now() - hookStarted });
        }
      } catch (e) {
        ok = false;
        logger.error('shutdown hook failed', {
          hook: hook.name,
          err: e instanceof Error ? e.message : String(e),
        });
      }
    }
    timer?.cancel();
    const code = ok ? 0 : 1;
    logger.info('shutdown complete', { exitCode: code, durationMs: clock.now() - started });
    exit(code);
  };

  const shutdown = (reason: string): Promise<void> => {
    running ??= runHooks(reason);
    return running;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (running) {
      logger.warn('second signal during shutdown: exiting now', { signal });
      exit(1);
      return;
    }
    shutdown(`signal ${signal}`).catch((e: unknown) => {
      logger.error('shutdown failed', { err: e instanceof Error ? e.message : String(e) });
      exit(1);
    });
  };

  return {
    onShutdown(name, fn) {
      if (running) {
        logger.warn('shutdown hook registered after shutdown began; it will not run', { hook: name });
        return;
      }
      hooks.push({ name, fn });
    },
    shutdown,
    installSignalHandlers() {
      for (const signal of signals) signalSource.on(signal, onSignal);
      return () => {
        for (const signal of signals) signalSource.off(signal, onSignal);
      };
    },
  };
}
