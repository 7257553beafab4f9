/**
 * The native relay (docs/dataplane.md "Native relay"): once a connection's instance is connected
 * and its sockets are handed over, native/relay/relay.c forwards both ways inside this process's
 * event loop, without net.Socket stream machinery. This module loads the addon and wraps one
 * relayed pair as a `Forwarding`, like forward() does for the JavaScript path.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CloseReason, ForwardOptions, Forwarding } from './forward.js';

/** What the addon exports (relay.c "JavaScript API"). */
export interface RelayBinding {
  setCloseHandler(
    fn: (id: number, reason: number, error: string | undefined, bytesIn: number, bytesOut: number) => void,
  ): void;
  /** Duplicates both descriptors; the caller destroys its sockets afterwards. */
  start(
    clientFd: number,
    upstreamFd: number,
    toUpstream: Buffer | undefined,
    toClient: Buffer | undefined,
    idleMs: number,
  ): number;
  abort(id: number, reason?: number): boolean;
  /** Fills out[0..2]: client → instance, instance → client, bytes pending in the relay. */
  bytes(id: number, out: Float64Array): boolean;
  active(): number;
}

/** `dataplane.relay`: auto = native when the addon loads, else JavaScript. */
export type RelayMode = 'auto' | 'native' | 'js';

/** relay.c's `enum reason`, in order. */
const REASONS: readonly CloseReason[] = ['done', 'idle', 'client-error', 'upstream-error', 'aborted'];
const REASON_CODE: Record<CloseReason, number> = {
  done: 0,
  idle: 1,
  'client-error': 2,
  'upstream-error': 3,
  aborted: 4,
};

/** native/relay/build/relay.node, found from this file (source or dist/). */
function addonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'native', 'relay', 'build', 'relay.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

let loaded: { relay: NativeRelay } | { error: string } | undefined;

/** The process's relay, or why there is none (loaded once). */
export function loadNativeRelay(): { relay: NativeRelay } | { error: string } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') return (loaded = { error: `not supported on ${process.platform}` });
  const path = addonPath();
  if (!path) return (loaded = { error: 'native/relay/build/relay.node is not built (npm run build)' });
  try {
    const binding = createRequire(import.meta.url)(path) as RelayBinding;
    return (loaded = { relay: new NativeRelay(binding) });
  } catch (e) {
    return (loaded = { error: `cannot load ${path}: ${String(e)}` });
  }
}

/**
 * Resolves `dataplane.relay`: the relay to use (undefined = forward in JavaScript) and a line
 * saying which. 'native' without the addon is an error.
 */
export function resolveRelay(mode: RelayMode): { relay?: NativeRelay; note: string } {
  if (mode === 'js') return { note: 'forwarding in JavaScript (dataplane.relay: js)' };
  const r = loadNativeRelay();
  if ('relay' in r) return { relay: r.relay, note: 'forwarding with the native relay' };
  if (mode === 'native')
    throw new Error(
      `dataplane.relay is "native" but the native relay is unavailable: ${r.error}. ` +
        'Build it (npm run build, with a C compiler) or set dataplane.relay to "auto" or "js".',
    );
  return { note: `forwarding in JavaScript: the native relay is unavailable (${r.error})` };
}

