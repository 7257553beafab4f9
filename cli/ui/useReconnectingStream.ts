/**
 * A server stream that comes back: opens it, hands each message on, and when it fails, ends
 * or goes quiet for `stallMs`, waits (exponential backoff) and opens it again. The returned
 * state says whether it is connecting, live or reconnecting, and why. Unmounting cancels it.
 */
import { useEffect, useRef, useState } from 'react';

/** What a stream reports to its opener. */
export interface StreamHandlers<M> {
  onMessage: (message: M) => void;
  /** The stream is over: failed (`error`) or ended by the server. Called at most once. */
  onClose: (error?: Error) => void;
}

/** Opens a stream; returns the function that cancels it. */
export type OpenStream<M> = (handlers: StreamHandlers<M>) => () => void;

/** Where the stream stands. */
export interface ConnectionState {
  phase: 'connecting' | 'live' | 'reconnecting';
  /** Failed attempts in a row (0 while live). */
  attempt: number;
  /** Why the last attempt failed. */
  error?: string;
  /** When the next attempt starts (epoch ms), while reconnecting. */
  retryAtMs?: number;
}

/** Backoff between attempts: initialMs, doubling, at most maxMs. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 5000 };

/** The wait before attempt `attempt` (1-based). */
export function backoffDelayMs(attempt: number, backoff: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.max(0, attempt - 1));
}

/** Options of useReconnectingStream. */
export interface ReconnectOptions {
  backoff?: BackoffOptions;
  /** Reconnect when no message came for this long (a half-open connection); off when absent. */
  stallMs?: number;
}

/** Runs `open` with reconnects while mounted; `onMessage` sees every message. */
export function useReconnectingStream<M>(
  open: OpenStream<M>,
  onMessage: (message: M) => void,
  options: ReconnectOptions = {},
): ConnectionState {
  const [state, setState] = useState<ConnectionState>({ phase: 'connecting', attempt: 0 });
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const { backoff = DEFAULT_BACKOFF, stallMs } = options;
  const { initialMs, maxMs } = backoff;

  useEffect(() => {
    let stopped = false;
    let live = false;
    let generation = 0;
    let attempt = 0;
    let cancel: (() => void) | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let stallTimer: NodeJS.Timeout | undefined;

    const armStall = (mine: number) => {
      if (stallMs === undefined) return;
      clearTimeout(stallTimer);
      stallTimer = setTimeout(
        () => closed(mine, new Error(`no data for ${Math.round(stallMs / 1000)} s`)),
        stallMs,
      );
    };
    const closed = (mine: number, error?: Error) => {
      if (stopped || mine !== generation) return;
      generation++; // later callbacks of this stream are ignored
      live = false;
      clearTimeout(stallTimer);
      cancel?.();
      cancel = undefined;
      attempt++;
      const delay = backoffDelayMs(attempt, { initialMs, maxMs });
      setState({
        phase: 'reconnecting',
        attempt,
        error: error?.message ?? 'the server ended the stream',
        retryAtMs: Date.now() + delay,
      });
      retryTimer = setTimeout(connect, delay);
    };
    const connect = () => {
      if (stopped) return;
      const mine = ++generation;
      armStall(mine);
      try {
        cancel = open({
          onMessage: (message) => {
            if (stopped || mine !== generation) return;
            if (!live) {
              attempt = 0;
              live = true;
              setState({ phase: 'live', attempt: 0 });
            }
            armStall(mine);
            handler.current(message);
          },
          onClose: (error) => closed(mine, error),
        });
      } catch (e) {
        closed(mine, e instanceof Error ? e : new Error(String(e)));
      }
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(retryTimer);
      clearTimeout(stallTimer);
      cancel?.();
    };
  }, [open, initialMs, maxMs, stallMs]);

  return state;
}
