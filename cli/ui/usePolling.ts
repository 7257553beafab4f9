/**
 * Calls `poll` now and then every `intervalMs` after the previous call settled, while mounted.
 * A failure is kept as `error` (the last good value stays); the next success clears it.
 */
import { useEffect, useRef, useState } from 'react';

/** The last value and the last failure of a poll. */
export interface Polled<T> {
  value?: T;
  error?: string;
}

export function usePolling<T>(poll: () => Promise<T>, intervalMs: number): Polled<T> {
  const [state, setState] = useState<Polled<T>>({});
  const fn = useRef(poll);
  fn.current = poll;

  useEffect(() => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const run = async () => {
      try {
        const value = await fn.current();
        if (!stopped) setState({ value });
      } catch (e) {
        if (!stopped) setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
      }
      if (!stopped) timer = setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [intervalMs]);

  return state;
}