/** The socket's file descriptor, or -1 (not a plain TCP socket). */
function fdOf(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

function joined(parts: readonly Buffer[]): Buffer | undefined {
  const nonEmpty = parts.filter((b) => b.length > 0);
  if (nonEmpty.length === 0) return undefined;
  return nonEmpty.length === 1 ? nonEmpty[0] : Buffer.concat(nonEmpty);
}

interface Pair {
  closed: boolean;
  /** What Node had counted on the client socket before the hand-over (plus, once closed, the relay's). */
  baseIn: number;
  baseOut: number;
  /**
   * The relay's counts when last read: after abort() the relay no longer knows the pair, and
   * bytes() must not go back until the close brings the final counts.
   */
  relayIn: number;
  relayOut: number;
  onClose: ForwardOptions['onClose'];
}

/** Takes what Node has read from `s` but nobody consumed yet (paused sockets). */
function drain(s: Socket): Buffer[] {
  const out: Buffer[] = [];
  while (s.readableLength > 0) {
    const b = s.read() as Buffer | null;
    if (!b) break;
    out.push(b);
  }
  return out;
}

export class NativeRelay {
  private readonly pairs = new Map<number, Pair>();
  private readonly scratch = new Float64Array(3);

  constructor(private readonly binding: RelayBinding) {
    binding.setCloseHandler((id, reason, error, bytesIn, bytesOut) => {
      const p = this.pairs.get(id);
      if (!p) return;
      this.pairs.delete(id);
      p.closed = true;
      p.baseIn += bytesIn;
      p.baseOut += bytesOut;
      p.onClose(REASONS[reason] ?? 'aborted', error);
    });
  }

  /** Pairs being relayed now. */
  get active(): number {
    return this.binding.active();
  }

  /**
   * Hands a connected pair to the relay: `opts.head` and whatever Node had already read from the
   * client go to the instance first, what the instance sent before (`early`, then whatever Node
   * holds read from the upstream socket) to the client. Returns null when the sockets cannot be
   * handed over (the caller forwards in JavaScript: the sockets are as they were, with what was
   * taken from Node's buffers put back); both sockets are destroyed on success.
   */
  forward(
    client: Socket,
    upstream: Socket,
    early: readonly Buffer[],
    opts: ForwardOptions,
  ): Forwarding | null {
    const cfd = fdOf(client);
    const ufd = fdOf(upstream);
    if (cfd < 0 || ufd < 0 || client.destroyed || upstream.destroyed) return null;
    // Node may have read past the sniffed bytes while the client was paused; an upstream socket
    // without a reader (`early`) keeps what it read too.
    const fromClient = drain(client);
    const fromUpstream = drain(upstream);
    let id: number;
    try {
      id = this.binding.start(
        cfd,
        ufd,
        joined([...opts.head, ...fromClient]),
        joined([...early, ...fromUpstream]),
        opts.idleTimeoutMs,
      );
    } catch {
      // EMFILE and the like: the sockets are untouched and JavaScript can still forward them
      // (with the bytes taken above put back first, in order).
      for (let i = fromClient.length - 1; i >= 0; i--) client.unshift(fromClient[i]);
      for (let i = fromUpstream.length - 1; i >= 0; i--) upstream.unshift(fromUpstream[i]);
      return null;
    }
    const pair: Pair = {
      closed: false,
      baseIn: client.bytesRead,
      baseOut: client.bytesWritten,
      relayIn: 0,
      relayOut: 0,
      onClose: (reason, error) => opts.onClose(reason, error),
    };
    this.pairs.set(id, pair);
    // The relay holds its own descriptors now; closing Node's does not end the connection.
    client.destroy();
    upstream.destroy();
    const scratch = this.scratch;
    const binding = this.binding;
    const sample = () => {
      if (pair.closed || !binding.bytes(id, scratch)) return;
      pair.relayIn = scratch[0];
      pair.relayOut = scratch[1];
    };
    return {
      abort: (r: CloseReason = 'aborted') => {
        // Closed: the id is no longer this pair's (its slot may serve another by now).
        if (pair.closed) return;
        sample();
        binding.abort(id, REASON_CODE[r]);
      },
      get closed() {
        return pair.closed;
      },
      bytes(): { in: number; out: number } {
        if (pair.closed) return { in: pair.baseIn, out: pair.baseOut };
        sample();
        return { in: pair.baseIn + pair.relayIn, out: pair.baseOut + pair.relayOut };
      },
      buffered(): number {
        return !pair.closed && binding.bytes(id, scratch) ? scratch[2] : 0;
      },
    };
  }
}
